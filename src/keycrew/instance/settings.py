"""The instance's settings row: settings an admin changes at run time (GitLab's application
settings), and the license's plan and paid seats."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.db.reads import prepared
from keycrew.errors import BadParameter, Forbidden
from keycrew.infra.ratelimit import (
    AUTHENTICATED_API,
    AUTHENTICATED_GIT_HTTP,
    UNAUTHENTICATED_API,
    Limit,
    ThrottleConfig,
)
from keycrew.instance.models import InstanceSettings, RateLimitOverride

# The request throttles an admin sets (GitLab's names, and its rule: integers greater than 0).
THROTTLES = (AUTHENTICATED_API, UNAUTHENTICATED_API, AUTHENTICATED_GIT_HTTP)
MAX_INT = 2**31 - 1


class Plan(StrEnum):
    FREE = "free"
    PREMIUM = "premium"
    ULTIMATE = "ultimate"


def instance_settings(ctx: Ctx) -> InstanceSettings:
    """The instance's settings row (id 1), created with the defaults on first need."""
    row = ctx.db.get(InstanceSettings, 1)
    if row is None:
        row = InstanceSettings(id=1, updated_at=ctx.now())
        ctx.db.add(row)
        ctx.db.flush()
    return row


class SettingsView(NamedTuple):
    """The settings row as column values, for reads (see ``keycrew.db.reads``)."""

    id: int
    plan: str
    seats: int | None
    max_personal_access_token_lifetime: int
    require_personal_access_token_expiry: bool
    inactive_resource_access_tokens_delete_after_days: int
    password_authentication_enabled_for_git: bool
    max_login_attempts: int
    failed_login_attempts_unlock_period_in_minutes: int
    service_access_tokens_expiration_enforced: bool
    throttle_authenticated_api_enabled: bool
    throttle_authenticated_api_requests_per_period: int
    throttle_authenticated_api_period_in_seconds: int
    throttle_unauthenticated_api_enabled: bool
    throttle_unauthenticated_api_requests_per_period: int
    throttle_unauthenticated_api_period_in_seconds: int
    throttle_authenticated_git_http_enabled: bool
    throttle_authenticated_git_http_requests_per_period: int
    throttle_authenticated_git_http_period_in_seconds: int
    updated_at: dt.datetime


_S = InstanceSettings.__table__.c
_SETTINGS_ROW = prepared(select(*[_S[name] for name in SettingsView._fields]).where(_S.id == 1))
# What a row created on first need holds: the model's own column defaults.
_DEFAULTS: dict[str, Any] = {
    column.key: getattr(column.default, "arg", None) for column in InstanceSettings.__table__.columns
}


def settings_view(ctx: Ctx) -> SettingsView:
    """The settings as ``instance_settings`` gives them, read without the ORM and without writing:
    the model's defaults while the row does not exist yet."""
    row = ctx.reads.first(_SETTINGS_ROW)
    if row is None:
        return SettingsView(**{**_DEFAULTS, "id": 1, "updated_at": ctx.now()})
    return SettingsView(*row)


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
        *(
            setting
            for throttle in THROTTLES
            for setting in (
                Setting(f"{throttle}_enabled", bool),
                Setting(f"{throttle}_requests_per_period", int, 1, MAX_INT),
                Setting(f"{throttle}_period_in_seconds", int, 1, MAX_INT),
            )
        ),
    )
}


def throttle_config(db: Session) -> ThrottleConfig:
    """The request throttles' settings and every per-user override (``infra.ratelimit``); read
    by the rate limiter's cache, not per request."""
    row = db.execute(_SETTINGS_ROW).first()
    view = SettingsView(**{**_DEFAULTS, "id": 1, "updated_at": None}) if row is None else SettingsView(*row)

    def limit(throttle: str) -> Limit | None:
        if not getattr(view, f"{throttle}_enabled"):
            return None
        return Limit(
            getattr(view, f"{throttle}_requests_per_period"), getattr(view, f"{throttle}_period_in_seconds")
        )

    overrides = {
        user_id: Limit(requests, period)
        for user_id, requests, period in db.execute(
            select(
                RateLimitOverride.user_id,
                RateLimitOverride.requests_per_period,
                RateLimitOverride.period_in_seconds,
            )
        )
    }
    return ThrottleConfig(
        authenticated_api=limit(AUTHENTICATED_API),
        unauthenticated_api=limit(UNAUTHENTICATED_API),
        authenticated_git_http=limit(AUTHENTICATED_GIT_HTTP),
        overrides=overrides or None,
    )


def read_settings(ctx: Ctx) -> InstanceSettings:
    if not ctx.actor.is_admin:
        raise Forbidden()
    return instance_settings(ctx)


def update_settings(ctx: Ctx, changes: dict[str, Any]) -> InstanceSettings:
    """Change settings (admins). Values are already typed by the adapter; bounds are checked here.

    Raises Forbidden for non-admins, BadParameter for values out of bounds.
    """
    row = read_settings(ctx)
    # Every value is checked before any is applied: a refused change leaves the row untouched.
    for name, value in changes.items():
        setting = SETTINGS[name]
        if setting.kind is int:
            assert isinstance(value, int)
            if (setting.minimum is not None and value < setting.minimum) or (
                setting.maximum is not None and value > setting.maximum
            ):
                raise BadParameter(f"{name} does not have a valid value")
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for name, value in changes.items():
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
            target=Target("ApplicationSetting", row.id, "application settings"),
            changes=new,
            previous=old,
        )
    return row


def set_license(ctx: Ctx, plan: str, seats: int | None) -> InstanceSettings:
    """Set the instance's plan and paid seats (None: unlimited). Returns the settings row.

    For admins and the system (the ``keycrew license set`` command). Raises Forbidden for anyone
    else, BadParameter for an unknown plan or a negative seat count.
    """
    if ctx.actor.via != "system" and not ctx.actor.is_admin:
        raise Forbidden()
    if plan not in {p.value for p in Plan}:
        raise BadParameter("plan does not have a valid value")
    if seats is not None and seats < 0:
        raise BadParameter("seats does not have a valid value")
    settings = instance_settings(ctx)
    old = {"plan": settings.plan, "seats": settings.seats}
    settings.plan = plan
    settings.seats = seats
    settings.updated_at = ctx.now()
    ctx.db.flush()
    record(
        ctx,
        Event.LICENSE_UPDATED,
        Entity.instance(),
        target=Target("License", 1, plan),
        changes={"from": old, "to": {"plan": plan, "seats": seats}},
    )
    return settings
