"""/api/v4 routes: users (list, get, create, update, delete, state actions, memberships), /search,
/license."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from keycrew.access.memberships import UserMembership, user_memberships
from keycrew.access.namespaces import user_namespace
from keycrew.access.projects import projects_listing
from keycrew.access.seats import current_license, namespaces_and_seats, user_with_seat
from keycrew.actions import users as user_actions
from keycrew.actions.deletion import destroy_user
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.tokens import personal_access_token
from keycrew.api.entities.users import license_entity, user_detail, user_listed, user_public
from keycrew.api.pagination import fetch_listing, paginate_list, respond
from keycrew.api.routes.projects import project_list_options, render_projects
from keycrew.context import Ctx
from keycrew.db.base import record_id
from keycrew.db.listings import Listing
from keycrew.errors import BadParameter, Forbidden, MissingParameter, NotFound
from keycrew.identity import lifecycle
from keycrew.identity.models import User
from keycrew.identity.queries import UserFilters, find_user, read_user_view, user_listing
from keycrew.identity.users import UPDATABLE, NewUser, admin_create_user, update_user
from keycrew.identity.views import AnyUser, user_view
from keycrew.namespaces.kinds import SourceType
from keycrew.records.events import contributed_projects
from keycrew.tokens.personal import create_personal_access_token

router = APIRouter()

# GitLab's global search scopes; keycrew answers the users scope.
SEARCH_SCOPES = (
    "projects",
    "issues",
    "merge_requests",
    "milestones",
    "snippet_titles",
    "users",
    "wiki_blobs",
    "commits",
    "blobs",
    "notes",
)
ADVANCED_SEARCH_SCOPES = ("wiki_blobs", "commits", "blobs", "notes")

_TEXT = ("name", "email", "username", "bio", "note", "password")
_FLAGS = ("admin", "external", "can_create_group", "private_profile")


# -- rendering -------------------------------------------------------------------------------------


def _admin_renderer(
    ctx: Ctx, request: Request, users: Sequence[AnyUser]
) -> Callable[[AnyUser], dict[str, Any]]:
    """Renders users as admins see them, with the lookups for the whole page done at once."""
    namespaces, seats = namespaces_and_seats(ctx, {u.id for u in users})
    base = base_url(request)

    def render(user: AnyUser) -> dict[str, Any]:
        return user_detail(
            user,
            base,
            admin_view=True,
            namespace_id=namespaces.get(user.id),
            using_license_seat=user.id in seats,
        )

    return render


def _render_one(ctx: Ctx, request: Request, user: AnyUser) -> dict[str, Any]:
    if ctx.actor.is_admin:
        return _admin_renderer(ctx, request, [user])(user)
    return user_public(user, base_url(request))


def _paginate_users(ctx: Ctx, request: Request, params: Params, listing: Listing, *, basic: bool) -> Response:
    found = fetch_listing(ctx.reads, params, listing)
    users = [user_view(row) for row in found.rows]
    if basic or not ctx.actor.is_admin:
        base = base_url(request)
        items = [user_listed(u, base) for u in users]
    else:
        render = _admin_renderer(ctx, request, users)
        items = [render(u) for u in users]
    return respond(request, items, found)


def _filters(params: Params) -> UserFilters:
    return UserFilters(
        username=params.text("username"),
        search=params.text("search"),
        active=params.flag("active"),
        blocked=params.flag("blocked"),
        external=params.flag("external"),
        exclude_external=params.flag("exclude_external"),
        humans=params.flag("humans"),
        exclude_humans=params.flag("exclude_humans"),
        exclude_internal=params.flag("exclude_internal"),
        without_project_bots=params.flag("without_project_bots"),
        exclude_active=params.flag("exclude_active"),
        admins=params.flag("admins"),
        created_after=params.datetime("created_after"),
        created_before=params.datetime("created_before"),
        order_by=params.text("order_by", blank_is_absent=True),
        sort=params.text("sort", blank_is_absent=True),
        two_factor=params.text("two_factor"),
        public_email=params.text("public_email"),
    )


# -- users ------------------------------------------------------------------------------------------


@router.get("/users")
def list_users(
    request: Request, ctx: Ctx = api_ctx(auth=False, read_user=True), params: Params = params_dep()
) -> Response:
    query = user_listing(ctx, _filters(params))
    return _paginate_users(ctx, request, params, query, basic=False)


@router.get("/users/{user_id}")
def get_user_route(user_id: int, request: Request, ctx: Ctx = api_ctx(auth=False, read_user=True)) -> Any:
    if ctx.actor.is_anonymous:
        raise Forbidden("Not authorized!")
    if not ctx.actor.is_admin:
        return user_public(read_user_view(ctx, user_id), base_url(request))
    found = user_with_seat(ctx, record_id(user_id))
    if found is None:
        raise NotFound("User")
    user, namespace_id, seat = found
    return user_detail(
        user, base_url(request), admin_view=True, namespace_id=namespace_id, using_license_seat=seat
    )


@router.post("/users", status_code=201)
def post_user(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    if not ctx.actor.is_admin:
        raise Forbidden()
    user = admin_create_user(
        ctx,
        NewUser(
            username=params.text("username"),
            email=params.text("email"),
            name=params.text("name"),
            password=params.text("password"),
            reset_password=params.flag("reset_password"),
            force_random_password=params.flag("force_random_password"),
            skip_confirmation=params.flag("skip_confirmation"),
            admin=params.flag("admin"),
            external=params.flag("external"),
            bio=params.text("bio"),
            note=params.text("note"),
            projects_limit=params.integer("projects_limit"),
            can_create_group=params.boolean("can_create_group"),
            private_profile=params.boolean("private_profile"),
        ),
    )
    return _render_one(ctx, request, user)


def _changes(params: Params) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key in UPDATABLE:
        if not params.has(key):
            continue
        if key in _TEXT:
            changes[key] = params.text(key)
        elif key in _FLAGS:
            changes[key] = params.boolean(key)
        elif key == "projects_limit":
            changes[key] = params.integer(key)
        if changes.get(key) is None:
            changes.pop(key, None)
    return changes


@router.put("/users/{user_id}")
def put_user(
    user_id: int, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    if not ctx.actor.is_admin:
        raise Forbidden()
    user = update_user(ctx, find_user(ctx, user_id), _changes(params))
    return _render_one(ctx, request, user)


@router.delete("/users/{user_id}", status_code=204)
def delete_user(user_id: int, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    if not ctx.actor.is_admin:
        raise Forbidden()
    destroy_user(ctx, find_user(ctx, user_id), hard_delete=params.flag("hard_delete"))
    return Response(status_code=204)


@router.api_route("/users/{user_id}/memberships", methods=["GET", "HEAD"])
def list_user_memberships(
    user_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    """The user's direct projects and groups (admins only), by membership id. GitLab's route
    takes digits only: any other id matches no route (404)."""
    if not (user_id.isascii() and user_id.isdigit()):
        raise HTTPException(status_code=404)  # answered as an unknown route is
    kind = params.choice("type", [t.value for t in SourceType])
    if not ctx.actor.is_admin:
        raise Forbidden()
    user = read_user_view(ctx, record_id(int(user_id)))
    found = fetch_listing(
        ctx.reads, params, user_memberships(ctx, user.id, None if kind is None else SourceType(kind))
    )
    return respond(request, [_membership(UserMembership(*row)) for row in found.rows], found)


def _membership(row: UserMembership) -> dict[str, Any]:
    return {
        "source_id": row.source_id,
        "source_name": row.source_name,
        "source_type": row.source_type,
        "access_level": row.access_level,
    }


# -- a user's projects --------------------------------------------------------------------------------


@router.api_route("/users/{user_id}/projects", methods=["GET", "HEAD"], responses={405: {}})
def list_user_projects(
    user_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    """The projects of the user's personal namespace (by id or username) that the caller may
    see, with the filters of GET /projects: GitLab's user projects listing (keyset too)."""
    options = project_list_options(params)
    namespace = user_namespace(ctx, user_id)
    listed = projects_listing(ctx, namespace=namespace, **options)
    return render_projects(request, ctx, params, listed, keyset=options)


@router.api_route("/users/{user_id}/contributed_projects", methods=["GET", "HEAD"])
def list_contributed_projects(
    user_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    """The projects the user contributed to (pushes, issues, comments) that the caller may see."""
    options = project_list_options(params)
    listed = contributed_projects(ctx, user_id, order_by=options["order_by"], sort=options["sort"])
    return render_projects(request, ctx, params, listed)


@router.api_route("/users/{user_id}/starred_projects", methods=["GET", "HEAD"])
def list_starred_projects(
    user_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    """Always an empty page: keycrew has no stars."""
    return _empty_project_list(request, ctx, params, user_id)


def _empty_project_list(request: Request, ctx: Ctx, params: Params, user_id: str) -> Response:
    """A project listing's answer with nothing in it, once its filters are checked and the user
    found (404 otherwise), with the pagination headers."""
    project_list_options(params)
    params.flag("simple")
    user_namespace(ctx, user_id)
    return paginate_list(request, params, [], lambda item: item)


# -- state actions: each answers GitLab's raw JSON value (true, false or null) with 201 --------------


def _action(ctx: Ctx, user_id: int, action: Callable[[Ctx, User], Any]) -> JSONResponse:
    if not ctx.actor.is_admin:
        raise Forbidden()
    return JSONResponse(action(ctx, find_user(ctx, user_id)), status_code=201)


@router.post("/users/{user_id}/block", status_code=201)
def block(user_id: int, ctx: Ctx = api_ctx()) -> JSONResponse:
    return _action(ctx, user_id, lifecycle.block_user)


@router.post("/users/{user_id}/unblock", status_code=201)
def unblock(user_id: int, ctx: Ctx = api_ctx()) -> JSONResponse:
    return _action(ctx, user_id, user_actions.unblock_user)


@router.post("/users/{user_id}/ban", status_code=201)
def ban(user_id: int, ctx: Ctx = api_ctx()) -> JSONResponse:
    return _action(ctx, user_id, lifecycle.ban_user)


@router.post("/users/{user_id}/unban", status_code=201)
def unban(user_id: int, ctx: Ctx = api_ctx()) -> JSONResponse:
    return _action(ctx, user_id, lifecycle.unban_user)


@router.post("/users/{user_id}/deactivate", status_code=201)
def deactivate(user_id: int, ctx: Ctx = api_ctx()) -> JSONResponse:
    return _action(ctx, user_id, lifecycle.deactivate_user)


@router.post("/users/{user_id}/activate", status_code=201)
def activate(user_id: int, ctx: Ctx = api_ctx()) -> JSONResponse:
    return _action(ctx, user_id, lifecycle.activate_user)


@router.post("/users/{user_id}/approve", status_code=201)
def approve(user_id: int, ctx: Ctx = api_ctx()) -> JSONResponse:
    # GitLab looks the user up first (404), then lets the service refuse non-admins (403).
    return JSONResponse(lifecycle.approve_user(ctx, find_user(ctx, user_id)), status_code=201)


@router.post("/users/{user_id}/reject", status_code=201)
def reject(user_id: int, request: Request, ctx: Ctx = api_ctx()) -> JSONResponse:
    user = find_user(ctx, user_id)
    body = user_public(user, base_url(request))
    user_actions.reject_user(ctx, user)
    return JSONResponse(body, status_code=201)


@router.post("/users/{user_id}/personal_access_tokens", status_code=201)
def post_user_token(user_id: int, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    if not ctx.actor.is_admin:
        raise Forbidden()
    user = find_user(ctx, user_id)
    issued = create_personal_access_token(
        ctx,
        user,
        name=params.req_text("name"),
        scopes=params.strings("scopes", required=True) or [],
        expires_at=params.date("expires_at"),
        description=params.text("description"),
    )
    return personal_access_token(issued.token, ctx.today(), token_value=issued.value)


# -- /search (users scope) ---------------------------------------------------------------------------


@router.get("/search")
def search(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    term = params.text("search")
    scope = params.text("scope")
    missing = [f"{name} is missing" for name, value in (("search", term), ("scope", scope)) if value is None]
    if missing:
        raise MissingParameter(", ".join(missing))
    if scope not in SEARCH_SCOPES:
        raise BadParameter("scope does not have a valid value")
    if scope in ADVANCED_SEARCH_SCOPES:
        raise BadParameter("Scope supported only with advanced search")
    if scope != "users":
        raise BadParameter(f"Scope not supported: keycrew searches users only, not {scope}")
    assert term is not None
    # A blank term finds nobody here (GET /users?search= lists everyone instead, as GitLab).
    query = user_listing(ctx, UserFilters(search=term.strip() or "@", minimum_char_limit=False))
    return _paginate_users(ctx, request, params, query, basic=True)


# -- /license ----------------------------------------------------------------------------------------


@router.get("/license")
def get_license(ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return license_entity(current_license(ctx))
