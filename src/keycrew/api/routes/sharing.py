"""/api/v4 routes: sharing groups and projects with groups, and a project's groups."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew.access import shares
from keycrew.access.levels import MEMBER_LEVELS, AccessLevel
from keycrew.access.lookup import find_group, find_project, read_project
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.namespaces import group_detail
from keycrew.api.pagination import fetch_rows, respond
from keycrew.api.params import path_id
from keycrew.context import Ctx
from keycrew.errors import BadParameter
from keycrew.namespaces.views import NamespaceView, namespace_rows

router = APIRouter()


def _link_params(params: Params) -> dict[str, Any]:
    """group_id, group_access and expires_at, checked as Grape checks them (400 first)."""
    group_id = params.req_integer("group_id")
    group_access = params.req_integer("group_access")
    if group_access not in shares.LINK_LEVELS:
        raise BadParameter("group_access does not have a valid value")
    return {"group_id": group_id, "group_access": group_access, "expires_at": params.date("expires_at")}


def public_group_details(ns: NamespaceView, base: str) -> dict[str, Any]:
    """GitLab's PublicGroupDetails."""
    return {
        "id": ns.id,
        "web_url": f"{base}/groups/{ns.full_path}",
        "name": ns.name,
        "avatar_url": None,
        "full_name": ns.full_name,
        "full_path": ns.full_path,
    }


@router.post("/groups/{group_id}/share", status_code=201)
def share_group(
    group_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    values = _link_params(params)
    group = find_group(ctx, group_id)
    shares.share_group(ctx, group, **values)
    shared = shares.shared_with_groups(ctx.reads, "group", [group.id], ctx.today())[group.id]
    return group_detail(group, base_url(request), None, shared_with=shared)


@router.delete("/groups/{group_id}/share/{shared_with_id}", status_code=204)
def unshare_group(group_id: str, shared_with_id: str, ctx: Ctx = api_ctx()) -> Response:
    shared_with = path_id(shared_with_id, "group_id")
    shares.unshare_group(ctx, find_group(ctx, group_id), shared_with)
    return Response(status_code=204)


@router.post("/projects/{project_id}/share", status_code=201)
def share_project(project_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    values = _link_params(params)
    project = find_project(ctx, project_id, min_level=AccessLevel.MAINTAINER)
    link = shares.share_project(ctx, project, **values)
    return {
        "id": link.id,
        "project_id": link.project_id,
        "group_id": link.group_id,
        "group_access": link.group_access,
        "expires_at": None if link.expires_at is None else link.expires_at.isoformat(),
    }


@router.delete("/projects/{project_id}/share/{group_id}", status_code=204)
def unshare_project(project_id: str, group_id: str, ctx: Ctx = api_ctx()) -> Response:
    shared_with = path_id(group_id, "group_id")
    project = find_project(ctx, project_id, min_level=AccessLevel.MAINTAINER)
    shares.unshare_project(ctx, project, shared_with)
    return Response(status_code=204)


@router.get("/projects/{project_id}/groups")
def list_project_groups(
    project_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    level = params.integer("shared_min_access_level")
    if level is not None and level not in MEMBER_LEVELS:
        raise BadParameter("shared_min_access_level does not have a valid value")
    project = read_project(ctx, project_id)
    query = shares.project_groups_query(
        ctx,
        project,
        with_shared=params.flag("with_shared"),
        shared_visible_only=params.flag("shared_visible_only"),
        shared_min_access_level=level,
        search=params.text("search", blank_is_absent=True),
        skip_groups=params.ids("skip_groups"),
    )
    base = base_url(request)
    found = fetch_rows(ctx.reads, params, namespace_rows(query), counted=query)
    return respond(request, [public_group_details(NamespaceView(*row), base) for row in found.rows], found)
