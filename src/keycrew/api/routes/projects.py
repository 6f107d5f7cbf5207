"""/api/v4 routes: projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew.access import projects as project_cases
from keycrew.access.compliance import framework_names
from keycrew.access.levels import MEMBER_LEVELS
from keycrew.access.lookup import find_project, read_project_with_levels
from keycrew.access.shares import shared_with_groups
from keycrew.actions import projects as project_actions
from keycrew.api.deps import Params, api_ctx, params_dep, runtime_of
from keycrew.api.entities import base_url
from keycrew.api.entities.namespaces import project as project_entity
from keycrew.api.entities.namespaces import project_simple
from keycrew.api.pagination import (
    fetch_keyset,
    fetch_listing,
    keyset_requested,
    keyset_unavailable,
    respond,
    respond_keyset,
)
from keycrew.context import Ctx
from keycrew.db.listings import Listing
from keycrew.errors import BadParameter, Forbidden, NotFound
from keycrew.identity.models import User
from keycrew.identity.views import read_user, user_briefs
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.views import ProjectLike, ProjectView, project_view
from keycrew.repos import storage as repos
from keycrew.servicedesk import settings as service_desk_settings

router = APIRouter()

VISIBILITIES = tuple(v.value for v in Visibility)
SORTS = ("asc", "desc")


def _visibility(params: Params) -> Visibility | None:
    value = params.choice("visibility", VISIBILITIES)
    return Visibility(value) if value else None


def project_list_options(params: Params) -> dict[str, Any]:
    level = params.integer("min_access_level")
    if level is not None and level not in MEMBER_LEVELS:
        raise BadParameter("min_access_level does not have a valid value")
    return {
        "owned": params.flag("owned"),
        "membership": params.flag("membership"),
        "search": params.text("search", blank_is_absent=True),
        "visibility": _visibility(params),
        "min_access_level": level,
        "archived": params.boolean("archived"),
        "order_by": params.choice("order_by", project_cases.PROJECT_ORDERS, default="created_at")
        or "created_at",
        "sort": params.choice("sort", SORTS, default="desc") or "desc",
        "id_after": params.integer("id_after"),
        "id_before": params.integer("id_before"),
    }


def render_projects(
    request: Request, ctx: Ctx, params: Params, listed: Listing, *, keyset: dict[str, Any] | None = None
) -> Response:
    """A page of a project listing (``projects_listing``), rendered in one go. ``keyset``: the
    listing's options, where the route follows GitLab's ``pagination=keyset`` (by id only)."""
    if keyset is not None and keyset_requested(params):
        if keyset["order_by"] != "id":
            return keyset_unavailable()
        rows, more = fetch_keyset(ctx.reads, params, listed)
        items = _render_projects(request, ctx, params, [project_view(row) for row in rows])
        after = "id_before" if keyset["sort"] == "desc" else "id_after"
        return respond_keyset(request, items, {after: str(rows[-1][0])} if more else None)
    found = fetch_listing(ctx.reads, params, listed)
    return respond(
        request, _render_projects(request, ctx, params, [project_view(r) for r in found.rows]), found
    )


def _render_projects(request: Request, ctx: Ctx, params: Params, projects: list[ProjectView]) -> list[Any]:
    base = base_url(request)
    if params.flag("simple"):
        return [project_simple(p, base) for p in projects]
    owners = user_briefs(
        ctx.reads,
        {p.namespace.owner_id for p in projects if p.namespace.kind == "user" and p.namespace.owner_id},
    )
    with_branch = repos.with_branches(ctx.instance.repositories_dir, [p.id for p in projects])
    frameworks = framework_names(ctx, [p.id for p in projects])
    desks = service_desk_settings.listing_fields(ctx, runtime_of(request).settings, projects)
    return [
        project_entity(
            p,
            base,
            owner=owners.get(p.namespace.owner_id or 0),
            empty_repo=p.id not in with_branch,
            compliance_frameworks=frameworks.get(p.id, ()),
            service_desk=desks.get(p.id, (False, None)),
        )
        for p in projects
    ]


def _detail(
    request: Request, ctx: Ctx, project: ProjectLike, levels: tuple[int, int] | None = None
) -> dict[str, Any]:
    ns = project.namespace
    owner = read_user(ctx.reads, ns.owner_id) if ns.kind == "user" and ns.owner_id else None
    return project_entity(
        project,
        base_url(request),
        owner=owner,
        permissions=project_cases.project_access(ctx, project, levels),
        repositories=ctx.instance.repositories_dir,
        shared_with=shared_with_groups(ctx.reads, "project", [project.id], ctx.today())[project.id],
        compliance_frameworks=framework_names(ctx, [project.id])[project.id],
        service_desk=service_desk_settings.entity_fields(ctx, runtime_of(request).settings, project),
    )


def _create(request: Request, ctx: Ctx, params: Params, for_user: User | None = None) -> dict[str, Any]:
    project = project_actions.create_project(
        ctx,
        name=params.text("name"),
        path=params.text("path"),
        namespace_id=params.integer("namespace_id"),
        visibility=_visibility(params),
        description=params.text("description") or "",
        default_branch=params.text("default_branch"),
        for_user=for_user,
        initialize_with_readme=params.flag("initialize_with_readme"),
    )
    return _detail(request, ctx, project)


@router.api_route("/projects", methods=["GET", "HEAD"], responses={405: {}})
def list_projects(
    request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    options = project_list_options(params)
    listed = project_cases.projects_listing(ctx, **options)
    return render_projects(request, ctx, params, listed, keyset=options)


@router.post("/projects", status_code=201)
def post_project(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    return _create(request, ctx, params)


@router.post("/projects/user/{user_id}", status_code=201)
def post_project_for_user(
    user_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    if not ctx.actor.is_admin:
        raise Forbidden()
    if not (user_id.isascii() and user_id.isdigit()):
        raise BadParameter("user_id is invalid")
    user = ctx.db.get(User, int(user_id)) if len(user_id) < 10 else None
    if user is None:
        raise NotFound("User")
    return _create(request, ctx, params, for_user=user)


@router.api_route("/projects/{project_id}", methods=["GET", "HEAD"])
def get_project(project_id: str, request: Request, ctx: Ctx = api_ctx(auth=False)) -> dict[str, Any]:
    project, levels = read_project_with_levels(ctx, project_id)
    return _detail(request, ctx, project, levels)


@router.put("/projects/{project_id}")
def put_project(
    project_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    project = find_project(ctx, project_id)
    service_desk = params.boolean("service_desk_enabled")
    name, path, description = params.text("name"), params.text("path"), params.text("description")
    visibility, default_branch = _visibility(params), params.text("default_branch")
    if service_desk is None or any(
        v is not None for v in (name, path, description, visibility, default_branch)
    ):
        project_actions.update_project(
            ctx,
            project,
            name=name,
            path=path,
            description=description,
            visibility=visibility,
            default_branch=default_branch,
        )
    if service_desk is not None:
        service_desk_settings.update_service_desk(ctx, project, enabled=service_desk)
    return _detail(request, ctx, project)


@router.delete("/projects/{project_id}", status_code=202)
def delete_project(project_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    # GitLab answers 202 Accepted; here the project is gone before the answer.
    project_actions.delete_project(ctx, find_project(ctx, project_id))
    return {"message": "202 Accepted"}
