"""People signing in to the web UI: passwords, sessions, and the lock after failed attempts.

Only active humans sign in. Bots, service accounts, internal users and blocked, banned or pending
users are refused with the same neutral message as a wrong password or an unknown login, so the
sign-in form tells an attacker nothing about which accounts exist or what they are. After
``max_login_attempts`` wrong passwords in a row the account is locked for
``failed_login_attempts_unlock_period_in_minutes`` (GitLab's Devise lockable settings); the lock is
written to the audit trail by the Admin Bot, and a correct password does not open a locked account.

Failures are returned, not raised: a failed attempt changes state (the counter, the lock, their
audit events) that must commit with the refusal.
"""

from __future__ import annotations

import datetime as dt
import secrets as pysecrets
from dataclasses import dataclass

from sqlalchemy import select

from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Actor, Ctx
from keycrew.crypto import digest
from keycrew.errors import Forbidden
from keycrew.identity.internal import admin_bot
from keycrew.identity.lockout import is_locked
from keycrew.identity.models import User, UserSession
from keycrew.identity.passwords import hash_password, needs_rehash, verify_password
from keycrew.identity.queries import lock_user
from keycrew.identity.types import UserState, UserType
from keycrew.identity.users import user_entity
from keycrew.instance.models import InstanceSettings
from keycrew.instance.settings import instance_settings

NEUTRAL_REFUSAL = "Invalid login or password."
# A session's last_seen_at (and so its expiry) moves at most this often: not a write per page.
TOUCH_EVERY = dt.timedelta(minutes=1)
USER_AGENT_MAX = 255
LOGIN_MAX = 255


@dataclass(frozen=True)
class IssuedSession:
    """A new session and the cookie value that names it: the only place the value exists."""

    value: str
    session: UserSession
    user: User

    def __repr__(self) -> str:  # never print the value by accident
        return f"IssuedSession(session={self.session.id}, user={self.user.id})"


@dataclass(frozen=True)
class SignInResult:
    """Either a session, or the message to show (always the neutral one)."""

    issued: IssuedSession | None = None
    refusal: str | None = None


def new_session_secret() -> str:
    """A fresh cookie value (256 random bits). Never stored, logged or shown."""
    return pysecrets.token_urlsafe(32)


def may_sign_in(user: User) -> bool:
    """Whether ``user`` is someone who signs in to the UI at all: an active or deactivated human."""
    return user.type is UserType.HUMAN and user.state in (UserState.ACTIVE, UserState.DEACTIVATED)


def _find_login(ctx: Ctx, login: str) -> User | None:
    login = login.strip().lower()
    if not login or len(login) > LOGIN_MAX:
        return None
    column = User.email if "@" in login else User.username_lower
    return ctx.db.scalars(select(User).where(column == login)).first()


def _as_admin_bot(ctx: Ctx) -> Ctx:
    return ctx.as_actor(Actor(user=admin_bot(ctx), ip=ctx.actor.ip, via="system"))


def _audit(ctx: Ctx, event: Event, user: User, **details: object) -> None:
    record(
        ctx,
        event,
        user_entity(user),
        target=Target("User", user.id, user.username),
        **details,
    )


def sign_in(ctx: Ctx, login: str, password: str, *, user_agent: str | None = None) -> SignInResult:
    """Check a username (or e-mail) and password; on success open a session.

    Returns the new session, or the neutral refusal. A wrong password for an account that signs in
    counts towards the lock and is audited; the attempt that reaches ``max_login_attempts`` locks
    the account (audited as the Admin Bot's act). A deactivated human who signs in is activated
    again, as in GitLab.
    """
    user = _find_login(ctx, login)
    if user is None:
        verify_password(None, password)  # the same work as for a real account: no timing oracle
        return SignInResult(refusal=NEUTRAL_REFUSAL)
    # Attempts on one account queue up here, so that the count and the lock stay exact.
    user = lock_user(ctx, user)
    settings = instance_settings(ctx)
    now = ctx.now()
    correct = verify_password(user.password_digest, password)
    if not may_sign_in(user):
        return SignInResult(refusal=NEUTRAL_REFUSAL)
    _open_elapsed_lock(ctx, user, settings, now)
    if is_locked(user, settings, now):
        return SignInResult(refusal=NEUTRAL_REFUSAL)
    if not correct:
        _count_failure(ctx, user, settings, now)
        return SignInResult(refusal=NEUTRAL_REFUSAL)
    if user.state == UserState.DEACTIVATED:
        user.state = UserState.ACTIVE.value
        _audit(
            ctx.as_actor(Actor(user=user, ip=ctx.actor.ip, via="web")),
            Event.USER_ACTIVATED,
            user,
            reason="signed in",
            **{"from": UserState.DEACTIVATED.value, "to": UserState.ACTIVE.value},
        )
    if user.password_digest is not None and needs_rehash(user.password_digest):
        user.password_digest = hash_password(password)
    user.failed_attempts = 0
    user.sign_in_count += 1
    user.last_sign_in_at = user.current_sign_in_at
    user.current_sign_in_at = now
    user.last_activity_on = now.date()
    issued = _open_session(ctx, user, user_agent)
    _audit(
        ctx.as_actor(Actor(user=user, ip=ctx.actor.ip, via="web")),
        Event.USER_SIGNED_IN,
        user,
        session_id=issued.session.id,
    )
    return SignInResult(issued=issued)


def _open_elapsed_lock(ctx: Ctx, user: User, settings: InstanceSettings, now: dt.datetime) -> None:
    if user.locked_at is not None and not is_locked(user, settings, now):
        # The lock period is over: the account opens again (Devise's unlock strategy "time").
        user.locked_at = None
        user.failed_attempts = 0
        _audit(_as_admin_bot(ctx), Event.USER_UNLOCKED, user, reason="unlock period elapsed")


def _count_failure(
    ctx: Ctx, user: User, settings: InstanceSettings, now: dt.datetime, **details: str
) -> None:
    user.failed_attempts += 1
    _audit(ctx, Event.USER_SIGN_IN_FAILED, user, failed_attempts=user.failed_attempts, **details)
    if user.failed_attempts >= settings.max_login_attempts:
        user.locked_at = now
        _audit(
            _as_admin_bot(ctx),
            Event.USER_LOCKED,
            user,
            failed_attempts=user.failed_attempts,
            unlock_at=(
                now + dt.timedelta(minutes=settings.failed_login_attempts_unlock_period_in_minutes)
            ).isoformat(),
        )
    ctx.db.flush()


def count_failed_password(ctx: Ctx, user_id: int) -> None:
    """A wrong password for a user who signs in, presented over HTTP Basic (git, the container
    and package registries): it counts toward the same lock as the sign-in form's failures, and
    is audited alike. Nothing happens for an account already locked, or one that does not sign in."""
    found = ctx.db.get(User, user_id)
    if found is None or not may_sign_in(found):
        return
    user = lock_user(ctx, found)
    settings = instance_settings(ctx)
    now = ctx.now()
    _open_elapsed_lock(ctx, user, settings, now)
    if not is_locked(user, settings, now):
        _count_failure(ctx, user, settings, now, via=ctx.actor.via)


def _open_session(ctx: Ctx, user: User, user_agent: str | None) -> IssuedSession:
    now = ctx.now()
    value = new_session_secret()
    session = UserSession(
        session_digest=digest(ctx.instance.secret_key, value),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + dt.timedelta(minutes=ctx.instance.session_expire_minutes),
        ip_address=ctx.actor.ip,
        user_agent=(user_agent or "")[:USER_AGENT_MAX] or None,
    )
    ctx.db.add(session)
    ctx.db.flush()
    return IssuedSession(value, session, user)


def session_user(ctx: Ctx, value: str) -> tuple[UserSession, User] | None:
    """The live session a cookie value names and its user, or None.

    A session ends when it expires, and at once when its user can no longer sign in (blocked,
    banned, turned into something other than an active human, deleted). Use moves the expiry
    forward, written at most once a minute.
    """
    if not value or len(value) > 128:
        return None
    row = ctx.db.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.session_digest == digest(ctx.instance.secret_key, value))
    ).first()
    if row is None:
        return None
    session, user = row
    now = ctx.now()
    if session.expires_at <= now or user.type is not UserType.HUMAN or user.state != UserState.ACTIVE:
        return None
    if now - session.last_seen_at >= TOUCH_EVERY:
        session.last_seen_at = now
        session.expires_at = now + dt.timedelta(minutes=ctx.instance.session_expire_minutes)
        if user.last_activity_on != now.date():
            user.last_activity_on = now.date()
    return session, user


def sign_out(ctx: Ctx, session: UserSession) -> None:
    """End ``session`` (the signed-in actor's own)."""
    user = ctx.db.get(User, session.user_id)
    ctx.db.delete(session)
    if user is not None:
        _audit(ctx, Event.USER_SIGNED_OUT, user, session_id=session.id)
    ctx.db.flush()


def unlock_user(ctx: Ctx, user: User) -> bool:
    """An admin opens a locked account (and forgets its failed attempts). False if it was not locked.

    Raises Forbidden for non-admins.
    """
    if not ctx.actor.is_admin:
        raise Forbidden()
    user = lock_user(ctx, user)
    if user.locked_at is None:
        return False
    user.locked_at = None
    user.failed_attempts = 0
    _audit(ctx, Event.USER_UNLOCKED, user, reason="unlocked by an administrator")
    ctx.db.flush()
    return True
