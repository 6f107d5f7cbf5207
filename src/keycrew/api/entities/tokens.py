"""Token entities: personal, impersonation and resource (project/group) access tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

from keycrew.api.entities import day, iso


class TokenLike(Protocol):
    """A token row or its cached snapshot: both render the same."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def revoked(self) -> bool: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def description(self) -> str | None: ...
    @property
    def user_id(self) -> int: ...
    @property
    def last_used_at(self) -> dt.datetime | None: ...
    @property
    def expires_at(self) -> dt.date | None: ...
    @property
    def impersonation(self) -> bool: ...
    @property
    def scopes(self) -> Sequence[str]: ...

    def is_active(self, today: dt.date) -> bool: ...


def personal_access_token(
    token: TokenLike, today: dt.date, *, token_value: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": token.id,
        "name": token.name,
        "revoked": token.revoked,
        "created_at": iso(token.created_at),
        "description": token.description,
        "scopes": list(token.scopes),
        "user_id": token.user_id,
        "last_used_at": iso(token.last_used_at),
        "active": token.is_active(today),
        "expires_at": day(token.expires_at),
    }
    if token_value is not None:
        data["token"] = token_value
    return data


def impersonation_token(
    token: TokenLike, today: dt.date, *, token_value: str | None = None
) -> dict[str, Any]:
    data = personal_access_token(token, today, token_value=token_value)
    data["impersonation"] = token.impersonation
    return data


def resource_access_token(
    token: TokenLike, today: dt.date, access_level: int, *, token_value: str | None = None
) -> dict[str, Any]:
    """A project or group access token: a personal token of the bot, plus the bot's level."""
    data = personal_access_token(token, today, token_value=token_value)
    data["access_level"] = access_level
    return data
