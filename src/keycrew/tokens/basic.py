"""HTTP Basic credentials for git, the container registry and the package registry.

First match wins, as GitLab's find_for_git_client: the password is a personal access token
(personal, impersonation, project/group bot or service-account token; any non-empty username)
→ a deploy token (the username must be the token's, exactly) → a human's username and password
(unless password authentication for git is disabled, or the password looks like a token; a
wrong password counts toward the account's lock, as on the sign-in form, and a locked account is
refused whatever the password). Every
other case fails alike: unknown, malformed, expired, revoked and wrong-username credentials
cannot be told apart by the caller.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from keycrew.context import Ctx
from keycrew.errors import Forbidden, Unauthenticated
from keycrew.identity import sign_in
from keycrew.identity.lockout import is_locked
from keycrew.identity.models import User
from keycrew.identity.passwords import verify_password
from keycrew.identity.types import UserState, UserType
from keycrew.instance.models import InstanceSettings
from keycrew.tokens import secrets
from keycrew.tokens.authentication import MAX_TOKEN_LENGTH, find_by_digest
from keycrew.tokens.models import DeployToken, PersonalAccessToken

# Internal users that GitLab lets use git (they act on repositories for the system).
GIT_INTERNAL_TYPES = frozenset({UserType.MIGRATION_BOT, UserType.SECURITY_BOT, UserType.SECURITY_POLICY_BOT})
TOKEN_PREFIXES = (secrets.PAT_PREFIX, secrets.DEPLOY_PREFIX)


@dataclass(frozen=True)
class Credential:
    """Who presented Basic credentials. ``scopes`` None means a password sign-in (all of the
    user's own abilities); a deploy token has no user, only its scopes and its project or group."""

    user: User | None = None
    token: PersonalAccessToken | None = None
    deploy_token: DeployToken | None = None
    scopes: frozenset[str] | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.user is None and self.deploy_token is None

    @property
    def token_id(self) -> int | None:
        if self.token is not None:
            return self.token.id
        return None if self.deploy_token is None else self.deploy_token.id

    @property
    def label(self) -> str:
        """A name for logs and audit events (never a secret)."""
        if self.deploy_token is not None:
            return self.deploy_token.username
        return "(anonymous)" if self.user is None else self.user.username


ANONYMOUS = Credential()


class PasswordRejected(Unauthenticated):
    """A wrong password for an account that signs in: refused as any failure, and counted toward
    the account's lock by the adapter (``count_failed_password``)."""

    def __init__(self, user_id: int) -> None:
        super().__init__()
        self.user_id = user_id


def decode_basic(authorization: str) -> tuple[str, str] | None:
    """(username, password) from an ``Authorization: Basic ...`` value; None for another scheme
    or none. A malformed Basic value is a failed authentication (Unauthenticated)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unauthenticated() from None
    username, separator, password = decoded.partition(":")
    if not separator:
        raise Unauthenticated()
    return username, password


def check_user_may_use_git(user: User) -> None:
    """Blocked, deactivated and internal users (but three system bots) are refused (403)."""
    if user.type.is_internal and user.type not in GIT_INTERNAL_TYPES:
        raise Forbidden("This action cannot be performed by internal users")
    if user.state in (UserState.BLOCKED, UserState.BANNED, UserState.BLOCKED_PENDING_APPROVAL):
        raise Forbidden("Your account has been blocked.")
    if user.state == UserState.DEACTIVATED:
        raise Forbidden("Your account has been deactivated by your administrator.")


def _looks_like_token(value: str, instance_prefix: str) -> bool:
    stripped = (
        value[len(instance_prefix) :] if instance_prefix and value.startswith(instance_prefix) else value
    )
    return stripped.startswith(TOKEN_PREFIXES)


def authenticate_basic(
    db: Session,
    secret_key: bytes,
    username: str | None,
    password: str | None,
    today: dt.date,
    *,
    password_auth_enabled: bool = True,
    instance_prefix: str = "",
    now: dt.datetime | None = None,
) -> Credential:
    """Resolve Basic credentials (see the module docstring). No credentials → ANONYMOUS.

    Raises Unauthenticated for anything that does not match, or a password for a locked account
    (right or wrong: GitLab's access_locked users may not log in); PasswordRejected (an
    Unauthenticated) for a wrong password of an account that signs in, which the adapter counts;
    Forbidden when it matches a user who may not use git (blocked, deactivated, internal).
    """
    if not username and not password:
        return ANONYMOUS
    if not username or not password or len(password) > MAX_TOKEN_LENGTH or len(username) > 255:
        raise Unauthenticated()
    if "\x00" in username:
        # No name holds a NUL byte, and PostgreSQL refuses one in a query parameter (a 500).
        raise Unauthenticated()
    digest = secrets.digest(secret_key, password)
    token = find_by_digest(db, digest)
    if token is not None:
        if not token.is_active(today):
            raise Unauthenticated()
        owner = db.get(User, token.user_id)
        if owner is None:
            raise Unauthenticated()
        check_user_may_use_git(owner)
        return Credential(user=owner, token=token, scopes=frozenset(token.scopes))
    deploy = db.scalars(select(DeployToken).where(DeployToken.token_digest == digest)).first()
    if deploy is not None:
        if deploy.username != username or not deploy.is_active(today):
            raise Unauthenticated()
        return Credential(deploy_token=deploy, scopes=frozenset(deploy.scopes))
    if not password_auth_enabled or _looks_like_token(password, instance_prefix):
        # Still spend the time of a password check, so timing does not tell which case this was.
        verify_password(None, password)
        raise Unauthenticated()
    user = db.scalars(
        select(User).where(or_(User.username_lower == username.lower(), User.email == username.lower()))
    ).first()
    # The password is checked in every case, so timing does not tell the cases apart either.
    correct = verify_password(None if user is None else user.password_digest, password)
    if user is None or user.type is not UserType.HUMAN:
        # Bots and service accounts have no password sign-in; internal users none at all.
        raise Unauthenticated()
    settings = db.get(InstanceSettings, 1)
    if settings is not None and is_locked(user, settings, now or dt.datetime.now(dt.UTC)):
        # A locked account is refused like a wrong password, whether this one was right or not.
        raise Unauthenticated()
    if not correct:
        raise PasswordRejected(user.id)
    check_user_may_use_git(user)
    return Credential(user=user)


def count_failed_password(ctx: Ctx, failure: PasswordRejected) -> None:
    """Count a wrong Basic password toward its account's lock (the web sign-in's rule), in the
    caller's own write transaction (the authentication's is a read)."""
    sign_in.count_failed_password(ctx, failure.user_id)
