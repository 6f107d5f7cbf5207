"""Users as column values, for reads (see ``keycrew.db.reads`` and ``keycrew.namespaces.views``)."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select

from keycrew.db.reads import Reader, prepared
from keycrew.identity.models import User, UserTraits


class _UserRow(NamedTuple):
    id: int
    username: str
    name: str
    email: str
    user_type: int
    state: str
    admin: bool
    external: bool
    private_profile: bool
    can_create_group: bool
    projects_limit: int
    bio: str
    note: str | None
    confirmed_at: dt.datetime | None
    last_activity_on: dt.date | None
    last_sign_in_at: dt.datetime | None
    current_sign_in_at: dt.datetime | None
    sign_in_count: int
    locked_at: dt.datetime | None
    created_by_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    bot_resource_type: str | None
    bot_resource_id: int | None
    provisioned_by_group_id: int | None
    provisioned_by_project_id: int | None


class UserView(_UserRow, UserTraits):
    """A user's row without its password digest, read without the ORM: renders as a ``User``."""

    __slots__ = ()

    @classmethod
    def of(cls, user: User) -> UserView:
        """The view of a loaded row."""
        return cls(*(getattr(user, name) for name in _UserRow._fields))


# What renderers and rules that only read accept: a row or its view (the same attribute names).
AnyUser = User | UserView

_U = User.__table__.c
USER_COLUMNS = [_U[name] for name in _UserRow._fields]
# What a listing of users (``identity.queries.user_listing``) adds its filters and order to.
USER_LISTING = select(*USER_COLUMNS)
USER_BY_ID = prepared(select(*USER_COLUMNS).where(_U.id == bindparam("id")))
USERS_BY_IDS = prepared(select(*USER_COLUMNS).where(_U.id.in_(bindparam("ids", expanding=True))))


def user_view(row: Any) -> UserView:
    return UserView(*row)


def read_user(reads: Reader, user_id: int) -> UserView | None:
    row = reads.first(USER_BY_ID, {"id": user_id})
    return None if row is None else UserView(*row)


def user_views(reads: Reader, ids: set[int] | list[int]) -> dict[int, UserView]:
    """The users with these ids, by id (those that exist)."""
    if not ids:
        return {}
    return {row[0]: UserView(*row) for row in reads.rows(USERS_BY_IDS, {"ids": sorted(ids)})}


class _BriefRow(NamedTuple):
    id: int
    username: str
    name: str
    email: str
    user_type: int
    state: str
    locked_at: dt.datetime | None


class UserBrief(_BriefRow, UserTraits):
    """What an entity shows of a user it names (a project's owner, a member, who added them):
    GitLab's UserBasic, with the type and state that say whether it is a bot, human, active."""

    __slots__ = ()


BRIEF_COLUMNS = [_U[name] for name in _BriefRow._fields]
_BRIEFS_BY_IDS = prepared(select(*BRIEF_COLUMNS).where(_U.id.in_(bindparam("ids", expanding=True))))


def user_briefs(reads: Reader, ids: set[int] | list[int]) -> dict[int, UserBrief]:
    """``user_views`` for entities that only name users: seven columns, not the whole row."""
    if not ids:
        return {}
    return {row[0]: UserBrief(*row) for row in reads.rows(_BRIEFS_BY_IDS, {"ids": sorted(ids)})}
