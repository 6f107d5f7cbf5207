"""/api/v4 routes: groups, their subgroups, descendants and projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew.access import groups as group_cases
from keycrew.access.compliance import framework_names
from keycrew.access.levels import MEMBER_LEVELS
from keycrew.access.lookup import find_group, read_group
from keycrew.access.projects import projects_listing
from keycrew.access.shares import shared_with_groups
from keycrew.actions import groups as group_actions
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.namespaces import group as group_entity
from keycrew.api.entities.namespaces import group_detail
from keycrew.api.pagination import fetch_rows, respond
from keycrew.api.routes.projects import project_list_options, render_projects
from keycrew.context import Ctx
from keycrew.errors import BadParameter
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.views import NamespaceLike, NamespaceView, namespace_rows, project_view

router = APIRouter()

# GET /groups/:id shows this many of the group's own projects (GitLab's limit too).
GROUP_PROJECTS_SHOWN = 100

VISIBILITIES = tuple(v.value for v in Visibility)
SORTS = ("asc", "desc")


def visibility_param(params: Params) -> Visibility | None:
    value = params.choice("visibility", VISIBILITIES)
    return Visibility(value) if value else None


def min_access_level_param(params: Params) -> int | None:
    level = params.integer("min_access_level")
    if level is not None and level not in MEMBER_LEVELS:
        raise BadParameter("min_access_level does not have a valid value")
    return level


def _list_groups(
    request: Request,
    ctx: Ctx,
    params: Params,
    *,
    parent: NamespaceLike | None = None,
    descendants_of: NamespaceLike | None = None,
) -> Response:
    query = group_cases.groups_query(
        ctx,
        all_available=params.boolean("all_available"),
        search=params.text("search", blank_is_absent=True),
        owned=params.flag("owned"),
        min_access_level=min_access_level_param(params),
        top_level_only=params.flag("top_level_only"),
        skip_groups=params.ids("skip_groups"),
        order_by=params.choice("order_by", group_cases.GROUP_ORDERS, default="name") or "name",
        sort=params.choice("sort", SORTS, default="asc") or "asc",
        parent=parent,
        descendants_of=descendants_of,
    )
    base = base_url(request)
    found = fetch_rows(ctx.reads, params, namespace_rows(query), counted=query)
    return respond(request, [group_entity(NamespaceView(*row), base) for row in found.rows], found)


@router.get("/groups")
def list_groups(request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()) -> Response:
    return _list_groups(request, ctx, params)


@router.post("/groups", status_code=201)
def post_group(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    group = group_cases.create_group(
        ctx,
        name=params.req_text("name"),
        path=params.req_text("path"),
        parent_id=params.integer("parent_id"),
        visibility=visibility_param(params),
        description=params.text("description") or "",
    )
    return group_entity(group, base_url(request))


@router.get("/groups/{group_id}")
def get_group(
    group_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> dict[str, Any]:
    group = read_group(ctx, group_id)
    projects = None
    if params.boolean("with_projects", True):
        listed = projects_listing(ctx, namespace=group, order_by="id", sort="asc")
        rows = ctx.reads.rows(listed.page, {**listed.values, "limit": GROUP_PROJECTS_SHOWN, "offset": 0})
        projects = [project_view(row) for row in rows]
    shared = shared_with_groups(ctx.reads, "group", [group.id], ctx.today())[group.id]
    return group_detail(
        group,
        base_url(request),
        projects,
        repositories=ctx.instance.repositories_dir,
        shared_with=shared,
        compliance_frameworks=framework_names(ctx, [p.id for p in projects or ()]),
    )


@router.put("/groups/{group_id}")
def put_group(
    group_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    group = find_group(ctx, group_id)
    group_cases.update_group(
        ctx,
        group,
        name=params.text("name"),
        path=params.text("path"),
        description=params.text("description"),
        visibility=visibility_param(params),
        resource_access_token_creation_allowed=params.boolean("resource_access_token_creation_allowed"),
    )
    return group_detail(group, base_url(request), None)


@router.delete("/groups/{group_id}", status_code=202)
def delete_group(group_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    # GitLab answers 202 Accepted; here the group and everything in it are gone before the answer.
    group_actions.delete_group(ctx, find_group(ctx, group_id))
    return {"message": "202 Accepted"}


@router.get("/groups/{group_id}/subgroups")
def list_subgroups(
    group_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    return _list_groups(request, ctx, params, parent=read_group(ctx, group_id))


@router.get("/groups/{group_id}/descendant_groups")
def list_descendant_groups(
    group_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    return _list_groups(request, ctx, params, descendants_of=read_group(ctx, group_id))


@router.get("/groups/{group_id}/projects")
def list_group_projects(
    group_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    group = read_group(ctx, group_id)
    listed = projects_listing(
        ctx,
        namespace=group,
        include_subgroups=params.flag("include_subgroups"),
        **project_list_options(params),
    )
    return render_projects(request, ctx, params, listed)
