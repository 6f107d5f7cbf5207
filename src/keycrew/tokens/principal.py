"""What the authentication cache keeps for a token value: snapshots of the token and its owner."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from keycrew.context import Instance
from keycrew.identity.models import User
from keycrew.identity.views import UserView
from keycrew.tokens.models import PersonalAccessToken, TokenTraits
from keycrew.tokens.scopes import Scope

# The kinds of row a cached principal depends on, as the cache's invalidation names them.
TOKEN_ROW = "t"
USER_ROW = "u"
WATCHED_ROWS: dict[type, str] = {PersonalAccessToken: TOKEN_ROW, User: USER_ROW}


@dataclass(frozen=True)
class TokenSnapshot(TokenTraits):
    id: int
    user_id: int
    name: str
    description: str | None
    scopes: tuple[str, ...]
    revoked: bool
    expires_at: dt.date | None
    impersonation: bool
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    # The newest client IPs (at most 5): a use from a new IP writes the row, which drops the
    # cached principal, so they are as fresh as ``last_used_at``.
    last_used_ips: tuple[str, ...] = ()

    @classmethod
    def of(cls, token: PersonalAccessToken) -> TokenSnapshot:
        return cls(
            token.id,
            token.user_id,
            token.name,
            token.description,
            tuple(token.scopes),
            token.revoked,
            token.expires_at,
            token.impersonation,
            token.created_at,
            token.last_used_at,
            tuple(token.last_used_ips or ()),
        )


@dataclass(frozen=True)
class UserSnapshot:
    id: int
    username: str
    name: str
    state: str
    user_type: int
    admin: bool
    external: bool
    # Every column of the row as it was loaded (but the password digest), for rendering the user
    # without reading it again.
    row: UserView = field(compare=False, repr=False)

    @classmethod
    def of(cls, user: User) -> UserSnapshot:
        return cls(
            user.id,
            user.username,
            user.name,
            user.state,
            user.user_type,
            user.admin,
            user.external,
            UserView.of(user),
        )


@dataclass(frozen=True)
class Principal:
    """Who a token value belongs to, as of when it was cached (a changed token or user is a new
    Principal, so nothing stale survives)."""

    token: TokenSnapshot
    user: UserSnapshot

    def depends_on(self) -> tuple[tuple[str, int], ...]:
        return ((TOKEN_ROW, self.token.id), (USER_ROW, self.user.id))


def token_admin_powers(instance: Instance, scopes: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether an admin acting with a token of ``scopes`` acts as an admin: always, unless Admin
    Mode is on, which asks for the ``admin_mode`` scope (GitLab's bypass of the session check).
    The setting comes from the instance's cache, not from a query."""
    return not instance.admin_mode or Scope.ADMIN_MODE in scopes
