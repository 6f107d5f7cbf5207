"""Resolving a presented token value to its token and user, with GitLab's check order."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from keycrew.errors import Forbidden, InvalidToken, Unauthenticated
from keycrew.identity.models import User
from keycrew.identity.types import UserState, UserType
from keycrew.tokens import secrets
from keycrew.tokens.models import PersonalAccessToken

EXPIRED = "Token is expired. You can either do re-authorization or token refresh."
REVOKED = "Token was revoked. You have to re-authorize from the user."
INTERNAL = "This action cannot be performed by internal users"

_STATE_REASONS = {
    UserState.BLOCKED: "Your account has been blocked.",
    UserState.BANNED: "Your account has been blocked.",
    UserState.DEACTIVATED: (
        "Your account has been deactivated by your administrator. "
        "Please log back in from a web browser to reactivate your account at "
    ),
    UserState.BLOCKED_PENDING_APPROVAL: (
        "Your account is pending approval from your administrator and hence blocked."
    ),
}


@dataclass(frozen=True)
class Authenticated:
    token: PersonalAccessToken
    user: User


MAX_TOKEN_LENGTH = 512


def find_token(db: Session, secret_key: bytes, value: str) -> PersonalAccessToken | None:
    """One indexed lookup on the digest; unknown and malformed values both give None."""
    if not value or len(value) > MAX_TOKEN_LENGTH:
        return None
    return find_by_digest(db, secrets.digest(secret_key, value))


def find_by_digest(db: Session, digest: str) -> PersonalAccessToken | None:
    return db.scalars(select(PersonalAccessToken).where(PersonalAccessToken.token_digest == digest)).first()


def check_token(token: PersonalAccessToken | None, today: dt.date) -> PersonalAccessToken:
    """Unknown → Unauthenticated; expired, then revoked → InvalidToken (GitLab's order)."""
    if token is None:
        raise Unauthenticated()
    check_token_usable(token, today)
    return token


class _UserLike(Protocol):
    @property
    def user_type(self) -> int: ...
    @property
    def state(self) -> str: ...


def check_user_may_use_api(user: _UserLike, external_url: str = "") -> None:
    """Internal, blocked and deactivated users are refused (403 with the reason)."""
    if UserType(user.user_type).is_internal:
        raise Forbidden(INTERNAL)
    reason = _STATE_REASONS.get(UserState(user.state))
    if reason is not None:
        if user.state == UserState.DEACTIVATED:
            reason = reason + external_url
        raise Forbidden(reason)


def authenticate(db: Session, secret_key: bytes, value: str, today: dt.date) -> Authenticated:
    token = check_token(find_token(db, secret_key, value), today)
    user = db.get(User, token.user_id)
    if user is None:
        raise Unauthenticated()
    return Authenticated(token, user)


class TokenState(Protocol):
    """What the check order needs of a token (its row, or the authentication cache's snapshot)."""

    @property
    def revoked(self) -> bool: ...

    def is_expired(self, today: dt.date) -> bool: ...


def reuse_detected(token: TokenState, today: dt.date, *, rotating: bool) -> bool:
    """Reuse detection: a revoked (not expired) token presented to a rotation means its value leaked
    or an old copy is still in use, so the caller revokes the token's live family
    (``lifecycle.revoke_family``) before refusing it. The adapter says whether the request is a
    rotation; the rule is here."""
    return rotating and token.revoked and not token.is_expired(today)


def check_token_usable(token: TokenState, today: dt.date) -> None:
    """GitLab's order for a known token: expired, then revoked (401 invalid_token, each its words)."""
    if token.is_expired(today):
        raise InvalidToken(EXPIRED)
    if token.revoked:
        raise InvalidToken(REVOKED)
