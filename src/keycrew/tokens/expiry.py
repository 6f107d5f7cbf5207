"""When tokens expire: one policy for every kind of token.

A token dies at 00:00 UTC on its ``expires_at`` date; as on GitLab, a new token may be given
today's date (it is then born expired), never an earlier one. Personal, impersonation, project and group
tokens may live at most ``max_personal_access_token_lifetime`` days (365 by default); without a
date they get that maximum, or none when the instance lets tokens live forever
(``require_personal_access_token_expiry`` off). Service-account tokens follow their own switch
(``service_access_tokens_expiration_enforced``, always on for Free). A rotated token's successor
lives a week unless told otherwise. Deploy tokens never expire unless asked to.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from keycrew.context import Ctx
from keycrew.errors import Invalid
from keycrew.instance.models import InstanceSettings
from keycrew.instance.settings import Plan, instance_settings

# The expiry a token form proposes, as GitLab's UI has it since 15.3 (never beyond the maximum).
FORM_DEFAULT_DAYS = 30
# A rotated token's successor, when no date is given (GitLab's default).
ROTATION_DEFAULT_DAYS = 7


@dataclass(frozen=True)
class ExpiryPolicy:
    """The expiration dates a new token may have today (what ``check_expiry`` accepts)."""

    earliest: dt.date
    latest: dt.date
    default: dt.date
    required: bool


def _latest(ctx: Ctx, settings: InstanceSettings) -> dt.date:
    return ctx.today() + dt.timedelta(days=settings.max_personal_access_token_lifetime)


def expiry_policy(ctx: Ctx) -> ExpiryPolicy:
    """Today at the earliest (the token is then born expired, as GitLab allows), today + the
    instance's maximum lifetime at the latest, 30 days ahead by default; ``required`` unless the
    instance allows tokens that never expire."""
    settings = instance_settings(ctx)
    today = ctx.today()
    latest = _latest(ctx, settings)
    return ExpiryPolicy(
        earliest=today,
        latest=latest,
        default=min(today + dt.timedelta(days=FORM_DEFAULT_DAYS), latest),
        required=settings.require_personal_access_token_expiry,
    )


def check_expiry(ctx: Ctx, expires_at: dt.date | None) -> dt.date | None:
    """A new personal, impersonation, project or group token's expiry: today or later (today gives a
    token that is already expired, as on GitLab), at most the maximum lifetime ahead; when omitted,
    the maximum (or none if expiry is optional)."""
    settings = instance_settings(ctx)
    today = ctx.today()
    latest = _latest(ctx, settings)
    if expires_at is None:
        return latest if settings.require_personal_access_token_expiry else None
    if expires_at < today:
        raise Invalid.field("expires_at", "can't be before today")
    if expires_at > latest:
        raise Invalid.field("expires_at", f"must be before {latest.isoformat()}")
    return expires_at


def _service_expiry_enforced(settings: InstanceSettings) -> bool:
    # Free instances always enforce expiry on service-account tokens (newest GitLab).
    return settings.service_access_tokens_expiration_enforced or settings.plan == Plan.FREE


def service_account_token_expiry(ctx: Ctx, expires_at: dt.date | None) -> dt.date | None:
    """A service-account token's expiry: when omitted, none if the instance lets service-account
    tokens live forever, else the maximum lifetime. Raises Invalid for a past or too-late date."""
    settings = instance_settings(ctx)
    if expires_at is None and not _service_expiry_enforced(settings):
        return None
    if expires_at is None:
        return _latest(ctx, settings)
    return check_expiry(ctx, expires_at)


def rotation_expiry(ctx: Ctx, expires_at: dt.date | None, *, had_expiry: bool) -> dt.date | None:
    """The successor's expiry on rotation: ``expires_at`` if given (in the future, at most the
    maximum lifetime ahead), else a week, or none when expiry is optional and the old token had none.
    """
    settings = instance_settings(ctx)
    today = ctx.today()
    if expires_at is None:
        if settings.require_personal_access_token_expiry or had_expiry:
            return today + dt.timedelta(days=ROTATION_DEFAULT_DAYS)
        return None
    latest = _latest(ctx, settings)
    if expires_at <= today:
        raise Invalid.field("expires_at", "must be in the future")
    if expires_at > latest:
        raise Invalid(f"Expiration date must be before {latest.isoformat()}")
    return expires_at


def deploy_token_expiry(ctx: Ctx, expires_at: dt.date | None) -> dt.date | None:
    """Deploy tokens never expire unless asked to. Today is accepted (the token is born expired,
    as python-gitlab's own functional test does on GitLab); earlier dates are a mistake."""
    if expires_at is not None and expires_at < ctx.today():
        raise Invalid.field("expires_at", "can't be before today")
    return expires_at
