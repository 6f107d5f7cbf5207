"""/api/v4 routes: GitLab's packages API (every package type; PyPI is the one keycrew stores).

``GET /projects/:id/packages``, ``GET /groups/:id/packages``, ``GET|DELETE
/projects/:id/packages/:package_id``, ``GET /projects/:id/packages/:package_id/package_files``
and ``DELETE .../package_files/:package_file_id``. The rules are in ``keycrew.packages.management``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from keycrew.access.lookup import find_group, find_project
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.packages import package, package_file
from keycrew.api.pagination import paginate_page, paginate_query
from keycrew.api.params import path_id
from keycrew.context import Ctx
from keycrew.namespaces.models import Project
from keycrew.packages import management
from keycrew.packages.models import Package

router = APIRouter(tags=["packages"])

PROJECT_PACKAGES = "/projects/{project_id}/packages"
ONE_PACKAGE = PROJECT_PACKAGES + "/{package_id}"


def _api_url(request: Request) -> str:
    return f"{base_url(request)}/api/v4"


def _filters(params: Params, order_by: tuple[str, ...]) -> management.PackageFilter:
    return management.PackageFilter(
        order_by=params.choice("order_by", order_by, default="created_at") or "created_at",
        sort=params.choice("sort", management.SORTS, default="asc") or "asc",
        package_type=params.choice("package_type", management.PACKAGE_TYPES),
        package_name=params.text("package_name", blank_is_absent=True),
        package_version=params.text("package_version", blank_is_absent=True),
        include_versionless=params.flag("include_versionless"),
        status=params.choice("status", management.STATUSES),
    )


def _readable_project(ctx: Ctx, project_id: str) -> Project:
    project = find_project(ctx, project_id)
    management.check_read(ctx, project)
    return project


@router.get(PROJECT_PACKAGES)
def list_project_packages(
    project_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    project = _readable_project(ctx, project_id)
    query = management.project_packages_query(ctx, project, _filters(params, management.ORDER_BY))
    can_destroy = management.may_destroy_packages(ctx, project)
    api_url = _api_url(request)
    return paginate_query(
        request, ctx.db, params, query, lambda p: package(p, project, api_url, can_destroy=can_destroy)
    )


@router.get("/groups/{group_id}/packages")
def list_group_packages(
    group_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    group = find_group(ctx, group_id)
    management.check_group_read(ctx, group)
    filters = _filters(params, management.GROUP_ORDER_BY)
    query = management.group_packages_query(
        ctx, group, filters, exclude_subgroups=params.flag("exclude_subgroups")
    )
    api_url = _api_url(request)

    def render(rows: list[Package]) -> list[dict[str, Any]]:
        ids = {p.project_id for p in rows}
        projects = {p.id: p for p in ctx.db.scalars(select(Project).where(Project.id.in_(ids))).all()}
        destroy = {pid: management.may_destroy_packages(ctx, p) for pid, p in projects.items()}
        return [
            package(p, projects[p.project_id], api_url, can_destroy=destroy[p.project_id], group=True)
            for p in rows
        ]

    return paginate_page(request, ctx.db, params, query, render)


@router.get(ONE_PACKAGE)
def get_project_package(
    project_id: str, package_id: str, request: Request, ctx: Ctx = api_ctx(auth=False)
) -> dict[str, Any]:
    wanted = path_id(package_id, "package_id")
    project = _readable_project(ctx, project_id)
    found = management.find_package(ctx, project, wanted)
    return package(
        found,
        project,
        _api_url(request),
        can_destroy=management.may_destroy_packages(ctx, project),
        versions=management.other_versions(ctx, found),
    )


@router.delete(ONE_PACKAGE, status_code=204)
def delete_project_package(project_id: str, package_id: str, ctx: Ctx = api_ctx()) -> Response:
    wanted = path_id(package_id, "package_id")
    project = _readable_project(ctx, project_id)
    management.delete_package(ctx, project, wanted)
    return Response(status_code=204)


@router.get(ONE_PACKAGE + "/package_files")
def list_package_files(
    project_id: str,
    package_id: str,
    request: Request,
    ctx: Ctx = api_ctx(auth=False),
    params: Params = params_dep(),
) -> Response:
    wanted = path_id(package_id, "package_id")
    project = _readable_project(ctx, project_id)
    found = management.find_package(ctx, project, wanted)
    query = management.package_files_query(
        found,
        order_by=params.choice("order_by", ("id", "file_name", "created_at"), default="id") or "id",
        sort=params.choice("sort", management.SORTS, default="asc") or "asc",
    )
    return paginate_query(request, ctx.db, params, query, package_file)


@router.delete(ONE_PACKAGE + "/package_files/{package_file_id}", status_code=204)
def delete_package_file(
    project_id: str, package_id: str, package_file_id: str, ctx: Ctx = api_ctx()
) -> Response:
    wanted = path_id(package_id, "package_id"), path_id(package_file_id, "package_file_id")
    project = _readable_project(ctx, project_id)
    management.delete_package_file(ctx, project, *wanted)
    return Response(status_code=204)
