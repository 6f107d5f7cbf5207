"""/api/v4 routes: personal and impersonation tokens, the admin token API, application settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew.access import associations
from keycrew.access.levels import MEMBER_LEVELS
from keycrew.api.deps import Params, api_ctx, params_dep, principal_dep, runtime_of
from keycrew.api.entities import base_url
from keycrew.api.entities.tokens import (
    group_association,
    impersonation_token,
    personal_access_token,
    project_association,
)
from keycrew.api.pagination import fetch_listing, page_window, respond
from keycrew.api.params import path_id
from keycrew.context import Ctx
from keycrew.errors import BadParameter
from keycrew.namespaces.views import NamespaceView, namespace_rows, project_view
from keycrew.tokens import personal
from keycrew.tokens.lifecycle import SORTS, TokenFilters
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.principal import Principal
from keycrew.tokens.scopes import Scope
from keycrew.tokens.views import token_view

router = APIRouter()

STATES = ("active", "inactive")


def token_filters(params: Params) -> TokenFilters:
    """GitLab's token list filters from the request parameters."""
    sort = params.choice("sort", tuple(SORTS))
    return TokenFilters(
        state=params.choice("state", STATES),
        revoked=params.boolean("revoked"),
        search=params.text("search", blank_is_absent=True),
        created_after=params.datetime("created_after"),
        created_before=params.datetime("created_before"),
        last_used_after=params.datetime("last_used_after"),
        last_used_before=params.datetime("last_used_before"),
        expires_after=params.date("expires_after"),
        expires_before=params.date("expires_before"),
        sort=sort,
    )


def _token_id(raw: str) -> int:
    return path_id(raw, "id")


@router.get("/personal_access_tokens")
def list_personal_access_tokens(
    request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    listing = personal.personal_token_listing(
        ctx, user_id=params.id("user_id"), filters=token_filters(params)
    )
    found = fetch_listing(ctx.reads, params, listing)
    today = ctx.today()
    return respond(request, [personal_access_token(token_view(row), today) for row in found.rows], found)


@router.get("/personal_access_tokens/self")
async def get_self_token(request: Request, principal: Principal = principal_dep(any_scope=True)) -> Any:
    # The token as of the principal cache: no session is opened.
    return personal_access_token(principal.token, runtime_of(request).clock.now().date())


@router.get("/personal_access_tokens/self/associations")
def get_self_token_associations(
    request: Request, ctx: Ctx = api_ctx(any_scope=True), params: Params = params_dep()
) -> dict[str, Any]:
    """The groups and projects the token's user may see, each list paginated by page/per_page
    (GitLab's PersonalAccessTokenAssociations); any scope will do."""
    level = params.integer("min_access_level")
    if level is not None and level not in MEMBER_LEVELS:
        raise BadParameter("min_access_level does not have a valid value")
    page, per_page = page_window(params)
    offset = (page - 1) * per_page
    groups = associations.associated_groups(ctx, level)
    group_rows = ctx.reads.rows(namespace_rows(groups).limit(per_page).offset(offset))
    listed = associations.associated_projects(ctx, level)
    project_rows = ctx.reads.rows(listed.page, {**listed.values, "limit": per_page, "offset": offset})
    projects = [project_view(row) for row in project_rows]
    levels = associations.Levels(ctx, projects)
    base = base_url(request)
    return {
        "groups": [
            group_association(group, base, levels.group(group))
            for group in (NamespaceView(*row) for row in group_rows)
        ],
        "projects": [project_association(p, base, levels.project(p)) for p in projects],
    }


@router.get("/personal_access_tokens/{token_id}")
def get_personal_access_token(token_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return personal_access_token(personal.read_personal_token(ctx, _token_id(token_id)), ctx.today())


@router.post("/personal_access_tokens/self/rotate")
def rotate_self_token(
    ctx: Ctx = api_ctx(accept=(Scope.API, Scope.SELF_ROTATE), rotation=True), params: Params = params_dep()
) -> dict[str, Any]:
    issued = personal.rotate_personal_token(
        ctx, personal.current_token(ctx), expires_at=params.date("expires_at")
    )
    return personal_access_token(issued.token, ctx.today(), token_value=issued.value)


@router.post("/personal_access_tokens/{token_id}/rotate")
def rotate_personal_access_token(
    token_id: str, ctx: Ctx = api_ctx(rotation=True), params: Params = params_dep()
) -> dict[str, Any]:
    token = personal.find_personal_token(ctx, _token_id(token_id))
    issued = personal.rotate_personal_token(ctx, token, expires_at=params.date("expires_at"))
    return personal_access_token(issued.token, ctx.today(), token_value=issued.value)


@router.delete("/personal_access_tokens/self", status_code=204)
def revoke_self_token(ctx: Ctx = api_ctx(any_scope=True)) -> Response:
    personal.revoke_personal_token(ctx, personal.current_token(ctx))
    return Response(status_code=204)


@router.delete("/personal_access_tokens/{token_id}", status_code=204)
def revoke_personal_access_token(token_id: str, ctx: Ctx = api_ctx()) -> Response:
    personal.revoke_personal_token(ctx, personal.find_personal_token(ctx, _token_id(token_id)))
    return Response(status_code=204)


@router.post("/user/personal_access_tokens", status_code=201)
def create_own_token(ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    issued = personal.create_own_personal_access_token(
        ctx,
        name=params.req_text("name"),
        scopes=params.strings("scopes", required=True) or [],
        expires_at=params.date("expires_at"),
        description=params.text("description"),
    )
    return personal_access_token(issued.token, ctx.today(), token_value=issued.value)


# -- impersonation tokens (admins) ---------------------------------------------------------------


@router.get("/users/{user_id}/impersonation_tokens")
def list_impersonation_tokens(
    user_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    owner_id = personal.impersonated_user_id(ctx, path_id(user_id, "user_id"))
    state = params.choice("state", ("all", *STATES), default="all")
    listing = personal.impersonation_token_listing(ctx, owner_id, None if state == "all" else state)
    found = fetch_listing(ctx.reads, params, listing)
    today = ctx.today()
    return respond(request, [impersonation_token(token_view(row), today) for row in found.rows], found)


@router.post("/users/{user_id}/impersonation_tokens", status_code=201)
def create_impersonation_token(
    user_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    user = personal.impersonated_user(ctx, path_id(user_id, "user_id"))
    issued = personal.create_impersonation_token(
        ctx,
        user,
        name=params.req_text("name"),
        scopes=params.strings("scopes", required=True) or [],
        expires_at=params.date("expires_at"),
    )
    return impersonation_token(issued.token, ctx.today(), token_value=issued.value)


def _impersonation_token(ctx: Ctx, user_id: str, token_id: str) -> PersonalAccessToken:
    user = personal.impersonated_user(ctx, path_id(user_id, "user_id"))
    return personal.find_impersonation_token(ctx, user, path_id(token_id, "impersonation_token_id"))


@router.get("/users/{user_id}/impersonation_tokens/{token_id}")
def get_impersonation_token(user_id: str, token_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    owner_id = personal.impersonated_user_id(ctx, path_id(user_id, "user_id"))
    token = personal.read_impersonation_token(ctx, owner_id, path_id(token_id, "impersonation_token_id"))
    return impersonation_token(token, ctx.today())


@router.delete("/users/{user_id}/impersonation_tokens/{token_id}", status_code=204)
def revoke_impersonation_token(user_id: str, token_id: str, ctx: Ctx = api_ctx()) -> Response:
    personal.revoke_personal_token(ctx, _impersonation_token(ctx, user_id, token_id))
    return Response(status_code=204)
