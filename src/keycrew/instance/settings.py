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
from keycrew.errors import BadParameter, Forbidden, Invalid
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
MIN_DORMANT_PERIOD = 90
# GitLab's email_confirmation_setting values.
EMAIL_CONFIRMATION_SETTINGS = ("off", "soft", "hard")
# GitLab's rule for personal_access_token_prefix: up to 20 characters of this alphabet.
PREFIX_MAX = 20
_PREFIX_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=/@:.-")
# What personal tokens' values start with after the instance prefix (tokens.secrets.PAT_PREFIX).
PAT_PREFIX = "glpat-"
PREFIX_FORMAT = (
    "can contain only letters of the Base64 alphabet (RFC4648) with the addition of '@', ':' and '.'"
)


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
    default_projects_limit: int
    personal_access_token_prefix: str | None
    deactivate_dormant_users: bool
    deactivate_dormant_users_period: int
    delete_unconfirmed_users: bool
    unconfirmed_users_delete_after_days: int
    delete_inactive_projects: bool
    inactive_projects_delete_after_months: int
    inactive_projects_min_size_mb: int
    inactive_projects_send_warning_email_after_months: int
    user_deactivation_emails_enabled: bool
    email_confirmation_setting: str
    allow_top_level_group_owners_to_create_service_accounts: bool
    admin_mode: bool
    allow_local_requests_from_web_hooks_and_services: bool
    allow_local_requests_from_system_hooks: bool
    resource_access_token_notify_inherited: bool
    allow_bypass_placeholder_confirmation: bool
    bulk_import_enabled: bool
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
    # Checked as GitLab's model validations do, with their messages per attribute (400
    # {"message": {"<name>": ["..."]}}), rather than by the bounds above.
    validated: bool = False
    # The values a text setting may take (400 "<name> does not have a valid value" otherwise).
    choices: tuple[str, ...] | None = None


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
        Setting("default_projects_limit", int, 0, MAX_INT, validated=True),
        Setting("personal_access_token_prefix", str, validated=True),
        Setting("deactivate_dormant_users", bool),
        Setting("deactivate_dormant_users_period", int, MIN_DORMANT_PERIOD, MAX_INT, validated=True),
        Setting("delete_unconfirmed_users", bool),
        Setting("unconfirmed_users_delete_after_days", int, 1, MAX_INT, validated=True),
        Setting("delete_inactive_projects", bool),
        Setting("inactive_projects_delete_after_months", int, 1, MAX_INT, validated=True),
        Setting("inactive_projects_min_size_mb", int, 0, MAX_INT, validated=True),
        Setting("inactive_projects_send_warning_email_after_months", int, 1, MAX_INT, validated=True),
        Setting("user_deactivation_emails_enabled", bool),
        Setting("email_confirmation_setting", str, choices=EMAIL_CONFIRMATION_SETTINGS),
        Setting("allow_top_level_group_owners_to_create_service_accounts", bool),
        Setting("admin_mode", bool),
        Setting("allow_local_requests_from_web_hooks_and_services", bool),
        Setting("allow_local_requests_from_system_hooks", bool),
        Setting("resource_access_token_notify_inherited", bool),
        Setting("allow_bypass_placeholder_confirmation", bool),
        Setting("bulk_import_enabled", bool),
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


def instance_token_prefix(ctx: Ctx, stored: str | None) -> str:
    """The instance prefix of new tokens given the row's ``personal_access_token_prefix``: the
    admin's if set, else the operator's (KEYCREW_INSTANCE_TOKEN_PREFIX)."""
    return ctx.instance.configured_token_prefix if stored is None else stored


def stored_token_prefix(value: str | None) -> str | None:
    """What an admin's personal_access_token_prefix stores: GitLab's setting is the whole prefix
    of personal tokens ("acme-glpat-"), keycrew's the instance prefix in front of every kind's
    ("acme-"), so either is taken; blank goes back to the operator's."""
    if not value:
        return None
    return value.removesuffix(PAT_PREFIX)


def _numeric_errors(setting: Setting, value: int) -> list[str]:
    if setting.minimum is not None and value < setting.minimum:
        if setting.minimum == 0:
            return ["must be greater than or equal to 0"]
        return [f"must be greater than {setting.minimum - 1}"]
    if setting.maximum is not None and value > setting.maximum:
        return [f"must be less than or equal to {setting.maximum}"]
    return []


def _validation_errors(state: dict[str, Any], changes: dict[str, Any]) -> dict[str, list[str]]:
    """GitLab's model validations of the settings marked ``validated``, on the row as it would be
    after ``changes``: the attribute and its messages."""
    errors: dict[str, list[str]] = {}
    for name, setting in SETTINGS.items():
        if not setting.validated:
            continue
        value = state[name]
        if name == "personal_access_token_prefix":
            raw = changes.get(name)
            if raw:
                messages = []
                if not set(raw) <= _PREFIX_ALPHABET:
                    messages.append(PREFIX_FORMAT)
                if len(raw) > PREFIX_MAX:
                    messages.append(f"is too long (maximum is {PREFIX_MAX} characters)")
                if messages:
                    errors[name] = messages
            continue
        if name == "deactivate_dormant_users_period":
            # Checked only while dormant users are deactivated (GitLab's `if:`).
            if state["deactivate_dormant_users"] and value < MIN_DORMANT_PERIOD:
                errors[name] = [f"'{value}' days of inactivity must be greater than or equal to 90"]
            elif value > MAX_INT or value < 1:
                errors[name] = _numeric_errors(Setting(name, int, 1, MAX_INT), value)
            continue
        if messages := _numeric_errors(setting, value):
            errors[name] = messages
        elif name == "inactive_projects_send_warning_email_after_months":
            limit = state["inactive_projects_delete_after_months"]
            if value >= limit:
                errors[name] = [f"must be less than {limit}"]
    return errors


def update_settings(ctx: Ctx, changes: dict[str, Any]) -> InstanceSettings:
    """Change settings (admins). Values are already typed by the adapter; bounds and GitLab's
    validations are checked here, all before anything is applied.

    Raises Forbidden for non-admins, BadParameter for values out of bounds, Invalid (GitLab's
    per-attribute messages) for the settings GitLab validates on its model.
    """
    row = read_settings(ctx)
    if "personal_access_token_prefix" in changes:
        changes = {**changes, "personal_access_token_prefix": changes["personal_access_token_prefix"] or None}
    state = {name: getattr(row, name) for name in SETTINGS}
    state.update(changes)
    if errors := _validation_errors(state, changes):
        raise Invalid("", errors)
    if "personal_access_token_prefix" in changes:
        changes["personal_access_token_prefix"] = stored_token_prefix(changes["personal_access_token_prefix"])
    # Every value is checked before any is applied: a refused change leaves the row untouched.
    for name, value in changes.items():
        setting = SETTINGS[name]
        if setting.choices is not None and value not in setting.choices:
            raise BadParameter(f"{name} does not have a valid value")
        if setting.kind is int and not setting.validated:
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
