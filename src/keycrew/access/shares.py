"""Sharing a group or a project with a group: GitLab's group links, their rules and use cases.

A group shared with a group H (``GroupGroupLink``) or a project shared with H
(``ProjectGroupLink``) gives H's members at most the link's ``group_access`` there (the rule itself,
for every access check, is ``keycrew.access.policy``). Who shares: a group's Owners (GitLab's
``admin_group_member``), a project's Maintainers (``admin_project``; only Owners share a project
at Owner level), admins; nobody shares at a level above their own. A link whose ``expires_at`` is
today or earlier gives nothing and counts as gone: sharing again replaces it.

Access is never cached with a principal (the auth cache holds tokens and users only), so a link
created or removed changes every following check at once, on every node.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Select, and_, bindparam, or_, select, union, union_all
from sqlalchemy.exc import IntegrityError

from keycrew.access import queries
from keycrew.access.groups import chain_ids, group_entity, lock_namespaces
from keycrew.access.levels import AccessLevel
from keycrew.access.links import GroupGroupLink, ProjectGroupLink
from keycrew.access.models import Member
from keycrew.access.policy import (
    can_read_group,
    capped_level,
    effective_group_level,
    effective_project_level,
    group_level,
    group_links_onto,
    invited_groups,
    link_live,
    live,
    project_links_onto,
)
from keycrew.access.projects import lock_project, project_entity
from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Ctx
from keycrew.db.base import record_id
from keycrew.db.reads import Reader, prepared
from keycrew.db.text import contains
from keycrew.errors import Conflict, Forbidden, NotFound
from keycrew.identity.models import User
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import NamespaceLike, ProjectLike

# The levels a link may give (GitLab's ``Gitlab::Access.all_values``: Guest to Owner).
LINK_LEVELS = frozenset(level for level in AccessLevel if level >= AccessLevel.GUEST)

# GitLab's messages (a model's full messages: the attribute's name, then the message).
GROUP_ALREADY_SHARED = "Shared group The group has already been shared with this group"
PROJECT_ALREADY_SHARED = "Project already shared with this group"
PROJECT_IN_GROUP = "Project cannot be shared with the group it is in or one of its ancestors."
# GitLab's model has no such rule for groups; a group shared with itself or with a group above it
# changes nothing (those members already reach it), so it is refused in the same words.
GROUP_IN_GROUP = "Group cannot be shared with itself or one of its ancestors."

_GGL = GroupGroupLink.__table__.c
_PGL = ProjectGroupLink.__table__.c
_N = Namespace.__table__.c
_P = Project.__table__.c


class SharedWith(NamedTuple):
    """One live link of a shared group or project, with the invited group's name and path (what
    GitLab's ``shared_with_groups`` items show)."""

    source_id: int  # the shared group's or project's id
    group_id: int
    group_name: str
    group_full_path: str
    group_access: int
    expires_at: dt.date | None


# -- rules ---------------------------------------------------------------------------------------


def _invited_group(ctx: Ctx, group_id: int, *, via_membership: bool) -> Namespace:
    """The group to share with, if the actor may see it (GitLab: ``read_group`` for a group share;
    membership, ``read_namespace_via_membership``, for a project share); NotFound("") otherwise
    (GitLab's service error "Not Found"), NotFound("Group") for a group share's unknown group."""
    found = ctx.db.get(Namespace, record_id(group_id))
    if via_membership:
        if found is None or found.kind != "group":
            raise NotFound("")
        if not ctx.actor.is_admin and group_level(ctx.reads, ctx.actor.facts, found, ctx.today()) < (
            AccessLevel.MINIMAL_ACCESS
        ):
            raise NotFound("")
        return found
    if found is None or found.kind != "group" or not can_read_group(ctx.reads, ctx.actor, found, ctx.today()):
        raise NotFound("Group")
    return found


def _check_level(actor_level: int, group_access: int) -> None:
    """Nobody shares at a level above their own (GitLab: Owner only with ``manage_owners``)."""
    if group_access > actor_level:
        raise Forbidden()


Link = TypeVar("Link", GroupGroupLink, ProjectGroupLink)


def _live_link(ctx: Ctx, model: type[Any], where: Any) -> tuple[Any | None, Any | None]:
    """(the live link, an expired one) matching ``where``: an expired link counts as gone."""
    link = ctx.db.scalars(select(model).where(where)).first()
    if link is None:
        return None, None
    if link.expires_at is not None and link.expires_at <= ctx.today():
        return None, link
    return link, None


def _add_link(ctx: Ctx, model: type[Link], where: Any, duplicate: str, **columns: Any) -> Link:
    """A new link of ``model`` with ``columns``, unless a live one matching ``where`` exists
    (Conflict ``duplicate``); an expired one is replaced. Inserted in a savepoint: a concurrent
    request may make the same link between the check and the insert (the namespaces are only
    share-locked), and the unique index decides."""
    live, expired = _live_link(ctx, model, where)
    if live is not None:
        raise Conflict(duplicate)
    if expired is not None:
        ctx.db.delete(expired)
        ctx.db.flush()
    now = ctx.now()
    link = model(**columns, created_at=now, updated_at=now)
    try:
        with ctx.db.begin_nested():
            ctx.db.add(link)
            ctx.db.flush()
    except IntegrityError:
        raise Conflict(duplicate) from None
    return link


# -- use cases -----------------------------------------------------------------------------------


def share_group(
    ctx: Ctx, group: Namespace, *, group_id: int, group_access: int, expires_at: dt.date | None = None
) -> GroupGroupLink:
    """Share ``group`` with the group ``group_id``: its members get at most ``group_access`` on
    ``group`` and everything under it. Returns the new link.

    Raises NotFound("Group") (the invited group unknown or invisible), NotFound("") (the actor is
    not an Owner of ``group``: GitLab's "Not Found"), Forbidden (a level above the actor's own),
    Conflict (already shared; shared with itself or a group above it).
    """
    invited = _invited_group(ctx, group_id, via_membership=False)
    level = effective_group_level(ctx.reads, ctx.actor, group, ctx.today())
    if level < AccessLevel.OWNER:
        raise NotFound("")
    _check_level(level, group_access)
    # Something inside the shared group changes, and a row comes to point at the invited group:
    # both (and the groups above the shared one) stay put meanwhile, ancestors first.
    chain = chain_ids(group)
    locked = lock_namespaces(ctx, [*chain, invited.id], "share")
    if group.id not in locked:
        raise NotFound("Group")
    if invited.id not in locked:
        raise NotFound("Group")
    if invited.id in chain:
        raise Conflict(GROUP_IN_GROUP)
    link = _add_link(
        ctx,
        GroupGroupLink,
        and_(GroupGroupLink.shared_group_id == group.id, GroupGroupLink.shared_with_group_id == invited.id),
        GROUP_ALREADY_SHARED,
        shared_group_id=group.id,
        shared_with_group_id=invited.id,
        group_access=group_access,
        expires_at=expires_at,
    )
    record(
        ctx,
        Event.GROUP_SHARED,
        group_entity(group),
        target=Target("Group", invited.id, invited.full_path),
        group_access=group_access,
        expires_at=None if expires_at is None else expires_at.isoformat(),
    )
    return link


def unshare_group(ctx: Ctx, group: Namespace, group_id: int) -> None:
    """Stop sharing ``group`` with the group ``group_id``.

    Raises NotFound("Group Link") (no such live link), Forbidden (not an Owner of ``group``).
    """
    if effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) < AccessLevel.OWNER:
        raise Forbidden()
    if group.id not in lock_namespaces(ctx, chain_ids(group), "share"):
        raise NotFound("Group")
    link, _expired = _live_link(
        ctx,
        GroupGroupLink,
        and_(
            GroupGroupLink.shared_group_id == group.id,
            GroupGroupLink.shared_with_group_id == record_id(group_id),
        ),
    )
    if link is None:
        raise NotFound("Group Link")
    invited = ctx.db.get(Namespace, link.shared_with_group_id)
    ctx.db.delete(link)
    record(
        ctx,
        Event.GROUP_UNSHARED,
        group_entity(group),
        target=Target("Group", link.shared_with_group_id, invited.full_path if invited else ""),
    )
    ctx.db.flush()


def share_project(
    ctx: Ctx, project: Project, *, group_id: int, group_access: int, expires_at: dt.date | None = None
) -> ProjectGroupLink:
    """Share ``project`` with the group ``group_id``: its members get at most ``group_access`` on
    the project. The caller has checked that the actor administers the project (Maintainer).
    Returns the new link.

    Raises NotFound("") (the group unknown, or not one the actor belongs to: GitLab's "Not
    Found"), Forbidden (a level above the actor's own), Conflict (already shared; the group the
    project is in or one above it).
    """
    invited = _invited_group(ctx, group_id, via_membership=True)
    level = effective_project_level(ctx.reads, ctx.actor, project, ctx.today())
    if level < AccessLevel.MAINTAINER:
        raise Forbidden()
    _check_level(level, group_access)
    chain = chain_ids(project.namespace)
    # Namespaces first (the invited group with the project's and those above it, in one go), then
    # the project: the lock order.
    if invited.id not in lock_namespaces(ctx, [*chain, invited.id], "share"):
        raise NotFound("")
    project = lock_project(ctx, project)
    if project.namespace.is_group and invited.id in chain:
        raise Conflict(PROJECT_IN_GROUP)
    link = _add_link(
        ctx,
        ProjectGroupLink,
        and_(ProjectGroupLink.project_id == project.id, ProjectGroupLink.group_id == invited.id),
        PROJECT_ALREADY_SHARED,
        project_id=project.id,
        group_id=invited.id,
        group_access=group_access,
        expires_at=expires_at,
    )
    record(
        ctx,
        Event.PROJECT_SHARED,
        project_entity(project),
        target=Target("Group", invited.id, invited.full_path),
        group_access=group_access,
        expires_at=None if expires_at is None else expires_at.isoformat(),
    )
    return link


def unshare_project(ctx: Ctx, project: Project, group_id: int) -> None:
    """Stop sharing ``project`` with the group ``group_id``. The caller has checked that the actor
    administers the project. Raises NotFound("Group Link") (no such live link)."""
    project = lock_project(ctx, project)
    link, _expired = _live_link(
        ctx,
        ProjectGroupLink,
        and_(ProjectGroupLink.project_id == project.id, ProjectGroupLink.group_id == record_id(group_id)),
    )
    if link is None:
        raise NotFound("Group Link")
    invited = ctx.db.get(Namespace, link.group_id)
    ctx.db.delete(link)
    record(
        ctx,
        Event.PROJECT_UNSHARED,
        project_entity(project),
        target=Target("Group", link.group_id, invited.full_path if invited else ""),
    )
    ctx.db.flush()


# -- reads ---------------------------------------------------------------------------------------


def _shared_with(model: str) -> Any:
    """The live links of the groups (``model`` "group") or projects :ids, with the invited group's
    name and path, by link id."""
    if model == "group":
        source, invited, expires, access, order = (
            _GGL.shared_group_id,
            _GGL.shared_with_group_id,
            _GGL.expires_at,
            _GGL.group_access,
            _GGL.id,
        )
    else:
        source, invited, expires, access, order = (
            _PGL.project_id,
            _PGL.group_id,
            _PGL.expires_at,
            _PGL.group_access,
            _PGL.id,
        )
    return prepared(
        select(source, _N.id, _N.name, _N.full_path, access, expires)
        .join_from(source.table, Namespace.__table__, _N.id == invited)
        .where(source.in_(bindparam("ids", expanding=True)), link_live(expires, bindparam("today")))
        .order_by(order)
    )


_SHARED_WITH = {"group": _shared_with("group"), "project": _shared_with("project")}


def shared_with_groups(
    reads: Reader, kind: str, ids: list[int], today: dt.date
) -> dict[int, list[SharedWith]]:
    """The live links of the groups (``kind`` "group") or projects ``ids``, each source's in the
    order they were made: one statement for all of them (none for no ids)."""
    found: dict[int, list[SharedWith]] = defaultdict(list)
    if ids:
        for row in reads.rows(_SHARED_WITH[kind], {"ids": sorted(set(ids)), "today": today}):
            link = SharedWith(*row)
            found[link.source_id].append(link)
    return found


class ShareLink(NamedTuple):
    """A live link into a hierarchy: the invited group and the level it gives at most."""

    shared_with_group_id: int
    group_access: int


_LINKS = (
    union(
        select(_GGL.shared_with_group_id, _GGL.group_access).where(
            _GGL.shared_group_id.in_(bindparam("namespace_ids", expanding=True)),
            link_live(_GGL.expires_at, bindparam("today")),
        ),
        select(_PGL.group_id, _PGL.group_access)
        .join_from(ProjectGroupLink.__table__, Project.__table__, _P.id == _PGL.project_id)
        .where(
            _P.namespace_id.in_(bindparam("namespace_ids", expanding=True)),
            link_live(_PGL.expires_at, bindparam("today")),
        ),
    )
).subquery("links")
_LINKS_INTO = prepared(select(_LINKS.c.shared_with_group_id, _LINKS.c.group_access))


def shared_group_links_of(reads: Reader, namespace_ids: list[int], today: dt.date) -> list[ShareLink]:
    """The live links sharing one of the groups ``namespace_ids`` or a project in one of them
    (a hierarchy's groups: whose members the links invite, e.g. to count seats): one statement."""
    if not namespace_ids:
        return []
    rows = reads.rows(_LINKS_INTO, {"namespace_ids": sorted(set(namespace_ids)), "today": today})
    return [ShareLink(int(row[0]), int(row[1])) for row in rows]


def project_groups_query(
    ctx: Ctx,
    project: ProjectLike,
    *,
    with_shared: bool = False,
    shared_visible_only: bool = False,
    shared_min_access_level: int | None = None,
    search: str | None = None,
    skip_groups: list[int] | None = None,
) -> Select[Any]:
    """GET /projects/:id/groups (GitLab's Projects::GroupsFinder): the project's group and the
    groups above it, and with ``with_shared`` the groups it is shared with (live links, at
    ``shared_min_access_level``+; with ``shared_visible_only`` those the actor may see), newest
    first. The caller has checked that the actor may read the project."""
    ns: NamespaceLike = project.namespace
    today = ctx.today()
    conditions: list[Any] = []
    if ns.is_group:
        parts = ns.full_path.split("/")
        paths = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        conditions.append(and_(Namespace.kind == "group", Namespace.full_path.in_(paths)))
    if with_shared:
        links = select(ProjectGroupLink.group_id).where(
            ProjectGroupLink.project_id == project.id, link_live(ProjectGroupLink.expires_at, today)
        )
        if shared_min_access_level is not None:
            links = links.where(ProjectGroupLink.group_access >= shared_min_access_level)
        shared: Any = Namespace.id.in_(links)
        if shared_visible_only:
            shared = and_(shared, queries.visible_groups(ctx.reads, ctx.actor, today, all_available=True))
        conditions.append(shared)
    query = select(Namespace).where(or_(*conditions) if conditions else Namespace.id < 0)
    if skip_groups:
        query = query.where(Namespace.id.not_in(skip_groups))
    if search:
        query = query.where(contains(Namespace.name, search) | contains(Namespace.path, search))
    return query.order_by(Namespace.id.desc())


class InvitedMember(NamedTuple):
    """A member of a group a group or project is shared with (or of a group above that one), as
    the shared resource sees them: at the level the link caps theirs to."""

    user: User
    access_level: int
    expires_at: dt.date | None
    created_at: dt.datetime
    group_id: int  # the invited group (the link's)
    group_full_path: str


def invited_members(
    ctx: Ctx,
    kind: str,
    source_id: int,
    shared_ids: list[int],
    *,
    search: str | None = None,
) -> list[InvitedMember]:
    """The members that the live links of the groups ``shared_ids`` (a group and the groups above
    it, or a project's group and those above it) and, for ``kind`` "project", of the project
    ``source_id`` bring in (what GET .../members/all adds to the inherited members): one row per
    user, at their highest capped level (the first link on a tie), by user id. One statement."""
    today = ctx.today()
    parts: list[Select[Any]] = []
    if shared_ids:
        parts.append(group_links_onto(shared_ids, today))
    if kind == "project":
        parts.append(project_links_onto(source_id, today))
    if not parts:
        return []
    links = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("ui_links")
    tree = invited_groups(links, "ui_invited", with_invited_id=True)
    ns = Namespace.__table__
    invited = ns.alias("ui_invited_group")
    query = (
        select(
            User,
            capped_level(Member.access_level, tree.c.cap),
            Member.expires_at,
            Member.created_at,
            tree.c.invited_id,
            invited.c.full_path,
        )
        .select_from(Member.__table__.join(tree, Member.source_id == tree.c.id))
        .join(invited, invited.c.id == tree.c.invited_id)
        .join(User, User.id == Member.user_id)
        # IN as well: the planner starts from the invited groups (see members._shared_members).
        .where(
            Member.source_type == SourceType.NAMESPACE.value,
            Member.source_id.in_(select(tree.c.id)),
            live(today),
        )
        .order_by(User.id, tree.c.invited_id)
    )
    if search:
        query = query.where(
            or_(contains(User.username, search), contains(User.name, search), User.email == search.lower())
        )
    best: dict[int, InvitedMember] = {}
    for user, level, expires_at, created_at, group_id, full_path in ctx.db.execute(query).all():
        found = best.get(user.id)
        if found is None or int(level) > found.access_level:
            best[user.id] = InvitedMember(user, int(level), expires_at, created_at, int(group_id), full_path)
    return list(best.values())
