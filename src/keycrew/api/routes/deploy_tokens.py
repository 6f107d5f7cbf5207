"""/api/v4 routes: deploy tokens of the instance (admins), of projects and of groups."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request, Response

from keycrew.access.lookup import find_group, find_project
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities.deploy_tokens import deploy_token
from keycrew.api.pagination import paginate_list, paginate_query
from keycrew.context import Ctx
from keycrew.errors import BadParameter
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens import deploy

router = APIRouter()

PROJECT_TOKENS = "/projects/{project_id}/deploy_tokens"
GROUP_TOKENS = "/groups/{group_id}/deploy_tokens"


def _token_id(raw: str) -> int:
    """Path ids are Integer in Grape: anything else is a 400, not a 404."""
    digits = raw[1:] if raw.startswith("-") else raw
    if not digits.isascii() or not digits.isdigit():
        raise BadParameter("token_id is invalid")
    return int(raw)


def _filters(params: Params) -> deploy.DeployTokenFilter:
    return deploy.DeployTokenFilter(
        active=params.flag("active"), scopes=tuple(params.strings("scopes") or ())
    )


def _list(
    request: Request,
    ctx: Ctx,
    params: Params,
    *,
    project: Project | None = None,
    group: Namespace | None = None,
) -> Response:
    filters = _filters(params)
    today = ctx.today()
    if filters.scopes:
        rows = deploy.list_deploy_tokens(ctx, project=project, group=group, filters=filters)
        return paginate_list(request, params, rows, lambda t: deploy_token(t, today))
    query = deploy.deploy_tokens_query(ctx, project=project, group=group, filters=filters)
    return paginate_query(request, ctx.db, params, query, lambda t: deploy_token(t, today))


def _expiry(params: Params) -> dt.date | None:
    moment = params.datetime("expires_at")
    if moment is None:
        return None
    try:
        return moment.astimezone(dt.UTC).date()
    except OverflowError:  # an offset that pushes year 1 or 9999 out of range
        raise BadParameter("expires_at is invalid") from None


def _create(
    ctx: Ctx, params: Params, *, project: Project | None = None, group: Namespace | None = None
) -> dict[str, Any]:
    issued = deploy.create_deploy_token(
        ctx,
        project=project,
        group=group,
        name=params.req_text("name"),
        scopes=params.strings("scopes", required=True) or [],
        expires_at=_expiry(params),
        username=params.text("username", blank_is_absent=True),
    )
    return deploy_token(issued.token, ctx.today(), token_value=issued.value)


@router.get("/deploy_tokens")
def list_all_deploy_tokens(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    return _list(request, ctx, params)


@router.get(PROJECT_TOKENS)
def list_project_deploy_tokens(
    project_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    return _list(request, ctx, params, project=find_project(ctx, project_id))


@router.post(PROJECT_TOKENS, status_code=201)
def create_project_deploy_token(
    project_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    return _create(ctx, params, project=find_project(ctx, project_id))


@router.get(PROJECT_TOKENS + "/{token_id}")
def get_project_deploy_token(project_id: str, token_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    project = find_project(ctx, project_id)
    token = deploy.find_deploy_token(ctx, _token_id(token_id), project=project)
    return deploy_token(token, ctx.today())


@router.delete(PROJECT_TOKENS + "/{token_id}", status_code=204)
def delete_project_deploy_token(project_id: str, token_id: str, ctx: Ctx = api_ctx()) -> Response:
    project = find_project(ctx, project_id)
    deploy.delete_deploy_token(ctx, _token_id(token_id), project=project)
    return Response(status_code=204)


@router.get(GROUP_TOKENS)
def list_group_deploy_tokens(
    group_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    return _list(request, ctx, params, group=find_group(ctx, group_id))


@router.post(GROUP_TOKENS, status_code=201)
def create_group_deploy_token(
    group_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    return _create(ctx, params, group=find_group(ctx, group_id))


@router.get(GROUP_TOKENS + "/{token_id}")
def get_group_deploy_token(group_id: str, token_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    group = find_group(ctx, group_id)
    return deploy_token(deploy.find_deploy_token(ctx, _token_id(token_id), group=group), ctx.today())


@router.delete(GROUP_TOKENS + "/{token_id}", status_code=204)
def delete_group_deploy_token(group_id: str, token_id: str, ctx: Ctx = api_ctx()) -> Response:
    group = find_group(ctx, group_id)
    deploy.delete_deploy_token(ctx, _token_id(token_id), group=group)
    return Response(status_code=204)
