"""Instance settings an admin changes at run time (GitLab's application settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, record
from keycrew.context import Ctx
from keycrew.errors import BadParameter, Forbidden
from keycrew.identity.models import InstanceSettings
from keycrew.identity.seats import instance_settings


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type
    minimum: int | None = None
    maximum: int | None = None


# What PUT /application/settings may change, with GitLab's bounds.
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("max_personal_access_token_lifetime", int, 1, 400),
        Setting("require_personal_access_token_expiry", bool),
        Setting("inactive_resource_access_tokens_delete_after_days", int, 0, 3650),
        Setting("password_authentication_enabled_for_git", bool),
        Setting("max_login_attempts", int, 1, 100),
        Setting("failed_login_attempts_unlock_period_in_minutes", int, 1, 43200),
        Setting("service_access_tokens_expiration_enforced", bool),
    )
}


def read_settings(ctx: Ctx) -> InstanceSettings:
    if not ctx.actor.is_admin:
        raise Forbidden("403 Forbidden")
    return instance_settings(ctx)


def update_settings(ctx: Ctx, changes: dict[str, Any]) -> InstanceSettings:
    """Change settings (admins). Values are already typed by the adapter; bounds are checked here.

    Raises Forbidden for non-admins, BadParameter for values out of bounds.
    """
    row = read_settings(ctx)
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for name, value in changes.items():
        setting = SETTINGS[name]
        if setting.kind is int:
            assert isinstance(value, int)
            if (setting.minimum is not None and value < setting.minimum) or (
                setting.maximum is not None and value > setting.maximum
            ):
                raise BadParameter(f"{name} does not have a valid value")
        if getattr(row, name) != value:
            old[name] = getattr(row, name)
            new[name] = value
            setattr(row, name, value)
    if new:
        row.updated_at = ctx.now()
        record(
            ctx,
            Event.SETTINGS_UPDATED,
            Entity.instance(),
            target_type="ApplicationSetting",
            target_id=row.id,
            target_details="application settings",
            changes=new,
            previous=old,
        )
    return row
