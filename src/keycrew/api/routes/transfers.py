"""/api/v4 routes: moving a project to another namespace and a group under another parent."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew.access import projects as project_cases
from keycrew.access.compliance import framework_names
from keycrew.access.lookup import find_group, find_project, read_group, read_project
from keycrew.actions import transfers
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.namespaces import group_detail
from keycrew.api.entities.namespaces import project as project_entity
from keycrew.api.pagination import fetch_rows, respond
from keycrew.context import Ctx
from keycrew.errors import Forbidden, Invalid, Rejected
from keycrew.identity.views import read_user
from keycrew.namespaces.models import Project
from keycrew.namespaces.views import NamespaceLike, NamespaceView, namespace_rows

router = APIRouter()


def _ruby_hash(errors: dict[str, list[str]]) -> str:
    """``errors`` as Ruby prints a model's ``errors.messages`` ({:field=>["message"]})."""
    return "{" + ", ".join(f":{k}=>[{', '.join(json.dumps(m) for m in v)}]" for k, v in errors.items()) + "}"


def public_group_details(group: NamespaceLike, base: str) -> dict[str, Any]:
    """GitLab's PublicGroupDetails (transfer locations)."""
    return {
        "id": group.id,
        "web_url": f"{base}/groups/{group.full_path}",
        "name": group.name,
        "avatar_url": None,
        "full_name": group.full_name,
        "full_path": group.full_path,
    }


def _locations(request: Request, ctx: Ctx, params: Params, query: Any) -> Response:
    base = base_url(request)
    found = fetch_rows(ctx.reads, params, namespace_rows(query), counted=query)
    return respond(request, [public_group_details(NamespaceView(*row), base) for row in found.rows], found)


def _transfer_project(ctx: Ctx, project: Project, namespace: str | int) -> None:
    try:
        transfers.transfer_project(ctx, project, namespace)
    except Invalid as exc:
        if type(exc) is not Invalid or not exc.errors:
            raise
        # GitLab's API words the service's errors this way (a Ruby hash inspected).
        raise Rejected(f"Failed to transfer project {_ruby_hash(exc.errors)}") from exc


@router.put("/projects/{project_id}/transfer")
def put_project_transfer(
    project_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    namespace = params.text("namespace", required=True)
    assert namespace is not None
    project = find_project(ctx, project_id)
    _transfer_project(ctx, project, namespace)
    ns = project.namespace
    owner = read_user(ctx.reads, ns.owner_id) if ns.kind == "user" and ns.owner_id else None
    return project_entity(
        project,
        base_url(request),
        owner=owner,
        permissions=project_cases.project_access(ctx, project),
        repositories=ctx.instance.repositories_dir,
        compliance_frameworks=framework_names(ctx, [project.id])[project.id],
    )


@router.get("/projects/{project_id}/transfer_locations")
def list_project_transfer_locations(
    project_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    project = read_project(ctx, project_id)
    query = transfers.project_transfer_locations(
        ctx, project, search=params.text("search", blank_is_absent=True)
    )
    return _locations(request, ctx, params, query)


@router.post("/groups/{group_id}/projects/{project_id}", status_code=201)
def post_group_project(
    group_id: str, project_id: str, request: Request, ctx: Ctx = api_ctx()
) -> dict[str, Any]:
    """Move a project into this group: admins only (GitLab's ``authenticated_as_admin!``)."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    group = find_group(ctx, group_id)
    _transfer_project(ctx, find_project(ctx, project_id), group.id)
    return group_detail(group, base_url(request), None)


@router.post("/groups/{group_id}/transfer", status_code=201)
def post_group_transfer(
    group_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    parent_id = params.integer("group_id")
    group = find_group(ctx, group_id)
    transfers.transfer_group(ctx, group, parent_id)
    return group_detail(group, base_url(request), None)


@router.get("/groups/{group_id}/transfer_locations")
def list_group_transfer_locations(
    group_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    group = read_group(ctx, group_id)
    query = transfers.group_transfer_locations(ctx, group, search=params.text("search", blank_is_absent=True))
    return _locations(request, ctx, params, query)
