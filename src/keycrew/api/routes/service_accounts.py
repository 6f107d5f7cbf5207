"""/api/v4 routes: service accounts of the instance, of top-level groups and of projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew.actions import service_accounts as sa
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities.service_accounts import service_account
from keycrew.api.entities.tokens import personal_access_token
from keycrew.api.pagination import fetch_listing, paginate_query, respond
from keycrew.api.routes.tokens import token_filters
from keycrew.context import Ctx
from keycrew.tokens.views import token_view

router = APIRouter()


def _account_fields(params: Params) -> dict[str, str | None]:
    return {key: params.text(key) for key in ("name", "username", "email")}


def _list(request: Request, ctx: Ctx, params: Params, owner: sa.Owner) -> Response:
    query = sa.service_accounts_query(
        owner,
        order_by=params.choice("order_by", sa.ORDER_BY),
        sort=params.choice("sort", sa.SORT),
    )
    return paginate_query(request, ctx.db, params, query, service_account)


# -- instance (admins) ------------------------------------------------------------------------------


@router.post("/service_accounts", status_code=201)
def create_instance_account(ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    owner = sa.instance_owner(ctx)
    return service_account(sa.create_service_account(ctx, owner, **_account_fields(params)))


@router.get("/service_accounts")
def list_instance_accounts(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    return _list(request, ctx, params, sa.instance_owner(ctx))


@router.patch("/service_accounts/{user_id}")
def update_instance_account(
    user_id: int, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    user = sa.find_service_account(ctx, sa.instance_owner(ctx), user_id)
    return service_account(sa.update_service_account(ctx, user, **_account_fields(params)))


# -- groups and projects (group Owners; project Owners and Maintainers; admins) -------------------


def _owner(ctx: Ctx, kind: str, ref: str) -> sa.Owner:
    return sa.group_owner(ctx, ref) if kind == "groups" else sa.project_owner(ctx, ref)


def _register(kind: str) -> None:
    base = f"/{kind}/{{source_id}}/service_accounts"
    account = base + "/{user_id}"
    tokens = account + "/personal_access_tokens"

    @router.post(base, status_code=201, name=f"create_{kind}_service_account")
    def create_account(source_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
        owner = _owner(ctx, kind, source_id)
        return service_account(sa.create_service_account(ctx, owner, **_account_fields(params)))

    @router.get(base, name=f"list_{kind}_service_accounts")
    def list_accounts(
        source_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> Response:
        return _list(request, ctx, params, _owner(ctx, kind, source_id))

    @router.patch(account, name=f"update_{kind}_service_account")
    def update_account(
        source_id: str, user_id: int, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> dict[str, Any]:
        user = sa.find_service_account(ctx, _owner(ctx, kind, source_id), user_id)
        return service_account(sa.update_service_account(ctx, user, **_account_fields(params)))

    @router.delete(account, status_code=204, name=f"delete_{kind}_service_account")
    def delete_account(
        source_id: str, user_id: int, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> Response:
        user = sa.find_service_account(ctx, _owner(ctx, kind, source_id), user_id)
        sa.delete_service_account(ctx, user, hard_delete=params.flag("hard_delete"))
        return Response(status_code=204)

    @router.get(tokens, name=f"list_{kind}_service_account_tokens")
    def list_tokens(
        source_id: str, user_id: int, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> Response:
        user = sa.find_service_account(ctx, _owner(ctx, kind, source_id), user_id)
        found = fetch_listing(
            ctx.reads, params, sa.service_account_token_listing(ctx, user, token_filters(params))
        )
        today = ctx.today()
        return respond(request, [personal_access_token(token_view(row), today) for row in found.rows], found)

    @router.post(tokens, status_code=201, name=f"create_{kind}_service_account_token")
    def create_token(
        source_id: str, user_id: int, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> dict[str, Any]:
        user = sa.find_service_account(ctx, _owner(ctx, kind, source_id), user_id)
        issued = sa.create_service_account_token(
            ctx,
            user,
            name=params.req_text("name"),
            scopes=params.strings("scopes", required=True) or [],
            expires_at=params.date("expires_at"),
            description=params.text("description"),
        )
        return personal_access_token(issued.token, ctx.today(), token_value=issued.value)

    @router.delete(tokens + "/{token_id}", status_code=204, name=f"revoke_{kind}_service_account_token")
    def revoke_token(source_id: str, user_id: int, token_id: int, ctx: Ctx = api_ctx()) -> Response:
        user = sa.find_service_account(ctx, _owner(ctx, kind, source_id), user_id)
        sa.revoke_service_account_token(ctx, sa.find_service_account_token(ctx, user, token_id))
        return Response(status_code=204)

    @router.post(tokens + "/{token_id}/rotate", name=f"rotate_{kind}_service_account_token")
    def rotate_token(
        source_id: str,
        user_id: int,
        token_id: int,
        ctx: Ctx = api_ctx(rotation=True),
        params: Params = params_dep(),
    ) -> dict[str, Any]:
        user = sa.find_service_account(ctx, _owner(ctx, kind, source_id), user_id)
        token = sa.find_service_account_token(ctx, user, token_id)
        issued = sa.rotate_service_account_token(ctx, token, expires_at=params.date("expires_at"))
        return personal_access_token(issued.token, ctx.today(), token_value=issued.value)


for _kind in ("groups", "projects"):
    _register(_kind)
