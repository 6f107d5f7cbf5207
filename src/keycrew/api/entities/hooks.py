"""GitLab's hook entities (``API::Entities::Hook``, ``ProjectHook``, ``GroupHook``) and the
delivery log's (``GET .../hooks/:hook_id/events``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from keycrew.api.entities import iso
from keycrew.webhooks import secrets, service
from keycrew.webhooks.models import GROUP, PROJECT, SYSTEM, WebHook, WebHookLog


def _masked(secret_key: bytes, stored: str | None) -> list[dict[str, str]]:
    """Variables and headers: keys only (GitLab masks the values)."""
    return [{"key": key} for key in sorted(secrets.decrypt_map(secret_key, stored))]


def hook(row: WebHook, now: dt.datetime, secret_key: bytes) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": row.id,
        "url": row.url,
        "name": row.name or "",
        "description": row.description or "",
        "created_at": iso(row.created_at),
    }
    for name in service.COMMON_EVENTS:
        data[name] = bool(row.events.get(name))
    data |= {
        "enable_ssl_verification": row.enable_ssl_verification,
        "alert_status": service.alert_status(row, now),
        "disabled_until": iso(row.disabled_until) if service.alert_status(row, now) != "executable" else None,
        "url_variables": _masked(secret_key, row.encrypted_url_variables),
        "push_events_branch_filter": row.push_events_branch_filter,
        "branch_filter_strategy": row.branch_filter_strategy,
        "custom_webhook_template": row.custom_webhook_template,
        "custom_headers": _masked(secret_key, row.encrypted_custom_headers),
    }
    if row.type == PROJECT:
        data["project_id"] = row.project_id
    elif row.type == GROUP:
        data["group_id"] = row.group_id
    elif row.type == SYSTEM:
        data["organization_id"] = 1
    for name in service.EVENTS[row.type]:
        data.setdefault(name, bool(row.events.get(name)))
    return data


def hook_log(row: WebHookLog) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "trigger": row.trigger,
        "request_headers": row.request_headers,
        "request_data": row.request_data,
        "response_headers": row.response_headers,
        "response_body": row.response_body,
        "response_status": row.response_status,
        "execution_duration": row.execution_duration,
        "internal_error_message": row.internal_error_message,
        "created_at": iso(row.created_at),
    }
