"""Personal access tokens as column values, for reads (see ``keycrew.db.reads`` and
``keycrew.namespaces.views``). The digest of a token's value is never selected here."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, select

from keycrew.db.reads import Query, Reader, prepared
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.tokens.models import PersonalAccessToken, TokenTraits


class _TokenRow(NamedTuple):
    id: int
    user_id: int
    name: str
    description: str | None
    scopes: list[str]
    impersonation: bool
    revoked: bool
    revoked_at: dt.datetime | None
    expires_at: dt.date | None
    last_used_at: dt.datetime | None
    previous_personal_access_token_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    last_used_ips: list[str]


class PersonalAccessTokenView(_TokenRow, TokenTraits):
    """A token's row without its digest, read without the ORM: renders as a
    ``PersonalAccessToken``."""

    __slots__ = ()


_T = PersonalAccessToken.__table__.c
_U = User.__table__.c
TOKEN_COLUMNS = [_T[name] for name in _TokenRow._fields]
TOKEN_BY_ID = prepared(select(*TOKEN_COLUMNS).where(_T.id == bindparam("id")))
# A token of one project's or group's bots (GitLab's resource access tokens).
BOT_TOKEN = prepared(
    select(*TOKEN_COLUMNS).where(
        _T.id == bindparam("id"),
        _T.user_id.in_(
            select(_U.id).where(
                _U.user_type == int(UserType.PROJECT_BOT),
                _U.bot_resource_type == bindparam("source_type"),
                _U.bot_resource_id == bindparam("source_id"),
            )
        ),
    )
)


def token_rows(query: Select[Any]) -> Query:
    """A listing of tokens (``select(PersonalAccessToken)`` with its filters and order) as rows of
    ``TOKEN_COLUMNS``, for ``token_view``."""
    return query.with_only_columns(*TOKEN_COLUMNS, maintain_column_froms=False)


def token_view(row: Any) -> PersonalAccessTokenView:
    return PersonalAccessTokenView(*row)


def read_token(reads: Reader, token_id: int) -> PersonalAccessTokenView | None:
    row = reads.first(TOKEN_BY_ID, {"id": token_id})
    return None if row is None else PersonalAccessTokenView(*row)


def read_bot_token(
    reads: Reader, token_id: int, source_type: str, source_id: int
) -> PersonalAccessTokenView | None:
    """The token with this id if it belongs to a bot of this project or group (``source_type``,
    memberships' polymorphic type, and its id)."""
    row = reads.first(BOT_TOKEN, {"id": token_id, "source_type": source_type, "source_id": source_id})
    return None if row is None else PersonalAccessTokenView(*row)
