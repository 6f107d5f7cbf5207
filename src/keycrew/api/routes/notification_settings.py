"""/api/v4 notification settings: the caller's global setting, and theirs for a group or project
(GitLab's ``lib/api/notification_settings.rb``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from keycrew.access.lookup import find_group, find_project
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.context import Ctx
from keycrew.notifications.settings import (
    EMAIL_EVENTS,
    SettingView,
    Source,
    get_setting,
    update_setting,
)

router = APIRouter()


def _entity(view: SettingView, *, global_setting: bool) -> dict[str, Any]:
    """GitLab's NotificationSetting entity (GlobalNotificationSetting adds notification_email)."""
    body: dict[str, Any] = {"level": view.level.label}
    if view.events is not None:
        body["events"] = view.events
    if global_setting:
        body["notification_email"] = view.notification_email
    return body


def _update(ctx: Ctx, params: Params, source: Source | None) -> dict[str, Any]:
    level = params.text("level", blank_is_absent=True)
    events: dict[str, bool] = {}
    for event in EMAIL_EVENTS:
        value = params.boolean(event)
        if value is not None:
            events[event] = value
    email = params.text("notification_email", blank_is_absent=True) if source is None else None
    view = update_setting(ctx, source, level=level, events=events, email=email)
    return _entity(view, global_setting=source is None)


@router.get("/notification_settings")
def get_global(ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return _entity(get_setting(ctx), global_setting=True)


@router.put("/notification_settings")
def put_global(ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    return _update(ctx, params, None)


@router.get("/groups/{group_id}/notification_settings")
def get_group(group_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return _entity(get_setting(ctx, find_group(ctx, group_id)), global_setting=False)


@router.put("/groups/{group_id}/notification_settings")
def put_group(group_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    return _update(ctx, params, find_group(ctx, group_id))


@router.get("/projects/{project_id}/notification_settings")
def get_project(project_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return _entity(get_setting(ctx, find_project(ctx, project_id)), global_setting=False)


@router.put("/projects/{project_id}/notification_settings")
def put_project(project_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    return _update(ctx, params, find_project(ctx, project_id))
