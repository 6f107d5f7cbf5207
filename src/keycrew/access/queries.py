"""SQL conditions for "what may this actor see / reach", for listings that must not check row by row.

Each function returns a condition on Namespace or Project that the caller adds to its select, so
that counting and paging happen in the database. Membership inheritance works on full paths: a
membership on group ``a/b`` reaches every namespace whose full path is ``a/b`` or starts with
``a/b/`` (full paths are unique whatever their case, so a prefix names exactly one subtree).
What a share gives (``keycrew.access.policy``) reaches the same way: a group shared with a group
the user is a member of (or inherits from) and everything under it, and a project shared so.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import CTE, Boolean, ColumnElement, Select, and_, false, literal, or_, select

from keycrew.access.levels import AccessLevel
from keycrew.access.links import GroupGroupLink, ProjectGroupLink
from keycrew.access.models import Member
from keycrew.access.policy import link_live, live, visible_levels
from keycrew.context import Actor
from keycrew.db.reads import Reader
from keycrew.db.text import escape_like
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import NamespaceLike

_N = Namespace.__table__.c
_GGL = GroupGroupLink.__table__.c
_PGL = ProjectGroupLink.__table__.c


def _group_memberships(
    reads: Reader, user_id: int, today: dt.date, min_level: int, *, exact_level: bool = False
) -> list[tuple[int, str]]:
    """(id, full path) of the groups where the user holds a live direct membership at ``min_level``+."""
    return [(r[0], r[1]) for r in _groups_of(reads, user_id, today, min_level, exact_level=exact_level)]


def _groups_of(
    reads: Reader,
    user_id: int,
    today: dt.date,
    min_level: int,
    *,
    exact_level: bool = False,
    shared: bool = False,
) -> list[tuple[int, str, bool]]:
    """(id, full path, False) of the groups where the user holds a live direct membership at
    ``min_level``+; with ``shared``, and (id, full path, True) of the groups shared with the user's
    groups at that level (one statement)."""
    level = Member.access_level == min_level if exact_level else Member.access_level >= min_level
    rows: Any = (
        select(Namespace.id, Namespace.full_path, literal(False, Boolean()))
        .join(
            Member,
            and_(Member.source_id == Namespace.id, Member.source_type == SourceType.NAMESPACE.value),
        )
        .where(Member.user_id == user_id, Namespace.kind == "group", live(today), level)
    )
    if shared:
        rows = rows.union(
            select(_N.id, _N.full_path, literal(True, Boolean())).where(
                _N.id.in_(shared_groups("shared_groups", user_id, today, min_level))
            )
        )
    return [(int(r[0]), str(r[1]), bool(r[2])) for r in reads.rows(rows)]


def shared_groups(name: str, user_id: Any, today: Any, min_level: Any) -> Select[tuple[int]]:
    """The ids of the groups shared (live links, ``group_access`` ``min_level``+) with a group the
    user reaches at ``min_level``+ through membership (``member_subtrees`` called ``name``)."""
    invited = member_subtrees(name, user_id, today, min_level)
    return select(_GGL.shared_group_id).where(
        _GGL.shared_with_group_id.in_(select(invited.c.id)),
        _GGL.group_access >= min_level,
        link_live(_GGL.expires_at, today),
    )


def _subtrees(rows: list[tuple[int, str]]) -> ColumnElement[bool]:
    """Namespaces that are one of ``rows`` or lie under one of them."""
    if not rows:
        return false()
    return or_(
        Namespace.id.in_([r[0] for r in rows]),
        *(Namespace.full_path.like(escape_like(path) + "/%", escape="\\") for _, path in rows),
    )


def _prefixes(full_path: str) -> list[str]:
    parts = full_path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def groups_reached(reads: Reader, user_id: int, today: dt.date, min_level: int) -> ColumnElement[bool]:
    """Groups where the user's effective level (own or inherited membership) is ``min_level``+."""
    rows = _groups_of(reads, user_id, today, min_level, shared=True)
    return and_(Namespace.kind == "group", _subtrees([(r[0], r[1]) for r in rows]))


def groups_owned_directly(reads: Reader, user_id: int, today: dt.date) -> ColumnElement[bool]:
    """Groups where the user holds a direct Owner membership (GitLab's ``owned``)."""
    ids = [r[0] for r in _group_memberships(reads, user_id, today, AccessLevel.OWNER)]
    return Namespace.id.in_(ids) if ids else false()


def groups_related(reads: Reader, user_id: int, today: dt.date) -> ColumnElement[bool]:
    """Groups the user is tied to: member groups, their descendants and ancestors, the groups
    shared with those and their descendants, and the groups (with ancestors) of projects the user is
    a member of."""
    reached = _groups_of(reads, user_id, today, AccessLevel.MINIMAL_ACCESS, shared=True)
    # The groups above a shared group are not listed: the share does not let the user read them.
    rows = [(r[0], r[1]) for r in reached if not r[2]]
    shared_rows = [(r[0], r[1]) for r in reached if r[2]]
    project_namespaces = reads.rows(
        select(Namespace.full_path)
        .join(Project, Project.namespace_id == Namespace.id)
        .join(Member, and_(Member.source_id == Project.id, Member.source_type == SourceType.PROJECT.value))
        .where(Member.user_id == user_id, Namespace.kind == "group", live(today))
    )
    ancestor_paths: set[str] = set()
    for _, path in rows:
        ancestor_paths.update(_prefixes(path))
    for (path,) in project_namespaces:
        ancestor_paths.add(path)
        ancestor_paths.update(_prefixes(path))
    return and_(
        Namespace.kind == "group",
        or_(
            _subtrees(rows + shared_rows),
            Namespace.full_path.in_(sorted(ancestor_paths)) if ancestor_paths else false(),
        ),
    )


def visible_groups(
    reads: Reader, actor: Actor, today: dt.date, *, all_available: bool | None = None
) -> ColumnElement[bool]:
    """The groups a group listing shows the actor (GitLab's GroupsFinder).

    ``all_available`` defaults to true for admins and anonymous visitors (who see public groups),
    false for everyone else (who then see only the groups they are tied to).
    """
    user = actor.facts
    if all_available is None:
        all_available = user is None or actor.is_admin
    if actor.is_admin and all_available:
        return Namespace.kind == "group"
    if user is None:
        return and_(Namespace.kind == "group", Namespace.visibility_level.in_(visible_levels(actor)))
    related = groups_related(reads, user.id, today)
    if not all_available:
        return related
    return or_(
        related, and_(Namespace.kind == "group", Namespace.visibility_level.in_(visible_levels(actor)))
    )


def member_subtrees(name: str, user_id: Any, today: Any, min_level: Any) -> CTE:
    """The groups where the user holds a live direct membership at ``min_level``+, and every
    namespace under them: a recursive CTE called ``name`` (a listing names each of its own),
    walking down ``parent_id``, so that its cost follows the subtrees, not the instance."""
    groups = (
        select(_N.id)
        .join(Member, and_(Member.source_id == _N.id, Member.source_type == SourceType.NAMESPACE.value))
        .where(Member.user_id == user_id, _N.kind == "group", live(today), Member.access_level >= min_level)
        .cte(name, recursive=True)
    )
    return groups.union(select(_N.id).where(_N.parent_id == groups.c.id))


def projects_reached_by(name: str, user_id: Any, today: Any, min_level: Any) -> ColumnElement[bool]:
    """Projects where the user's effective level is ``min_level``+ (direct, inherited or
    personal), as one condition whatever the user's memberships, so that a listing is built once:
    ``user_id``, ``today`` and ``min_level`` may be parameters; ``name`` names the CTE of the
    user's groups (each use in one statement needs its own)."""
    direct = select(Member.source_id).where(
        Member.source_type == SourceType.PROJECT.value,
        Member.user_id == user_id,
        Member.access_level >= min_level,
        live(today),
    )
    personal = select(_N.id).where(_N.kind == "user", _N.owner_id == user_id)
    groups = member_subtrees(name, user_id, today, min_level)
    # Shares: projects shared with one of those groups, and the groups shared with one of them
    # with every namespace under those.
    shared_projects = select(_PGL.project_id).where(
        _PGL.group_id.in_(select(groups.c.id)),
        _PGL.group_access >= min_level,
        link_live(_PGL.expires_at, today),
    )
    shared = (
        select(_GGL.shared_group_id.label("id"))
        .where(
            _GGL.shared_with_group_id.in_(select(groups.c.id)),
            _GGL.group_access >= min_level,
            link_live(_GGL.expires_at, today),
        )
        .cte(f"{name}_shared", recursive=True)
    )
    shared = shared.union(select(_N.id).where(_N.parent_id == shared.c.id))
    return or_(
        Project.id.in_(direct),
        Project.namespace_id.in_(select(groups.c.id)),
        Project.namespace_id.in_(personal),
        Project.id.in_(shared_projects),
        Project.namespace_id.in_(select(shared.c.id)),
    )


def namespace_subtree(ns: NamespaceLike) -> ColumnElement[bool]:
    """The namespace and every namespace under it."""
    return _subtrees([(ns.id, ns.full_path)])


def descendants_of(ns: NamespaceLike) -> ColumnElement[bool]:
    return Namespace.full_path.like(escape_like(ns.full_path) + "/%", escape="\\")
