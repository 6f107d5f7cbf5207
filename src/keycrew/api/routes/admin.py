"""/api/v4 routes: application settings, the admin token API, and per-user rate-limit overrides."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import day, iso
from keycrew.context import Ctx
from keycrew.identity import rate_limits
from keycrew.instance.models import InstanceSettings, RateLimitOverride
from keycrew.instance.settings import SETTINGS, instance_token_prefix, read_settings, update_settings
from keycrew.tokens import admin as token_admin
from keycrew.tokens import secrets
from keycrew.tokens.models import DeployToken, PersonalAccessToken

router = APIRouter()


def _settings_entity(ctx: Ctx, row: InstanceSettings) -> dict[str, Any]:
    data: dict[str, Any] = {"id": row.id, "updated_at": iso(row.updated_at)}
    for name in SETTINGS:
        data[name] = getattr(row, name)
    # GitLab's setting is the whole prefix of personal tokens: the instance prefix (the admin's,
    # else KEYCREW_INSTANCE_TOKEN_PREFIX) and the kind's.
    data["personal_access_token_prefix"] = secrets.full_prefix(
        secrets.PAT_PREFIX, instance_token_prefix(ctx, row.personal_access_token_prefix)
    )
    return data


@router.get("/application/settings")
def get_settings(ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return _settings_entity(ctx, read_settings(ctx))


@router.put("/application/settings")
def put_settings(ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        if not params.has(name):
            continue
        value: bool | int | str | None
        if setting.kind is bool:
            value = params.boolean(name)
        elif setting.kind is str:
            value = params.text(name)  # blank: back to the default
        else:
            value = params.integer(name)
        if value is not None:  # a blank value ("name=") is no value, as Params reads it
            changes[name] = value
    return _settings_entity(ctx, update_settings(ctx, changes))


def _token_record(found: PersonalAccessToken | DeployToken) -> dict[str, Any]:
    if isinstance(found, PersonalAccessToken):
        return {
            "id": found.id,
            "user_id": found.user_id,
            "name": found.name,
            "description": found.description,
            "revoked": found.revoked,
            "expires_at": day(found.expires_at),
            "created_at": iso(found.created_at),
            "updated_at": iso(found.updated_at),
            "scopes": list(found.scopes),
            "impersonation": found.impersonation,
            "last_used_at": iso(found.last_used_at),
            "previous_personal_access_token_id": found.previous_personal_access_token_id,
            "token_type": "personal_access_token",
        }
    return {
        "id": found.id,
        "name": found.name,
        "username": found.username,
        "revoked": found.revoked,
        "expires_at": iso(None)
        if found.expires_at is None
        else f"{found.expires_at.isoformat()}T00:00:00.000Z",
        "created_at": iso(found.created_at),
        "scopes": list(found.scopes),
        "project_id": found.project_id,
        "group_id": found.group_id,
        "token_type": "deploy_token",
    }


# GitLab answers 422 for a value that is no token of a known kind.
@router.post("/admin/token", responses={422: {"description": "Unsupported token type"}})
def identify_token(ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    return _token_record(token_admin.identify(ctx, params.req_text("token")))


@router.delete("/admin/token", status_code=204, responses={422: {"description": "Unsupported token type"}})
def revoke_token(ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    token_admin.revoke_by_value(ctx, params.req_text("token"))
    return Response(status_code=204)


# -- per-user rate-limit overrides (a keycrew extension: GitLab has no API for this) -------------


def _override_entity(row: RateLimitOverride) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "requests_per_period": row.requests_per_period,
        "period_in_seconds": row.period_in_seconds,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


@router.get("/users/{user_id}/rate_limit")
def get_rate_limit(user_id: int, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return _override_entity(rate_limits.read_override(ctx, user_id))


@router.put("/users/{user_id}/rate_limit")
def put_rate_limit(user_id: int, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    requests = params.req_integer("requests_per_period")
    period = params.integer("period_in_seconds")
    return _override_entity(rate_limits.set_override(ctx, user_id, requests, period))


@router.delete("/users/{user_id}/rate_limit", status_code=204)
def delete_rate_limit(user_id: int, ctx: Ctx = api_ctx()) -> Response:
    rate_limits.remove_override(ctx, user_id)
    return Response(status_code=204)
