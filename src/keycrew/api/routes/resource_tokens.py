"""/api/v4 routes: project and group access tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew.access.lookup import find_group, find_project, read_group, read_project
from keycrew.actions import resource_tokens as rt
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities.tokens import resource_access_token
from keycrew.api.pagination import fetch_listing, respond
from keycrew.api.params import path_id
from keycrew.api.routes.tokens import token_filters
from keycrew.context import Ctx
from keycrew.tokens.scopes import Scope
from keycrew.tokens.views import token_view

router = APIRouter()

KINDS = ("projects", "groups")


def _resource(ctx: Ctx, kind: str, ref: str) -> rt.Resource:
    return rt.Resource.of(find_project(ctx, ref) if kind == "projects" else find_group(ctx, ref))


def _read_resource(ctx: Ctx, kind: str, ref: str) -> rt.Resource:
    """``_resource`` for a read: the project or group as column values."""
    return rt.Resource.of(read_project(ctx, ref) if kind == "projects" else read_group(ctx, ref))


def _token_ref(raw: str) -> int | str:
    """A token id, or "self" (GET …/access_tokens/self: the token of the request)."""
    return raw if raw == "self" else path_id(raw, "token_id")


def _register(kind: str) -> None:
    base = f"/{kind}/{{resource_id}}/access_tokens"

    @router.get(base, name=f"list_{kind}_access_tokens")
    def list_tokens(
        resource_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> Response:
        resource = _read_resource(ctx, kind, resource_id)
        found = fetch_listing(ctx.reads, params, rt.token_listing(ctx, resource, token_filters(params)))
        tokens = [token_view(row) for row in found.rows]
        levels = rt.token_levels(ctx, resource, tokens)
        today = ctx.today()
        return respond(
            request, [resource_access_token(t, today, levels.get(t.user_id, 0)) for t in tokens], found
        )

    @router.get(base + "/{token_id}", name=f"get_{kind}_access_token")
    def get_token(resource_id: str, token_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
        resource = _read_resource(ctx, kind, resource_id)
        token = rt.read_resource_token(ctx, resource, _token_ref(token_id))
        return resource_access_token(token, ctx.today(), rt.bot_level(ctx, resource, token.user_id))

    @router.post(base, status_code=201, name=f"create_{kind}_access_token")
    def create_token(resource_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
        resource = _resource(ctx, kind, resource_id)
        issued, level = rt.create_resource_token(
            ctx,
            resource,
            name=params.req_text("name"),
            # Required, as GitLab's `requires :scopes` (absent or null: "scopes is missing").
            scopes=params.strings("scopes", required=True) or [],
            access_level=params.integer("access_level"),
            expires_at=params.date("expires_at"),
            description=params.text("description"),
        )
        return resource_access_token(issued.token, ctx.today(), level, token_value=issued.value)

    @router.post(base + "/self/rotate", name=f"rotate_self_{kind}_access_token")
    def rotate_self(
        resource_id: str,
        ctx: Ctx = api_ctx(accept=(Scope.API, Scope.SELF_ROTATE), rotation=True),
        params: Params = params_dep(),
    ) -> dict[str, Any]:
        resource = _resource(ctx, kind, resource_id)
        token = rt.find_resource_token(ctx, resource, "self")
        issued, level = rt.rotate_resource_token(ctx, resource, token, expires_at=params.date("expires_at"))
        return resource_access_token(issued.token, ctx.today(), level, token_value=issued.value)

    @router.post(base + "/{token_id}/rotate", name=f"rotate_{kind}_access_token")
    def rotate_token(
        resource_id: str, token_id: str, ctx: Ctx = api_ctx(rotation=True), params: Params = params_dep()
    ) -> dict[str, Any]:
        resource = _resource(ctx, kind, resource_id)
        token = rt.find_resource_token(ctx, resource, path_id(token_id, "token_id"))
        issued, level = rt.rotate_resource_token(ctx, resource, token, expires_at=params.date("expires_at"))
        return resource_access_token(issued.token, ctx.today(), level, token_value=issued.value)

    @router.delete(base + "/{token_id}", status_code=204, name=f"revoke_{kind}_access_token")
    def revoke_token(resource_id: str, token_id: str, ctx: Ctx = api_ctx()) -> Response:
        resource = _resource(ctx, kind, resource_id)
        token = rt.find_resource_token(ctx, resource, path_id(token_id, "token_id"))
        rt.revoke_resource_token(ctx, resource, token)
        return Response(status_code=204)


for _kind in KINDS:
    _register(_kind)
