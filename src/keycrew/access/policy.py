"""Who may see and do what: effective access levels from memberships, visibility and admin.

A user's level on a group is the highest live membership on the group or any ancestor; on a
project it is the highest of the direct membership and the level on its namespace (the holder of
a personal namespace counts as Owner). A membership whose ``expires_at`` is today or earlier gives
nothing. Admins read everything and count as Owners for administration checks.

Sharing (``keycrew.access.links``): a group shared with a group H, or a project shared with H,
gives every member of H (direct, or inherited from H's ancestors) the lower of their level in H and
the link's ``group_access`` on the shared group and everything under it, or on the shared project,
until the link's ``expires_at``. A user's level is the highest of what memberships and links give.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    func,
    or_,
    select,
    union_all,
)

from keycrew.access.levels import AccessLevel
from keycrew.access.links import GroupGroupLink, ProjectGroupLink
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


_CHAIN = _chain_ids().scalar_subquery()
_IN_CHAIN = and_(Member.source_type == SourceType.NAMESPACE.value, Member.source_id.in_(_CHAIN))

# -- sharing: what links give, as subqueries of the statements of an access check ----------------
_NS = Namespace.__table__
_GGL = GroupGroupLink.__table__.c
_PGL = ProjectGroupLink.__table__.c


def link_live(expires_at: Any, today: Any) -> ColumnElement[bool]:
    """Links that still give access ``today`` (an expiry date is the first day without it)."""
    return or_(expires_at.is_(None), expires_at > today)


def group_links_onto(chain: Any, today: Any) -> Select[Any]:
    """(invited group id, cap) of the live links sharing a group of ``chain`` (a select of
    namespace ids: a group and its ancestors, whose shares reach it)."""
    return select(_GGL.shared_with_group_id.label("group_id"), _GGL.group_access.label("cap")).where(
        _GGL.shared_group_id.in_(chain), link_live(_GGL.expires_at, today)
    )


def project_links_onto(project_id: Any, today: Any) -> Select[Any]:
    """(invited group id, cap) of the live links sharing the project ``project_id``."""
    return select(_PGL.group_id.label("group_id"), _PGL.group_access.label("cap")).where(
        _PGL.project_id == project_id, link_live(_PGL.expires_at, today)
    )


def project_links_onto_any(project_ids: Any, today: Any) -> Select[Any]:
    """(invited group id, cap) of the live links sharing one of ``project_ids`` (a select)."""
    return select(_PGL.group_id.label("group_id"), _PGL.group_access.label("cap")).where(
        _PGL.project_id.in_(project_ids), link_live(_PGL.expires_at, today)
    )


def invited_groups(links: Any, name: str, *, with_invited_id: bool = False) -> Any:
    """The invited groups of ``links`` (a subquery of group_id, cap) and every group above each,
    with the link's cap: a recursive CTE called ``name`` (id, parent_id, cap, and with
    ``with_invited_id`` the invited group each row comes from), as long as the links times the
    depth, whatever the size of the trees."""
    carried = [links.c.group_id.label("invited_id")] if with_invited_id else []
    seeds = (
        select(_NS.c.id, _NS.c.parent_id, links.c.cap, *carried)
        .select_from(_NS.join(links, _NS.c.id == links.c.group_id))
        .cte(name, recursive=True)
    )
    up = _NS.alias(f"{name}_up")
    kept = [seeds.c.invited_id] if with_invited_id else []
    return seeds.union_all(
        select(up.c.id, up.c.parent_id, seeds.c.cap, *kept).where(up.c.id == seeds.c.parent_id)
    )


def capped_level(level: Any, cap: Any) -> ColumnElement[int]:
    """The lower of a member's level and a link's cap (portable: no LEAST on SQLite)."""
    return case((level < cap, level), else_=cap)


def shared_level(links: Any, name: str, user_id: Any, today: Any) -> Any:
    """The highest level ``user_id`` gets through ``links`` (a subquery of group_id, cap): their
    live membership of an invited group or a group above it, capped by the link; NULL if none."""
    invited = invited_groups(links, name)
    return (
        select(func.max(capped_level(Member.access_level, invited.c.cap)))
        .select_from(Member.__table__.join(invited, Member.source_id == invited.c.id))
        .where(Member.source_type == SourceType.NAMESPACE.value, Member.user_id == user_id, live(today))
        .scalar_subquery()
    )


def _group_shared(chain: Any, prefix: str) -> Any:
    """What the shares of the groups of ``chain`` (a group and those above it) give :user_id."""
    links = group_links_onto(chain, bindparam("today")).subquery(f"{prefix}_links")
    return shared_level(links, f"{prefix}_invited", bindparam("user_id"), bindparam("today"))


def _project_shared(project_id: Any, chain: Any, prefix: str) -> Any:
    """What the shares of the project and of the groups of ``chain`` (its namespace and the
    groups above) give :user_id."""
    today: Any = bindparam("today")
    links = union_all(group_links_onto(chain, today), project_links_onto(project_id, today)).subquery(
        f"{prefix}_links"
    )
    return shared_level(links, f"{prefix}_invited", bindparam("user_id"), today)


def _highest(*conditions: Any) -> Any:
    return (
        select(func.max(Member.access_level))
        .where(*conditions, Member.user_id == bindparam("user_id"), _LIVE)
        .scalar_subquery()
    )


# Each: the membership levels, then what shares give (one statement; the caller takes the max).
_GROUP_LEVEL = prepared(select(_highest(_IN_CHAIN), _group_shared(_CHAIN, "share")))
_PROJECT_LEVEL = prepared(
    select(
        _highest(_ON_PROJECT),
        shared_level(
            project_links_onto(bindparam("project_id"), bindparam("today")).subquery("share_links"),
            "share_invited",
            bindparam("user_id"),
            bindparam("today"),
        ),
    )
)
_PROJECT_LEVELS = prepared(
    select(
        _highest(_ON_PROJECT),
        _highest(_IN_CHAIN),
        _project_shared(bindparam("project_id"), _CHAIN, "share"),
    )
)


# A project with the caller's (direct, inherited) levels on it: what GET /projects/:id needs, in
# one statement (one round trip on PostgreSQL, not two). The groups above the namespace of :id:
_PROJECT_CHAIN = _chain_ids(
    select(Project.__table__.c.namespace_id)
    .where(Project.__table__.c.id == bindparam("id"))
    .scalar_subquery(),
    "project_chain",
).scalar_subquery()
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
            Member.source_id.in_(_PROJECT_CHAIN),
            Member.user_id == bindparam("user_id"),
            _LIVE,
        )
        .scalar_subquery(),
        _project_shared(bindparam("id"), _PROJECT_CHAIN, "project_share"),
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
    project = project_view(row[:-3])
    direct, inherited, shared = row[-3:]
    if not project.namespace.is_group:
        inherited = _holder_level(project.namespace, user)
    return project, (int(direct or 0), max(int(inherited or 0), int(shared or 0)))


def _holder_level(ns: NamespaceLike, user: UserFacts) -> int:
    """What a personal namespace gives on its projects: Owner to its holder, nothing to others."""
    return AccessLevel.OWNER if ns.owner_id == user.id else AccessLevel.NO_ACCESS


def group_level(reads: Reader, user: UserFacts | None, group: NamespaceLike, today: dt.date) -> int:
    """The highest live membership level of ``user`` on ``group`` or any of its ancestors."""
    if user is None:
        return AccessLevel.NO_ACCESS
    if not group.is_group:
        return AccessLevel.OWNER if group.owner_id == user.id else AccessLevel.NO_ACCESS
    row = reads.first(_GROUP_LEVEL, {"namespace_id": group.id, "user_id": user.id, "today": today})
    direct, shared = row if row is not None else (None, None)
    return max(int(direct or AccessLevel.NO_ACCESS), int(shared or AccessLevel.NO_ACCESS))


def project_levels(reads: Reader, user: UserFacts, project: ProjectLike, today: dt.date) -> tuple[int, int]:
    """(direct, inherited) levels of ``user`` on ``project``, in one query: the live project
    membership, and the highest of the live memberships on its group or the groups above (the
    holder of a personal namespace inherits Owner) and of what the shares of the project and of
    those groups give."""
    ns = project.namespace
    if not ns.is_group:
        row = reads.first(_PROJECT_LEVEL, {"project_id": project.id, "user_id": user.id, "today": today})
        direct, shared = row if row is not None else (None, None)
        return int(direct or 0), max(_holder_level(ns, user), int(shared or 0))
    params = {"project_id": project.id, "namespace_id": ns.id, "user_id": user.id, "today": today}
    row = reads.first(_PROJECT_LEVELS, params)
    direct, inherited, shared = row if row is not None else (None, None, None)
    return int(direct or 0), max(int(inherited or 0), int(shared or 0))


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
