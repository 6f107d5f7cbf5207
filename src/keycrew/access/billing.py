"""Billable members of a top-level group (GitLab's billable members API): who in the group's
hierarchy takes a seat, their memberships there, and removing someone from the whole hierarchy.

Who takes a seat is the instance's rule (``access.seats.takes_seat``: active humans; never bots,
service accounts or internal users; Minimal Access only is free; on Ultimate only a live role
above Guest counts), so that the billable members of every group, the member entities'
``is_using_seat`` and GET /license always agree. A group's billable members are the users holding
a live membership in its hierarchy (the group, its subgroups and their projects) who take a seat;
members of groups invited to the hierarchy join them through ``invited_memberships``.

Only Owners of a top-level group (and admins) use these endpoints; GitLab answers anyone else,
and any subgroup, with a bare 400 rather than 403.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)

from keycrew.access.groups import group_entity, lock_group
from keycrew.access.levels import AccessLevel
from keycrew.access.members import has_other_owner
from keycrew.access.models import Member
from keycrew.access.policy import (
    capped_level,
    effective_group_level,
    group_links_onto,
    invited_groups,
    live,
    project_links_onto_any,
)
from keycrew.access.projects import project_entity
from keycrew.access.seats import takes_seat
from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Ctx
from keycrew.db.listings import Listing, listing
from keycrew.db.reads import prepared
from keycrew.db.text import contains_pattern, escape_like, lower_like
from keycrew.errors import Invalid, NotFound
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.identity.views import USER_COLUMNS, UserView
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import NamespaceLike

# GitLab's sort values (``MembersHelpers.member_sort_options``); without one, by user id.
BILLABLE_SORTS = (
    "access_level_asc",
    "access_level_desc",
    "last_joined",
    "name_asc",
    "name_desc",
    "oldest_joined",
    "oldest_sign_in",
    "recent_sign_in",
    "last_activity_on_asc",
    "last_activity_on_desc",
)

NOT_TOP_LEVEL = "Invalid group provided, must be top-level"
UNAUTHORIZED = "User unauthorized to remove member"
NO_MEMBER = "No member found for the given user_id"
LAST_OWNER = "The user is the last owner of a group in this hierarchy and cannot be removed"
BOT = "Project bots are removed with their access token"

# How a user belongs to the hierarchy, the strongest first (GitLab's ``membership_type``).
MEMBERSHIP_TYPES = ("group_member", "project_member", "group_invite", "project_invite")
_GROUP_MEMBER, _PROJECT_MEMBER, _GROUP_INVITE, _PROJECT_INVITE = 0, 1, 2, 3

_U = User.__table__.c
_M = Member.__table__.c
_N = Namespace.__table__.c
_P = Project.__table__.c


# -- the hierarchy ---------------------------------------------------------------------------------


def _hierarchy_groups() -> Select[Any]:
    """The ids of the group :top_id and of every group under it (:top_like is its path + "/%")."""
    return select(_N.id).where(
        _N.kind == "group",
        or_(_N.id == bindparam("top_id"), _N.full_path.like(bindparam("top_like"), escape="\\")),
    )


def _hierarchy_projects() -> Select[Any]:
    return select(_P.id).where(_P.namespace_id.in_(_hierarchy_groups()))


def _in_hierarchy() -> ColumnElement[bool]:
    """Membership rows of the hierarchy's groups and projects."""
    return or_(
        and_(_M.source_type == SourceType.NAMESPACE.value, _M.source_id.in_(_hierarchy_groups())),
        and_(_M.source_type == SourceType.PROJECT.value, _M.source_id.in_(_hierarchy_projects())),
    )


def _hierarchy_values(group: NamespaceLike) -> dict[str, Any]:
    return {"top_id": group.id, "top_like": escape_like(group.full_path) + "/%"}


def _direct_memberships(today: Any) -> Select[Any]:
    """(user_id, access_level, created_at, kind) of the live direct memberships in the hierarchy;
    ``kind`` is the place of its ``MEMBERSHIP_TYPES``."""
    kind = case((_M.source_type == SourceType.NAMESPACE.value, _GROUP_MEMBER), else_=_PROJECT_MEMBER)
    return select(
        _M.user_id.label("user_id"),
        _M.access_level.label("access_level"),
        _M.created_at.label("created_at"),
        kind.label("kind"),
    ).where(_in_hierarchy(), live(today))


def invited_memberships(today: Any) -> list[Select[Any]]:
    """Members of the groups invited to the hierarchy: selects of the columns of
    ``_direct_memberships`` (``kind`` 2 for a group invited to one of the hierarchy's groups, 3 for
    one invited to one of its projects; ``access_level`` the lower of the member's level and the
    share's), on the same parameters (:top_id, :top_like, the day ``today``). An invited group's
    members are its own and those inherited from the groups above it, as for access
    (``policy.invited_groups``). They are listed with ``removable`` false: removing a billable
    member leaves the invited group alone."""
    group_links = group_links_onto(_hierarchy_groups(), today).subquery("billing_group_links")
    project_links = project_links_onto_any(_hierarchy_projects(), today).subquery("billing_project_links")
    return [
        _invited(invited_groups(group_links, "billing_group_invited"), _GROUP_INVITE, today),
        _invited(invited_groups(project_links, "billing_project_invited"), _PROJECT_INVITE, today),
    ]


def _invited(invited: Any, kind: int, today: Any) -> Select[Any]:
    return (
        select(
            _M.user_id.label("user_id"),
            capped_level(_M.access_level, invited.c.cap).label("access_level"),
            _M.created_at.label("created_at"),
            literal(kind).label("kind"),
        )
        .select_from(Member.__table__.join(invited, _M.source_id == invited.c.id))
        # IN as well: the planner starts from the invited groups (see members._shared_members).
        .where(
            _M.source_type == SourceType.NAMESPACE.value, _M.source_id.in_(select(invited.c.id)), live(today)
        )
    )


def _memberships(today: Any) -> Any:
    """Every way each user belongs to the hierarchy, one row per user: their highest level, when
    they first joined and their strongest ``kind``."""
    parts = [_direct_memberships(today), *invited_memberships(today)]
    rows = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("hierarchy_rows")
    return (
        select(
            rows.c.user_id,
            func.max(rows.c.access_level).label("access_level"),
            func.min(rows.c.created_at).label("joined_at"),
            func.min(rows.c.kind).label("kind"),
        )
        .group_by(rows.c.user_id)
        .subquery("billed")
    )


# -- billable members --------------------------------------------------------------------------


class BillableMember(NamedTuple):
    """A billable user with how they belong to the hierarchy."""

    user: UserView
    access_level: int
    joined_at: dt.datetime
    membership_type: str

    @property
    def removable(self) -> bool:
        """Only direct members are removed here (an invited group's members stay in their group)."""
        return self.membership_type in ("group_member", "project_member")


_WIDTH = len(USER_COLUMNS)


def billable_member(row: Any) -> BillableMember:
    """A row of ``billable_members_listing``."""
    access_level, joined_at, kind = row[_WIDTH:]
    return BillableMember(UserView(*row[:_WIDTH]), int(access_level), joined_at, MEMBERSHIP_TYPES[int(kind)])


def _order(sort: str, billed: Any) -> list[Any]:
    by_id = _U.id.asc()
    orders: dict[str, list[Any]] = {
        "id_asc": [],
        "access_level_asc": [billed.c.access_level.asc()],
        "access_level_desc": [billed.c.access_level.desc()],
        "last_joined": [billed.c.joined_at.desc()],
        "oldest_joined": [billed.c.joined_at.asc()],
        "name_asc": [_U.name.asc()],
        "name_desc": [_U.name.desc()],
        "oldest_sign_in": [_U.current_sign_in_at.asc().nulls_last()],
        "recent_sign_in": [_U.current_sign_in_at.desc().nulls_last()],
        "last_activity_on_asc": [_U.last_activity_on.asc().nulls_first()],
        "last_activity_on_desc": [_U.last_activity_on.desc().nulls_last()],
    }
    return [*orders[sort], by_id]


def _billable_rows(search: bool, sort: str, one_user: bool) -> tuple[Select[Any], None]:
    today = bindparam("today", type_=Date())
    billed = _memberships(today)
    rows = (
        select(*USER_COLUMNS, billed.c.access_level, billed.c.joined_at, billed.c.kind)
        .select_from(User.__table__.join(billed, billed.c.user_id == _U.id))
        .where(takes_seat(today))
    )
    if search:
        pattern = bindparam("pattern", type_=String())
        rows = rows.where(or_(lower_like(_U.name, pattern), lower_like(_U.username, pattern)))
    if one_user:
        rows = rows.where(_U.id == bindparam("user_id"))
    return rows.order_by(*_order(sort, billed)), None


def check_billing_owner(ctx: Ctx, group: NamespaceLike) -> None:
    """The billable members of ``group`` are for its Owners (and admins), and only of a top-level
    group: anything else is GitLab's bare 400 (Invalid with no message)."""
    if group.parent_id is not None:
        raise Invalid()
    if effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) < AccessLevel.OWNER:
        raise Invalid()


def billable_members_listing(
    ctx: Ctx,
    group: NamespaceLike,
    *,
    search: str | None = None,
    sort: str | None = None,
    user_id: int | None = None,
) -> Listing:
    """The users who take a seat and belong to ``group``'s hierarchy, as ``billable_member`` rows,
    by ``sort`` (one of ``BILLABLE_SORTS``; by id without one), ties by id. ``search`` matches a
    name or username. Raises Invalid (400) for a subgroup or a caller who is not an Owner."""
    check_billing_owner(ctx, group)
    values: dict[str, Any] = {**_hierarchy_values(group), "today": ctx.today()}
    if search:
        values["pattern"] = contains_pattern(search)
    if user_id is not None:
        values["user_id"] = user_id
    shape = (bool(search), sort or "id_asc", user_id is not None)
    return listing(("billable_members", *shape), lambda: _billable_rows(*shape), values)


_OWNERS = prepared(
    select(_M.user_id)
    .join(User.__table__, _U.id == _M.user_id)
    .where(
        _M.source_type == SourceType.NAMESPACE.value,
        _M.source_id == bindparam("group_id"),
        _M.access_level >= int(AccessLevel.OWNER),
        _U.user_type != int(UserType.PROJECT_BOT),
        live(bindparam("today", type_=Date())),
    )
    .limit(2)
)


def last_owner_id(ctx: Ctx, group: NamespaceLike) -> int | None:
    """The user who is the one Owner of the top-level ``group`` (GitLab's ``is_last_owner``), if
    it has exactly one."""
    owners = [row[0] for row in ctx.reads.rows(_OWNERS, {"group_id": group.id, "today": ctx.today()})]
    return int(owners[0]) if len(owners) == 1 else None


# -- a billable member's memberships --------------------------------------------------------------


class BillableMembership(NamedTuple):
    """One direct membership in the hierarchy, with the names and paths of its group or project."""

    id: int
    source_type: str
    source_id: int
    created_at: dt.datetime
    expires_at: dt.date | None
    access_level: int
    full_name: str
    full_path: str


def _membership_rows() -> tuple[Select[Any], None]:
    own = Namespace.__table__.alias("own_group")
    home = Namespace.__table__.alias("project_namespace")
    is_project = _M.source_type == SourceType.PROJECT.value
    full_name = case(
        (is_project, home.c.full_name + literal(" / ") + _P.name),
        else_=own.c.full_name,
    )
    full_path = case((is_project, _P.full_path), else_=own.c.full_path)
    rows = (
        select(
            _M.id,
            _M.source_type,
            _M.source_id,
            _M.created_at,
            _M.expires_at,
            _M.access_level,
            full_name.label("full_name"),
            full_path.label("full_path"),
        )
        .select_from(Member.__table__)
        .outerjoin(Project.__table__, is_project & (_P.id == _M.source_id))
        .outerjoin(home, home.c.id == _P.namespace_id)
        .outerjoin(own, (_M.source_type == SourceType.NAMESPACE.value) & (own.c.id == _M.source_id))
        .where(
            _M.user_id == bindparam("user_id", type_=Integer()),
            _in_hierarchy(),
            live(bindparam("today", type_=Date())),
        )
        .order_by(_M.id)
    )
    return rows, None


def billable_memberships(ctx: Ctx, group: NamespaceLike, user_id: int) -> Listing:
    """The live direct memberships of a billable member in ``group``'s hierarchy (groups and
    projects; inherited access is not listed), by membership id, as ``BillableMembership`` rows.

    Raises Invalid (400) as ``billable_members_listing``, NotFound("User") when no user has this
    id or when the user takes no seat in this group."""
    check_billing_owner(ctx, group)
    found = billable_members_listing(ctx, group, user_id=user_id)
    if ctx.reads.first(found.page, {**found.values, "limit": 1, "offset": 0}) is None:
        raise NotFound("User")
    values = {**_hierarchy_values(group), "today": ctx.today(), "user_id": user_id}
    return listing(("billable_memberships",), _membership_rows, values)


# -- removing a billable member -----------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    member: Member
    source: Project | Namespace


def remove_billable_member(ctx: Ctx, group: Namespace, user_id: int) -> int:
    """Remove every direct membership ``user_id`` holds in ``group``'s hierarchy (its own, its
    subgroups' and their projects'), with a ``member.removed`` audit event each, in the caller's
    one transaction; returns how many were removed.

    All or nothing: the removal is refused (Invalid, GitLab's 400) when ``group`` is a subgroup,
    when the actor is not one of its Owners (nor an admin), when the user holds no membership
    there, when the user is a project bot, or when it would leave any group of the hierarchy
    without an Owner (GitLab's last-Owner rule, counting Owners of the groups above)."""
    if group.parent_id is not None:
        raise Invalid(NOT_TOP_LEVEL)
    if effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) < AccessLevel.OWNER:
        raise Invalid(UNAUTHORIZED)
    # Owners of the hierarchy change: the top-level group's row in "change" mode queues this with
    # every other change of Owners below it (they lock the groups above them too), before reading.
    lock_group(ctx, group)
    values = {**_hierarchy_values(group), "user_id": user_id}
    members = ctx.db.scalars(
        select(Member).where(Member.user_id == bindparam("user_id"), _in_hierarchy()).order_by(Member.id),
        values,
    ).all()
    if not members:
        raise Invalid(NO_MEMBER)
    user = ctx.db.get(User, user_id)
    if user is None:
        raise Invalid(NO_MEMBER)
    if user.user_type == UserType.PROJECT_BOT:
        raise Invalid(BOT)
    rows = _with_sources(ctx, members)
    for row in rows:
        source = row.source
        if (
            isinstance(source, Namespace)
            and row.member.access_level >= AccessLevel.OWNER
            and not has_other_owner(ctx, source, except_user_id=user_id)
        ):
            raise Invalid(LAST_OWNER)
    for row in rows:
        entity = project_entity(row.source) if isinstance(row.source, Project) else group_entity(row.source)
        record(
            ctx,
            Event.MEMBER_REMOVED,
            entity,
            target=Target("User", user.id, user.username),
            access_level=row.member.access_level,
            expires_at=None if row.member.expires_at is None else row.member.expires_at.isoformat(),
            billable_member_removal=True,
        )
        ctx.db.delete(row.member)
    ctx.db.flush()
    return len(rows)


def _with_sources(ctx: Ctx, members: list[Member] | Any) -> list[_Row]:
    """Each membership with its group or project (two queries whatever their number)."""
    group_ids = [m.source_id for m in members if m.source_type == SourceType.NAMESPACE.value]
    project_ids = [m.source_id for m in members if m.source_type == SourceType.PROJECT.value]
    groups = {g.id: g for g in ctx.db.scalars(select(Namespace).where(Namespace.id.in_(group_ids)))}
    projects = {p.id: p for p in ctx.db.scalars(select(Project).where(Project.id.in_(project_ids)))}
    rows: list[_Row] = []
    for member in members:
        source: Project | Namespace | None = (
            groups.get(member.source_id)
            if member.source_type == SourceType.NAMESPACE.value
            else projects.get(member.source_id)
        )
        if source is not None:
            rows.append(_Row(member, source))
    return rows
