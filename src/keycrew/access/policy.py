"""Who may see and do what: effective access levels from memberships, visibility and admin.

A user's level on a group is the highest live membership on the group or any ancestor; on a
project it is the highest of the direct membership and the level on its namespace (the holder of
a personal namespace counts as Owner). A membership whose ``expires_at`` is today or earlier gives
nothing. Admins read everything and count as Owners for administration checks.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Select, and_, bindparam, case, func, or_, select

from keycrew.access.levels import AccessLevel
from keycrew.access.models import Member
from keycrew.context import Actor, UserFacts
from keycrew.db.reads import Reader, prepared
from keycrew.db.text import escape_like
from keycrew.identity.types import UserType
from keycrew.namespaces.kinds import SourceType, Visibility
from keycrew.namespaces.models import Namespace, Project, chain
from keycrew.namespaces.views import (
    PROJECT_COLUMNS,
    PROJECTS_WITH_NAMESPACE,
    NamespaceLike,
    ProjectLike,
    ProjectView,
    project_view,
)


def live(today: dt.date | BindParameter[dt.date]) -> ColumnElement[bool]:
    """Memberships that still give access today (an expiry date is the first day without it)."""
    return or_(Member.expires_at.is_(None), Member.expires_at > today)


def namespace_chain(ns: Namespace) -> list[Namespace]:
    """The namespace and its ancestors, nearest first (one query for the ancestors)."""
    return chain(ns)


# The membership queries every access check runs, built once: only their parameters change. The
# groups above a namespace are found by following its parent links in the database (a recursive
# query), so a check is one statement whatever the depth.
_LIVE = live(bindparam("today"))
_ON_PROJECT = and_(
    Member.source_type == SourceType.PROJECT.value, Member.source_id == bindparam("project_id")
)


def _chain_ids(start: Any = None, name: str = "chain") -> Select[tuple[int]]:
    """The ids of the namespace ``start`` (by default the parameter ``namespace_id``) and of
    every group above it: a recursive CTE called ``name``."""
    ns = Namespace.__table__
    chain = (
        select(ns.c.id, ns.c.parent_id)
        .where(ns.c.id == (bindparam("namespace_id") if start is None else start))
        .cte(name, recursive=True)
    )
    above = ns.alias("above")
    chain = chain.union_all(select(above.c.id, above.c.parent_id).where(above.c.id == chain.c.parent_id))
    return select(chain.c.id)


_IN_CHAIN = and_(
    Member.source_type == SourceType.NAMESPACE.value,
    Member.source_id.in_(_chain_ids().scalar_subquery()),
)
_GROUP_LEVEL = prepared(
    select(func.max(Member.access_level)).where(_IN_CHAIN, Member.user_id == bindparam("user_id"), _LIVE)
)
_PROJECT_LEVEL = prepared(
    select(Member.access_level).where(_ON_PROJECT, Member.user_id == bindparam("user_id"), _LIVE)
)
_PROJECT_LEVELS = prepared(
    select(
        func.max(case((_ON_PROJECT, Member.access_level))),
        func.max(case((Member.source_type == SourceType.NAMESPACE.value, Member.access_level))),
    ).where(Member.user_id == bindparam("user_id"), _LIVE, or_(_ON_PROJECT, _IN_CHAIN))
)


# A project with the caller's (direct, inherited) levels on it: what GET /projects/:id needs, in
# one statement (one round trip on PostgreSQL, not two).
_PROJECT_WITH_LEVELS = prepared(
    select(
        *PROJECT_COLUMNS,
        select(func.max(Member.access_level))
        .where(
            Member.source_type == SourceType.PROJECT.value,
            Member.source_id == bindparam("id"),
            Member.user_id == bindparam("user_id"),
            _LIVE,
        )
        .scalar_subquery(),
        select(func.max(Member.access_level))
        .where(
            Member.source_type == SourceType.NAMESPACE.value,
            # The groups above the namespace of project :id.
            Member.source_id.in_(
                _chain_ids(
                    select(Project.__table__.c.namespace_id)
                    .where(Project.__table__.c.id == bindparam("id"))
                    .scalar_subquery(),
                    "project_chain",
                ).scalar_subquery()
            ),
            Member.user_id == bindparam("user_id"),
            _LIVE,
        )
        .scalar_subquery(),
    )
    .select_from(PROJECTS_WITH_NAMESPACE)
    .where(Project.__table__.c.id == bindparam("id"))
)


def project_with_levels(
    reads: Reader, user: UserFacts, project_id: int, today: dt.date
) -> tuple[ProjectView, tuple[int, int]] | None:
    """The project and ``project_levels`` of ``user`` on it, read together; None if no project
    has this id."""
    row = reads.first(_PROJECT_WITH_LEVELS, {"id": project_id, "user_id": user.id, "today": today})
    if row is None:
        return None
    project = project_view(row[:-2])
    direct, inherited = row[-2:]
    if not project.namespace.is_group:
        inherited = _holder_level(project.namespace, user)
    return project, (int(direct or 0), int(inherited or 0))


def _holder_level(ns: NamespaceLike, user: UserFacts) -> int:
    """What a personal namespace gives on its projects: Owner to its holder, nothing to others."""
    return AccessLevel.OWNER if ns.owner_id == user.id else AccessLevel.NO_ACCESS


def group_level(reads: Reader, user: UserFacts | None, group: NamespaceLike, today: dt.date) -> int:
    """The highest live membership level of ``user`` on ``group`` or any of its ancestors."""
    if user is None:
        return AccessLevel.NO_ACCESS
    if not group.is_group:
        return AccessLevel.OWNER if group.owner_id == user.id else AccessLevel.NO_ACCESS
    level = reads.scalar(_GROUP_LEVEL, {"namespace_id": group.id, "user_id": user.id, "today": today})
    return int(level or AccessLevel.NO_ACCESS)


def project_levels(reads: Reader, user: UserFacts, project: ProjectLike, today: dt.date) -> tuple[int, int]:
    """(direct, inherited) levels of ``user`` on ``project``, in one query: the live project
    membership, and the highest live membership on its group or the groups above (the holder of a
    personal namespace inherits Owner)."""
    ns = project.namespace
    if not ns.is_group:
        direct = reads.scalar(_PROJECT_LEVEL, {"project_id": project.id, "user_id": user.id, "today": today})
        return int(direct or 0), _holder_level(ns, user)
    params = {"project_id": project.id, "namespace_id": ns.id, "user_id": user.id, "today": today}
    row = reads.first(_PROJECT_LEVELS, params)
    direct, inherited = row if row is not None else (None, None)
    return int(direct or 0), int(inherited or 0)


def project_level(reads: Reader, user: UserFacts | None, project: ProjectLike, today: dt.date) -> int:
    """Highest of the direct membership and every ancestor group's (personal owner: Owner)."""
    if user is None:
        return AccessLevel.NO_ACCESS
    return max(project_levels(reads, user, project, today))


def sees_internal(user: UserFacts | None) -> bool:
    """Internal visibility means any signed-in user except external users.

    Project bots are held to the same line as external users: a bot's reach is its own project or
    group (plus what is public), never everything internal on the instance.
    """
    return user is not None and not user.external and user.user_type != UserType.PROJECT_BOT


def visible_levels(actor: Actor) -> list[int]:
    """The visibility levels the actor sees without any membership."""
    if actor.is_admin:
        return [v.level for v in Visibility]
    if sees_internal(actor.facts):
        return [Visibility.INTERNAL.level, Visibility.PUBLIC.level]
    return [Visibility.PUBLIC.level]


def _can_see_visibility(actor: Actor, visibility_level: int) -> bool:
    return visibility_level in visible_levels(actor)


def can_read_project(reads: Reader, actor: Actor, project: ProjectLike, today: dt.date) -> bool:
    if may_read_project(actor, project, None):
        return True
    user = actor.facts
    return user is not None and may_read_project(actor, project, project_levels(reads, user, project, today))


def may_read_project(actor: Actor, project: ProjectLike, levels: tuple[int, int] | None) -> bool:
    """``can_read_project`` with the actor's (direct, inherited) levels already read (None: not
    read, or no user)."""
    if actor.is_admin or _can_see_visibility(actor, project.visibility_level):
        return True
    return levels is not None and max(levels) >= AccessLevel.GUEST


def can_read_group(reads: Reader, actor: Actor, group: NamespaceLike, today: dt.date) -> bool:
    if actor.is_admin or _can_see_visibility(actor, group.visibility_level):
        return True
    if group_level(reads, actor.facts, group, today) >= AccessLevel.MINIMAL_ACCESS:
        return True
    # A member of a project or subgroup inside a private group may see the group itself.
    return actor.facts is not None and _has_descendant_membership(reads, actor.facts, group, today)


_MEMBER_OF_GROUP_BELOW = prepared(
    select(Member.id)
    .join(
        Namespace,
        (Member.source_id == Namespace.id) & (Member.source_type == SourceType.NAMESPACE.value),
    )
    .where(
        Member.user_id == bindparam("user_id"),
        _LIVE,
        Namespace.full_path.like(bindparam("like"), escape="\\"),
    )
    .limit(1)
)
_MEMBER_OF_PROJECT_BELOW = prepared(
    select(Member.id)
    .join(Project, (Member.source_id == Project.id) & (Member.source_type == SourceType.PROJECT.value))
    .where(
        Member.user_id == bindparam("user_id"), _LIVE, Project.full_path.like(bindparam("like"), escape="\\")
    )
    .limit(1)
)


def _has_descendant_membership(reads: Reader, user: UserFacts, group: NamespaceLike, today: dt.date) -> bool:
    params = {"user_id": user.id, "today": today, "like": escape_like(group.full_path) + "/%"}
    return (
        reads.scalar(_MEMBER_OF_GROUP_BELOW, params) is not None
        or reads.scalar(_MEMBER_OF_PROJECT_BELOW, params) is not None
    )


def effective_project_level(reads: Reader, actor: Actor, project: ProjectLike, today: dt.date) -> int:
    """The actor's level for administration checks; admins count as Owners."""
    if actor.is_admin:
        return AccessLevel.OWNER
    return project_level(reads, actor.facts, project, today)


def effective_group_level(reads: Reader, actor: Actor, group: NamespaceLike, today: dt.date) -> int:
    if actor.is_admin:
        return AccessLevel.OWNER
    return group_level(reads, actor.facts, group, today)
