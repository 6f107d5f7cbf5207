"""Admin Mode in the web UI: with the instance setting on, an admin's session has no admin powers
until the admin enters their password again; that lasts six hours (GitLab's, not configurable),
until they leave Admin Mode, or until the session ends. A wrong password counts toward the
account's lock like a failed sign-in. (API tokens: ``tokens.principal.token_admin_powers``.)
"""

from __future__ import annotations

import datetime as dt

from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Ctx, Instance
from keycrew.errors import Forbidden, Unauthenticated
from keycrew.identity.lockout import is_locked
from keycrew.identity.models import UserSession
from keycrew.identity.passwords import verify_password
from keycrew.identity.queries import lock_user
from keycrew.identity.sign_in import NEUTRAL_REFUSAL, count_failed_password
from keycrew.identity.users import user_entity
from keycrew.instance.settings import instance_settings

ADMIN_MODE_LIFETIME = dt.timedelta(hours=6)
REFUSAL = "Invalid login or password"


def in_admin_mode(session: UserSession | None, now: dt.datetime) -> bool:
    """Whether ``session`` re-authenticated for Admin Mode less than six hours ago."""
    return (
        session is not None
        and session.admin_mode_at is not None
        and now < session.admin_mode_at + ADMIN_MODE_LIFETIME
    )


def session_admin_powers(instance: Instance, session: UserSession | None, now: dt.datetime) -> bool:
    """Whether an admin acting through ``session`` acts as an admin: always unless the instance's
    Admin Mode is on (read from its cache), then only while the session is in Admin Mode."""
    return not instance.admin_mode or in_admin_mode(session, now)


def _audit(ctx: Ctx, event: Event, session: UserSession) -> None:
    user = ctx.actor.user
    assert user is not None
    record(
        ctx, event, user_entity(user), target=Target("User", user.id, user.username), session_id=session.id
    )


def enter_admin_mode(ctx: Ctx, session: UserSession, password: str) -> str | None:
    """The signed-in admin of ``session`` enters Admin Mode with their password.

    Returns None on success, else the refusal to show (a wrong password is counted toward the
    lock, and so must commit). Raises Unauthenticated without a signed-in person, Forbidden for
    anyone but an admin.
    """
    user = ctx.actor.user
    if user is None or session.user_id != user.id:
        raise Unauthenticated()
    if not user.admin:
        raise Forbidden()
    user = lock_user(ctx, user)
    now = ctx.now()
    correct = verify_password(user.password_digest, password)
    if is_locked(user, instance_settings(ctx), now):
        return NEUTRAL_REFUSAL
    if not correct:
        count_failed_password(ctx, user.id)
        return REFUSAL
    user.failed_attempts = 0
    session.admin_mode_at = now
    _audit(ctx, Event.ADMIN_MODE_ENTERED, session)
    ctx.db.flush()
    return None


def leave_admin_mode(ctx: Ctx, session: UserSession) -> None:
    """End Admin Mode for ``session`` (the signed-in person's own); nothing if it was not on."""
    if session.admin_mode_at is None:
        return
    session.admin_mode_at = None
    _audit(ctx, Event.ADMIN_MODE_LEFT, session)
    ctx.db.flush()
