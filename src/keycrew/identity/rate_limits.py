"""Per-user rate-limit overrides: an admin gives one service account, bot or person a request
limit of its own instead of switching the instance's throttles off.

An override replaces the instance's limit of the per-user throttles (authenticated API and
authenticated git HTTP) for that user, even while those throttles are disabled. Every change is
audited in its transaction.
"""

from __future__ import annotations

from sqlalchemy import select

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.errors import BadParameter, Forbidden, NotFound
from keycrew.identity.models import User
from keycrew.identity.queries import find_user, lock_user
from keycrew.instance.models import RateLimitOverride
from keycrew.instance.settings import MAX_INT, instance_settings

OVERRIDE = "Rate limit override"


def _admin_target(ctx: Ctx, user_id: int) -> User:
    if not ctx.actor.is_admin:
        raise Forbidden()
    return find_user(ctx, user_id)


def read_override(ctx: Ctx, user_id: int) -> RateLimitOverride:
    """The user's override (admins). Raises Forbidden, NotFound("User") or NotFound(OVERRIDE)."""
    user = _admin_target(ctx, user_id)
    found = ctx.db.get(RateLimitOverride, user.id)
    if found is None:
        raise NotFound(OVERRIDE)
    return found


def overrides(ctx: Ctx, user_ids: list[int]) -> dict[int, RateLimitOverride]:
    """The overrides of ``user_ids`` (for lists and pages that show them)."""
    if not user_ids:
        return {}
    rows = ctx.db.scalars(select(RateLimitOverride).where(RateLimitOverride.user_id.in_(user_ids)))
    return {row.user_id: row for row in rows}


def set_override(
    ctx: Ctx, user_id: int, requests_per_period: int, period_in_seconds: int | None = None
) -> RateLimitOverride:
    """Give the user ``requests_per_period`` requests per ``period_in_seconds`` (default: the
    instance's authenticated API period). Raises Forbidden for non-admins, NotFound("User"),
    BadParameter for a value that is not an integer from 1 to 2^31-1."""
    user = _admin_target(ctx, user_id)
    if period_in_seconds is None:
        period_in_seconds = instance_settings(ctx).throttle_authenticated_api_period_in_seconds
    for name, value in (
        ("requests_per_period", requests_per_period),
        ("period_in_seconds", period_in_seconds),
    ):
        if not 1 <= value <= MAX_INT:
            raise BadParameter(f"{name} does not have a valid value")
    now = ctx.now()
    user = lock_user(ctx, user)  # concurrent changes of one user's override queue up here
    row = ctx.db.get(RateLimitOverride, user.id)
    previous = None
    if row is None:
        row = RateLimitOverride(user_id=user.id, created_at=now, updated_at=now)
        ctx.db.add(row)
    else:
        previous = _limits(row)
    changes = {"requests_per_period": requests_per_period, "period_in_seconds": period_in_seconds}
    if previous == changes:
        return row
    row.requests_per_period = requests_per_period
    row.period_in_seconds = period_in_seconds
    row.updated_at = now
    ctx.db.flush()
    record(
        ctx,
        Event.USER_RATE_LIMIT_SET,
        Entity("User", user.id, user.username),
        target=Target("User", user.id, user.username),
        changes=changes,
        previous=previous,
    )
    return row


def _limits(row: RateLimitOverride) -> dict[str, int]:
    """An override's values, as its audit events record them."""
    return {"requests_per_period": row.requests_per_period, "period_in_seconds": row.period_in_seconds}


def remove_override(ctx: Ctx, user_id: int) -> None:
    """Drop the user's override: the instance's limits apply again. Raises Forbidden,
    NotFound("User") or NotFound(OVERRIDE)."""
    user = lock_user(ctx, _admin_target(ctx, user_id))
    row = ctx.db.get(RateLimitOverride, user.id)
    if row is None:
        raise NotFound(OVERRIDE)
    previous = _limits(row)
    ctx.db.delete(row)
    ctx.db.flush()
    record(
        ctx,
        Event.USER_RATE_LIMIT_REMOVED,
        Entity("User", user.id, user.username),
        target=Target("User", user.id, user.username),
        previous=previous,
    )
