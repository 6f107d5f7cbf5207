"""A person's own account: profile (name, e-mail), password change, and "Forgot password".

The rules the web UI's profile pages call (the UI has none of its own):

- ``update_profile``: the signed-in person changes their name and e-mail, with the checks and
  messages of PUT /users/:id (e-mail format, "has already been taken").
- ``change_password``: the current password must be given and right ("is invalid" next to it); the
  new one follows the API's rules (at least ``MIN_LENGTH`` characters) and must be confirmed. It ends
  every OTHER web session of the person (the one that changed it goes on) and is audited.
- ``request_reset`` / ``reset_password``: "Forgot password". The answer is the same for known and
  unknown addresses (the caller shows one neutral sentence). For an active human user a random
  token is mailed (template ``reset_password_instructions``); only its keyed digest is stored. It is
  good for one hour and once; setting the new password ends every session of the person, forgets
  the other outstanding tokens and is audited. Requests are rate limited: one e-mail per address a
  minute, and ``PER_IP_PER_HOUR`` requests per client address an hour (beyond it nothing is sent).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import ForeignKey, Integer, String, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.audit.events import Event
from keycrew.audit.service import Changes, Target, record, record_update
from keycrew.context import Actor, Ctx
from keycrew.crypto import digest
from keycrew.db.base import Base, UTCDateTime
from keycrew.errors import Conflict, Invalid
from keycrew.identity import validation
from keycrew.identity.models import User, UserSession
from keycrew.identity.passwords import MIN_LENGTH, hash_password, verify_password
from keycrew.identity.queries import lock_user
from keycrew.identity.types import UserState, UserType
from keycrew.identity.users import end_sessions, user_entity
from keycrew.namespaces.personal import follow_user
from keycrew.outbox.service import enqueue

TOKEN_LIFETIME = dt.timedelta(hours=1)
ADDRESS_COOLDOWN = dt.timedelta(minutes=1)
PER_IP_PER_HOUR = 30
TOKEN_MAX = 128
SUBJECT = "Reset password instructions"
TEMPLATE = "reset_password_instructions"
EDIT_PATH = "/users/password/edit"
TOO_SHORT = f"is too short (minimum is {MIN_LENGTH} characters)"


class PasswordReset(Base):
    """One "Forgot password" request. A request for an unknown address (or one that sent nothing)
    keeps no user and no token: the row only counts toward its client address's limit."""

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The keyed digest of the mailed token (the token itself is never stored here).
    token_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


def _token_digest(ctx: Ctx, token: str) -> str:
    return digest(ctx.instance.secret_key, "password-reset:" + token)


def _own(ctx: Ctx) -> User:
    user = ctx.actor.user
    if user is None:
        raise Invalid("", {"base": ["You must sign in first"]})
    return lock_user(ctx, user)


def _new_password_errors(password: str, confirmation: str) -> dict[str, list[str]]:
    if not password:
        return {"password": ["can't be blank"]}
    if len(password) < MIN_LENGTH:
        return {"password": [TOO_SHORT]}
    if password != confirmation:
        return {"password_confirmation": ["doesn't match Password"]}
    return {}


# -- profile ------------------------------------------------------------------------------------


def update_profile(ctx: Ctx, *, name: str, email: str) -> User:
    """The signed-in person changes their own name and e-mail (PUT /users/:id's rules and
    messages). Raises Invalid (per field) or Conflict (e-mail of another user)."""
    user = _own(ctx)
    email = email.strip().lower()
    errors: dict[str, list[str]] = {}
    if e := validation.display_name_errors(name):
        errors["name"] = e
    if e := validation.email_errors(email):
        errors["email"] = e
    elif ctx.db.scalar(select(User.id).where(User.email == email, User.id != user.id)):
        errors["email"] = ["has already been taken"]
    if errors:
        raise Invalid("", errors)
    diff = Changes()
    for key, value in (("name", name), ("email", email)):
        if diff.note(key, getattr(user, key), value):
            setattr(user, key, value)
    if not diff:
        return user
    user.updated_at = ctx.now()
    if "name" in diff:
        follow_user(ctx, user.id, user.username, user.name, user.username, diff["name"]["from"])
    try:
        with ctx.db.begin_nested():
            ctx.db.flush()
    except IntegrityError:  # lost a race for the e-mail
        raise Conflict("Email has already been taken") from None
    record_update(ctx, Event.USER_UPDATED, user_entity(user), diff, via="profile")
    return user


def change_password(
    ctx: Ctx, session: UserSession | None, *, current: str, password: str, confirmation: str
) -> int:
    """The signed-in person changes their password. Returns how many other sessions ended.

    Raises Invalid: ``current_password`` "is invalid", ``password`` too short or blank,
    ``password_confirmation`` "doesn't match Password"."""
    user = _own(ctx)
    errors: dict[str, list[str]] = {}
    if not verify_password(user.password_digest, current):
        errors["current_password"] = ["is invalid"]
    errors.update(_new_password_errors(password, confirmation))
    if errors:
        raise Invalid("", errors)
    user.password_digest = hash_password(password)
    user.updated_at = ctx.now()
    others = select(UserSession.id).where(UserSession.user_id == user.id)
    if session is not None:
        others = others.where(UserSession.id != session.id)
    ended = 0
    for session_id in list(ctx.db.scalars(others)):
        found = ctx.db.get(UserSession, session_id)
        if found is not None:
            ctx.db.delete(found)
            ended += 1
    ctx.db.flush()
    diff = Changes()
    diff["password"] = "changed"
    record_update(ctx, Event.USER_UPDATED, user_entity(user), diff, via="profile", sessions_ended=ended)
    return ended


# -- forgot password ----------------------------------------------------------------------------


def _reset_url(ctx: Ctx, token: str) -> str:
    return f"{ctx.instance.external_url.rstrip('/')}{EDIT_PATH}?reset_password_token={token}"


def request_reset(ctx: Ctx, email: str) -> None:
    """Someone asks for a reset link for ``email``. Nothing tells whether the address is known:
    the caller answers with the same sentence whatever happened here."""
    now = ctx.now()
    ip = ctx.actor.ip
    if ip is not None:
        recent = ctx.db.scalar(
            select(func.count(PasswordReset.id)).where(
                PasswordReset.ip_address == ip, PasswordReset.created_at > now - dt.timedelta(hours=1)
            )
        )
        if (recent or 0) >= PER_IP_PER_HOUR:
            return
    row = PasswordReset(ip_address=ip, created_at=now)
    ctx.db.add(row)
    address = email.strip().lower()
    user = None
    if address and len(address) <= validation.MAX_PATH:
        user = ctx.db.scalars(select(User).where(User.email == address)).first()
    if user is None or user.type is not UserType.HUMAN or user.state != UserState.ACTIVE:
        ctx.db.flush()
        return
    user = lock_user(ctx, user)
    last = ctx.db.scalar(select(func.max(PasswordReset.created_at)).where(PasswordReset.user_id == user.id))
    if last is not None and now - last < ADDRESS_COOLDOWN:
        ctx.db.flush()
        return
    token = secrets.token_urlsafe(32)
    row.user_id = user.id
    row.token_digest = _token_digest(ctx, token)
    row.expires_at = now + TOKEN_LIFETIME
    ctx.db.flush()
    enqueue(
        ctx,
        to_address=user.email,
        subject=SUBJECT,
        template=TEMPLATE,
        context={"name": user.name, "username": user.username},
        to_user_id=user.id,
        secrets={"reset_url": _reset_url(ctx, token)},
    )
    record(
        ctx,
        Event.USER_PASSWORD_RESET_REQUESTED,
        user_entity(user),
        target=Target("User", user.id, user.username),
        reset_id=row.id,
    )


@dataclass(frozen=True)
class ValidReset:
    row: PasswordReset
    user: User


def find_reset(ctx: Ctx, token: str | None) -> ValidReset | None:
    """The live reset a mailed token names (unused, under an hour old, its user still an active
    human), or None."""
    if not token or len(token) > TOKEN_MAX:
        return None
    row = ctx.db.scalars(
        select(PasswordReset).where(PasswordReset.token_digest == _token_digest(ctx, token))
    ).first()
    if row is None or row.used_at is not None or row.expires_at is None or row.expires_at <= ctx.now():
        return None
    user = ctx.db.get(User, row.user_id) if row.user_id is not None else None
    if user is None or user.type is not UserType.HUMAN or user.state != UserState.ACTIVE:
        return None
    return ValidReset(row, user)


class ResetExpired(Invalid):
    """The token is unknown, used, or over an hour old."""


EXPIRED_MESSAGE = "Reset password token is invalid or has expired"


def reset_password(ctx: Ctx, token: str | None, *, password: str, confirmation: str) -> User:
    """Set a new password with a mailed token: the token is used up (and every other outstanding one
    of the person forgotten), every session of the person ends, the change is audited as theirs.

    Raises ResetExpired, or Invalid for the new password."""
    found = find_reset(ctx, token)
    if found is None:
        raise ResetExpired("", {"reset_password_token": ["is invalid or has expired"]})
    errors = _new_password_errors(password, confirmation)
    if errors:
        raise Invalid("", errors)
    user = lock_user(ctx, found.user)
    now = ctx.now()
    # Used once: a second request with the same token (even a concurrent one) finds it used.
    claimed = ctx.db.execute(
        update(PasswordReset)
        .where(PasswordReset.id == found.row.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        raise ResetExpired("", {"reset_password_token": ["is invalid or has expired"]})
    ctx.db.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )
    user.password_digest = hash_password(password)
    user.updated_at = now
    # A reset also opens an account locked by failed attempts (Devise's recoverable does).
    user.locked_at = None
    user.failed_attempts = 0
    ended = end_sessions(ctx, user)
    ctx.db.flush()
    record(
        ctx.as_actor(Actor(user=user, ip=ctx.actor.ip, via="web")),
        Event.USER_PASSWORD_RESET,
        user_entity(user),
        target=Target("User", user.id, user.username),
        reset_id=found.row.id,
        sessions_ended=ended,
    )
    return user
