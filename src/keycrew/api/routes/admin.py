"""/api/v4 routes: application settings and the admin token API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import day, iso
from keycrew.context import Ctx
from keycrew.instance.models import InstanceSettings
from keycrew.instance.settings import SETTINGS, read_settings, update_settings
from keycrew.tokens import admin as token_admin
from keycrew.tokens import secrets
from keycrew.tokens.models import DeployToken, PersonalAccessToken

router = APIRouter()


def _settings_entity(ctx: Ctx, row: InstanceSettings) -> dict[str, Any]:
    data: dict[str, Any] = {"id": row.id, "updated_at": iso(row.updated_at)}
    for name in SETTINGS:
        data[name] = getattr(row, name)
    # Set by the operator (KEYCREW_INSTANCE_TOKEN_PREFIX), not through this API.
    data["personal_access_token_prefix"] = secrets.full_prefix(secrets.PAT_PREFIX, ctx.instance.token_prefix)
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
        changes[name] = params.boolean(name) if setting.kind is bool else params.integer(name)
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


@router.post("/admin/token")
def identify_token(ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    return _token_record(token_admin.identify(ctx, params.req_text("token")))


@router.delete("/admin/token", status_code=204)
def revoke_token(ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    token_admin.revoke_by_value(ctx, params.req_text("token"))
    return Response(status_code=204)
