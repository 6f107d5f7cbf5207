"""Memberships of groups and projects: list, add, change, remove, with GitLab's rules.

Who administers members: a project's Maintainers and Owners, a group's Owners, and admins. Only a
project Owner (or admin) adds, promotes to, changes or removes an Owner of a project; nobody but an
Owner or admin grants a level above their own; a group keeps at least one Owner (counting Owners
inherited from ancestor groups, not counting bots). An expired membership is treated as gone: it
gives no access, is not listed, and adding the user again replaces it.

Project bots (user_type project_bot) belong to the one project or group their access token was
made for: the member APIs neither add them anywhere nor change or remove their membership; the
resource-token use cases create that membership with ``create_membership``.

Service accounts stay where they were made: a group's (made only in top-level groups) joins that
group, its subgroups and their projects, never a source outside that hierarchy; a project's joins
only that project. Instance service accounts join anywhere.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Date,
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
from sqlalchemy.orm import Session

from keycrew.access import queries
from keycrew.access.groups import lock_group
from keycrew.access.levels import MEMBER_LEVELS, AccessLevel
from keycrew.access.links import GroupGroupLink, ProjectGroupLink
from keycrew.access.models import Member
from keycrew.access.policy import (
    capped_level,
    invited_groups,
    link_live,
    live,
    namespace_chain,
)
from keycrew.access.projects import lock_project
from keycrew.access.resources import Resource
from keycrew.activity.kinds import Action
from keycrew.activity.service import record_event
from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Ctx
from keycrew.db.reads import Query, prepared
from keycrew.db.text import contains_pattern, lower_like
from keycrew.errors import Conflict, Forbidden, Invalid, KeycrewError, NotFound
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.identity.views import BRIEF_COLUMNS, UserBrief
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project

LEVEL_TOO_HIGH = "the member access level can't be higher than the current user's one"
BOT_ELSEWHERE = "project bots cannot be added to other groups / projects"
INTERNAL_USER = "is an internal user and cannot be added as a member"
BLOCKED_USER = "is blocked and cannot be added as a member"
PAST_EXPIRY = "cannot be a date in the past"
NOT_A_LEVEL = "is not included in the list"
SA_OUTSIDE_GROUP = "is a group service account and cannot be added outside its top-level group"
SA_OUTSIDE_PROJECT = "is a project service account and cannot be added outside its project"


@dataclass(frozen=True)
class Membership:
    """A membership row with its user, and for inherited listings the source it comes from."""

    member: Member
    user: User
    source_type: str
    source_id: int


# -- permission helpers -------------------------------------------------------------------------


def actor_level(ctx: Ctx, source: Resource) -> int:
    return source.level_of(ctx)


def can_admin_members(ctx: Ctx, source: Resource) -> bool:
    return actor_level(ctx, source) >= source.admin_level


def _may_manage_owners(ctx: Ctx, source: Resource) -> bool:
    """On projects only Owners (and admins) touch Owner memberships; on groups only Owners administer."""
    return actor_level(ctx, source) >= AccessLevel.OWNER


def _is_personal_holder(source: Resource, user_id: int) -> bool:
    return isinstance(source.obj, Project) and source.obj.namespace.owner_id == user_id


def is_project_bot(user: User) -> bool:
    return user.user_type == UserType.PROJECT_BOT


# -- reading ------------------------------------------------------------------------------------


class MemberView(NamedTuple):
    """A membership row as column values (``keycrew.db.reads``): renders as a ``Member``."""

    id: int
    source_type: str
    source_id: int
    user_id: int
    access_level: int
    expires_at: dt.date | None
    created_by_id: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


class MembershipView(NamedTuple):
    """``Membership`` read as column values, for reads."""

    member: MemberView
    user: UserBrief
    source_type: str
    source_id: int


_M = Member.__table__.c
MEMBER_COLUMNS = [_M[name] for name in MemberView._fields]
_MEMBER_WIDTH = len(MEMBER_COLUMNS)


def membership_view(row: Any) -> MembershipView:
    """A membership with its user from a row of a ``MemberListing`` (its own source)."""
    member = MemberView(*row[:_MEMBER_WIDTH])
    return MembershipView(member, UserBrief(*row[_MEMBER_WIDTH:]), member.source_type, member.source_id)


# The member listings, built once per shape with their values as parameters: the source
# (:own_type, :own_id), the groups its members inherit from (:group_1, :group_2, ... nearest
# first), the day (:today) and the filters (:pattern and :email for a search, :user_ids).
_PATTERN = bindparam("pattern", type_=String())
_GGL = GroupGroupLink.__table__.c
_PGL = ProjectGroupLink.__table__.c


def _bound_filter(query: Any, search: bool, ids: bool) -> Any:
    if search:
        query = query.where(
            or_(
                lower_like(User.username, _PATTERN),
                lower_like(User.name, _PATTERN),
                User.email == bindparam("email"),
            )
        )
    if ids:
        query = query.where(Member.user_id.in_(bindparam("user_ids", expanding=True)))
    return query


def _sources(groups: int) -> list[ColumnElement[bool]]:
    """The membership rows of the source and of the ``groups`` groups above it, nearest first."""
    on = [and_(Member.source_type == bindparam("own_type"), Member.source_id == bindparam("own_id"))]
    on += [
        and_(Member.source_type == SourceType.NAMESPACE.value, Member.source_id == bindparam(f"group_{i}"))
        for i in range(1, groups + 1)
    ]
    return on


def _shared_members(groups: int, *columns: Any) -> Any:
    """``columns`` of the live memberships of the groups the source (:own_type, :own_id) or one of
    the ``groups`` groups above it is shared with, or of the groups above those (their
    inherited members), with the capped level as ``level`` when ``columns`` has more than one."""
    today = bindparam("today", type_=Date())
    own_type = bindparam("own_type", type_=String())
    shared_groups = [
        and_(own_type == SourceType.NAMESPACE.value, _GGL.shared_group_id == bindparam("own_id"))
    ]
    shared_groups += [_GGL.shared_group_id == bindparam(f"group_{i}") for i in range(1, groups + 1)]
    links = union_all(
        select(_GGL.shared_with_group_id.label("group_id"), _GGL.group_access.label("cap")).where(
            or_(*shared_groups), link_live(_GGL.expires_at, today)
        ),
        select(_PGL.group_id.label("group_id"), _PGL.group_access.label("cap")).where(
            own_type == SourceType.PROJECT.value,
            _PGL.project_id == bindparam("own_id"),
            link_live(_PGL.expires_at, today),
        ),
    ).subquery("share_links")
    invited = invited_groups(links, "share_invited")
    if len(columns) > 1:
        columns = (
            *columns[:2],
            capped_level(Member.access_level, invited.c.cap).label("level"),
            *columns[2:],
        )
    return (
        select(*columns)
        .select_from(Member.__table__.join(invited, Member.source_id == invited.c.id))
        .join(User, User.id == Member.user_id)
        .where(
            Member.source_type == SourceType.NAMESPACE.value,
            # Said again as IN, so that the planner starts from the few invited groups and finds
            # their members by index, instead of reading every membership (SQLite did).
            Member.source_id.in_(select(invited.c.id)),
            live(today),
        )
    )


@functools.cache
def _listing(groups: int | None, search: bool, ids: bool, shape: str) -> Any:
    """A listing's statement (direct memberships with ``groups`` None, else inherited from that
    many groups): ``shape`` "orm" (Member and User), "page" (columns for ``membership_view``,
    :limit rows from :offset) or "count" (its rows, up to :count_limit)."""
    live_today = live(bindparam("today", type_=Date()))
    what = (Member, User) if shape == "orm" else (*MEMBER_COLUMNS, *BRIEF_COLUMNS)
    if groups is None:
        direct = select(*((literal(1),) if shape == "count" else what))
        rows = _bound_filter(
            direct.join_from(Member, User, User.id == Member.user_id).where(*_sources(0), live_today),
            search,
            ids,
        )
        if shape != "count":
            rows = rows.order_by(Member.id)
    elif shape == "count":
        users = _bound_filter(
            select(Member.user_id)
            .join(User, User.id == Member.user_id)
            .where(or_(*_sources(groups)), live_today),
            search,
            ids,
        )
        # With the members of the groups the source is shared with (a union counts each user once).
        rows = users.union(_bound_filter(_shared_members(groups, Member.user_id), search, ids))
    elif shape == "orm":
        # One membership per user: the highest level wins, the nearest source on a tie.
        on = _sources(groups)
        nearness = case(*((condition, place) for place, condition in enumerate(on)), else_=len(on))
        best = func.row_number().over(
            partition_by=Member.user_id, order_by=(Member.access_level.desc(), nearness)
        )
        ranked = _bound_filter(
            select(Member.id.label("member_id"), best.label("place"))
            .join(User, User.id == Member.user_id)
            .where(or_(*on), live_today),
            search,
            ids,
        ).subquery()
        rows = (
            select(*what)
            .join_from(Member, ranked, ranked.c.member_id == Member.id)
            .join(User, User.id == Member.user_id)
            .where(ranked.c.place == 1)
            .order_by(User.id)
        )
    else:
        # The page: as "orm", and the members of the groups the source is shared with at their
        # capped level (after the source's own and inherited ones on a tie).
        on = _sources(groups)
        nearness = case(*((condition, place) for place, condition in enumerate(on)), else_=len(on))
        candidates = union_all(
            _bound_filter(
                select(
                    Member.id.label("member_id"),
                    Member.user_id.label("user_id"),
                    Member.access_level.label("level"),
                    nearness.label("nearness"),
                )
                .join(User, User.id == Member.user_id)
                .where(or_(*on), live_today),
                search,
                ids,
            ),
            _bound_filter(
                _shared_members(groups, Member.id, Member.user_id, literal(len(on) + 1)), search, ids
            ),
        ).subquery("candidates")
        best = func.row_number().over(
            partition_by=candidates.c.user_id,
            order_by=(candidates.c.level.desc(), candidates.c.nearness),
        )
        ranked = select(candidates.c.member_id, candidates.c.level, best.label("place")).subquery("ranked")
        columns = [ranked.c.level if column.key == "access_level" else column for column in MEMBER_COLUMNS]
        rows = (
            select(*columns, *BRIEF_COLUMNS)
            .join_from(Member, ranked, ranked.c.member_id == Member.id)
            .join(User, User.id == Member.user_id)
            .where(ranked.c.place == 1)
            .order_by(User.id)
        )
    if shape == "count":
        return prepared(select(func.count()).select_from(rows.limit(bindparam("count_limit")).subquery()))
    if shape == "page":
        return prepared(rows.limit(bindparam("limit")).offset(bindparam("offset")))
    return rows


@dataclass(frozen=True)
class MemberListing:
    """A member listing's statements and the values of their parameters: ``page`` (with :limit
    and :offset) gives rows for ``membership_view``, ``count`` their number up to :count_limit."""

    page: Query
    count: Query
    values: dict[str, Any]


def _values(
    ctx: Ctx, source: Resource, groups: list[int] | None, search: str | None, user_ids: list[int] | None
) -> dict[str, Any]:
    values: dict[str, Any] = {"own_type": source.source_type.value, "own_id": source.id, "today": ctx.today()}
    for place, group_id in enumerate(groups or (), start=1):
        values[f"group_{place}"] = group_id
    if search:
        values["pattern"] = contains_pattern(search)
        values["email"] = search.lower()
    if user_ids is not None:
        values["user_ids"] = user_ids
    return values


def _shape(
    ctx: Ctx, source: Resource, inherited: bool, search: str | None, user_ids: list[int] | None
) -> tuple[tuple[int | None, bool, bool], dict[str, Any]]:
    groups = source.inherited_ids(ctx.reads) if inherited else None
    shape = (None if groups is None else len(groups), bool(search), user_ids is not None)
    return shape, _values(ctx, source, groups, search, user_ids)


def member_listing(
    ctx: Ctx,
    source: Resource,
    *,
    inherited: bool = False,
    search: str | None = None,
    user_ids: list[int] | None = None,
) -> MemberListing:
    """The live direct memberships of ``source``, oldest first; with ``inherited``, direct and
    inherited ones, one per user (the highest level, the nearest source on a tie), by user id.
    Chosen in SQL, so that a page of a large group reads one page."""
    shape, values = _shape(ctx, source, inherited, search, user_ids)
    return MemberListing(_listing(*shape, "page"), _listing(*shape, "count"), values)


def all_members(
    ctx: Ctx, source: Resource, *, search: str | None = None, user_ids: list[int] | None = None
) -> list[Membership]:
    """Direct and inherited memberships as ``member_listing(inherited=True)`` lists them."""
    shape, values = _shape(ctx, source, True, search, user_ids)
    rows = ctx.db.execute(_listing(*shape, "orm"), values).all()
    return [Membership(member, user, member.source_type, member.source_id) for member, user in rows]


def get_member(ctx: Ctx, source: Resource, user_id: int) -> Membership:
    """The live direct membership of ``user_id``; NotFound("Member") otherwise."""
    row = ctx.db.execute(
        _listing(None, False, True, "orm"),
        _values(ctx, source, None, None, [user_id]),
        execution_options={"populate_existing": True},
    ).first()
    if row is None:
        raise NotFound("Member")
    return Membership(row[0], row[1], source.source_type.value, source.id)


def get_any_member(ctx: Ctx, source: Resource, user_id: int) -> Membership:
    found = all_members(ctx, source, user_ids=[user_id])
    if not found:
        raise NotFound("Member")
    return found[0]


def _read_one(ctx: Ctx, source: Resource, user_id: int, *, inherited: bool) -> MembershipView:
    listing = member_listing(ctx, source, inherited=inherited, user_ids=[user_id])
    row = ctx.reads.first(listing.page, {**listing.values, "limit": 1, "offset": 0})
    if row is None:
        raise NotFound("Member")
    return membership_view(row)


def read_member(ctx: Ctx, source: Resource, user_id: int) -> MembershipView:
    """``get_member`` for a read, as column values."""
    return _read_one(ctx, source, user_id, inherited=False)


def read_any_member(ctx: Ctx, source: Resource, user_id: int) -> MembershipView:
    """``get_any_member`` for a read, as column values."""
    return _read_one(ctx, source, user_id, inherited=True)


def _row(db: Session, source: Resource, user_id: int) -> Member | None:
    """The membership row of ``user_id``, live or expired."""
    return db.scalars(
        select(Member).where(
            Member.source_type == source.source_type.value,
            Member.source_id == source.id,
            Member.user_id == user_id,
        )
    ).first()


# -- validation ---------------------------------------------------------------------------------


def _inherited_level(ctx: Ctx, source: Resource, user_id: int) -> tuple[int, Namespace | None]:
    groups = source.inherited_from()
    if not groups:
        return 0, None
    by_id = {g.id: g for g in groups}
    row = ctx.db.execute(
        select(Member.access_level, Member.source_id)
        .where(
            Member.source_type == SourceType.NAMESPACE.value,
            Member.source_id.in_(list(by_id)),
            Member.user_id == user_id,
            live(ctx.today()),
        )
        .order_by(Member.access_level.desc())
        .limit(1)
    ).first()
    if row is None:
        return 0, None
    return int(row[0]), by_id[int(row[1])]


def _outside_home(source: Resource, user: User) -> str | None:
    """Why a service account may not join ``source`` (None when it may): a group's stays within
    the hierarchy of the group that made it, a project's within its project."""
    if user.user_type != UserType.SERVICE_ACCOUNT:
        return None
    if user.provisioned_by_project_id is not None:
        home = source.is_project and source.id == user.provisioned_by_project_id
        return None if home else SA_OUTSIDE_PROJECT
    if user.provisioned_by_group_id is not None:
        groups = source.inherited_from()  # a project's groups, or a group's ancestors
        if source.group is not None:
            groups = [source.group, *groups]
        home = any(group.id == user.provisioned_by_group_id for group in groups)
        return None if home else SA_OUTSIDE_GROUP
    return None


def _validate(
    ctx: Ctx,
    source: Resource,
    user: User,
    level: int,
    expires_at: dt.date | None,
    *,
    new: bool,
) -> None:
    """GitLab's member validations, all reported at once (400 with a message per field)."""
    errors: dict[str, list[str]] = {}
    if new:
        if is_project_bot(user):
            errors.setdefault("user_id", []).append(BOT_ELSEWHERE)
        elif user.is_internal:
            errors.setdefault("user", []).append(INTERNAL_USER)
        elif user.is_blocked:
            errors.setdefault("user", []).append(BLOCKED_USER)
        elif (outside := _outside_home(source, user)) is not None:
            errors.setdefault("user", []).append(outside)
    if level not in MEMBER_LEVELS:
        errors.setdefault("access_level", []).append(NOT_A_LEVEL)
    else:
        own = actor_level(ctx, source)
        if own < AccessLevel.OWNER and level > own:
            errors.setdefault("base", []).append(LEVEL_TOO_HIGH)
        inherited, group = _inherited_level(ctx, source, user.id)
        if group is not None and level < inherited:
            errors.setdefault("access_level", []).append(
                f"should be greater than or equal to {AccessLevel(inherited).label} "
                f"inherited membership from group {group.name}"
            )
    if expires_at is not None and expires_at < ctx.today():
        errors.setdefault("expires_at", []).append(PAST_EXPIRY)
    if errors:
        raise Invalid("", errors)


def has_other_owner(
    ctx: Ctx, group: Namespace, *, except_member_id: int | None = None, except_user_id: int | None = None
) -> bool:
    """Whether ``group`` keeps an Owner, there or in a group above (bots never count), without the
    given membership row or without the given user altogether. GitLab's last-Owner rule."""
    ids = [ns.id for ns in namespace_chain(group)]
    query = (
        select(Member.id)
        .join(User, User.id == Member.user_id)
        .where(
            Member.source_type == SourceType.NAMESPACE.value,
            Member.source_id.in_(ids),
            Member.access_level >= int(AccessLevel.OWNER),
            User.user_type != int(UserType.PROJECT_BOT),
            live(ctx.today()),
        )
    )
    if except_member_id is not None:
        query = query.where(Member.id != except_member_id)
    if except_user_id is not None:
        query = query.where(Member.user_id != except_user_id)
    return ctx.db.scalar(query.limit(1)) is not None


def lock_source(ctx: Ctx, source: Resource) -> None:
    """Serialise membership changes of ``source``: lock the project row, or the group's row and
    those of the groups above it (whose Owners count too), so that two Owners removing or
    demoting each other at once queue up and the second sees the first's change (GitLab's
    last-Owner refusal, not a group without Owners). Raises NotFound when ``source`` was deleted
    meanwhile. PostgreSQL only needs it; SQLite's writers already run one at a time."""
    if isinstance(source.obj, Project):
        lock_project(ctx, source.obj)
    else:
        assert isinstance(source.obj, Namespace)
        lock_group(ctx, source.obj)


def _is_last_owner(ctx: Ctx, source: Resource, member: Member) -> bool:
    """Whether removing or demoting ``member`` would leave a group without any Owner."""
    if source.group is None or member.access_level != AccessLevel.OWNER:
        return False
    return not has_other_owner(ctx, source.group, except_member_id=member.id)


# -- changing -----------------------------------------------------------------------------------


def create_membership(
    ctx: Ctx,
    source: Resource,
    user: User,
    level: int,
    expires_at: dt.date | None = None,
    *,
    replace_expired: bool = True,
) -> Member:
    """Write a membership and its audit event, with no permission or validation check.

    For use cases that have made their own checks (the member API below, resource-token bots).
    An expired row for the same user is replaced.
    """
    now = ctx.now()
    existing = _row(ctx.db, source, user.id) if replace_expired else None
    if existing is not None:
        ctx.db.delete(existing)
        ctx.db.flush()
    member = Member(
        source_type=source.source_type.value,
        source_id=source.id,
        user_id=user.id,
        access_level=int(level),
        expires_at=expires_at,
        created_by_id=ctx.actor.user_id,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(member)
    ctx.db.flush()
    record(
        ctx,
        Event.MEMBER_ADDED,
        source.entity,
        target=Target("User", user.id, user.username),
        access_level=int(level),
        expires_at=None if expires_at is None else expires_at.isoformat(),
    )
    note_project_joined(ctx, source, user.id)
    return member


def note_project_joined(ctx: Ctx, source: Resource, user_id: int) -> None:
    """The "joined" contribution event of a new project member, by the member (GitLab writes none
    for groups, nor for the holder of the project's personal namespace)."""
    if source.is_project and not _is_personal_holder(source, user_id):
        record_event(ctx, Action.JOINED, source.id, author_id=user_id)


def _check_owner_rule(ctx: Ctx, source: Resource, *levels: int) -> None:
    if source.is_project and AccessLevel.OWNER in levels and not _may_manage_owners(ctx, source):
        raise Forbidden()


def add_member(
    ctx: Ctx, source: Resource, user: User, *, access_level: int, expires_at: dt.date | None = None
) -> Membership:
    """Add ``user`` to ``source``. Raises Forbidden, Conflict ("Member already exists"), Invalid."""
    if not can_admin_members(ctx, source):
        raise Forbidden()
    lock_source(ctx, source)
    if _live_row(ctx, source, user.id) is not None:
        raise Conflict("Member already exists")
    _check_owner_rule(ctx, source, access_level)
    _validate(ctx, source, user, access_level, expires_at, new=True)
    member = create_membership(ctx, source, user, access_level, expires_at)
    return Membership(member, user, source.source_type.value, source.id)


def _live_row(ctx: Ctx, source: Resource, user_id: int) -> Member | None:
    row = _row(ctx.db, source, user_id)
    if row is None or (row.expires_at is not None and row.expires_at <= ctx.today()):
        return None
    return row


@dataclass(frozen=True)
class BulkResult:
    # Each refused user's username and the refusal, which the adapter words (``reason``).
    errors: list[tuple[str, KeycrewError]]

    def as_json(self, reason: Callable[[KeycrewError], str]) -> dict[str, Any]:
        if not self.errors:
            return {"status": "success"}
        return {
            "status": "error",
            "message": ", ".join(f"{name}: {reason(exc)}" for name, exc in self.errors),
        }


def _sentence(messages: dict[str, list[str]]) -> str:
    parts = []
    for field, texts in messages.items():
        for text in texts:
            parts.append(text if field == "base" else f"{field.replace('_', ' ').capitalize()} {text}")
    return " and ".join(parts)


def add_members(
    ctx: Ctx, source: Resource, user_ids: list[int], *, access_level: int, expires_at: dt.date | None = None
) -> BulkResult:
    """Add several users at once, as GitLab's comma-separated ``user_id``.

    Unknown ids are skipped; an existing member has its level and expiry set instead; each user's
    refusal is reported as ``username: reason`` while the others are still added.
    """
    if not can_admin_members(ctx, source):
        raise Forbidden()
    _check_owner_rule(ctx, source, access_level)
    errors: list[tuple[str, KeycrewError]] = []
    users = ctx.db.scalars(select(User).where(User.id.in_(sorted(set(user_ids))))).all()
    for user in users:
        try:
            if _live_row(ctx, source, user.id) is not None:
                update_member(ctx, source, user.id, access_level=access_level, expires_at=expires_at)
            else:
                add_member(ctx, source, user, access_level=access_level, expires_at=expires_at)
        except Invalid as exc:
            errors.append((user.username, Invalid(_sentence(exc.errors) or exc.message)))
        except KeycrewError as exc:
            errors.append((user.username, exc))
    return BulkResult(errors)


_UNSET: Any = object()


def update_member(
    ctx: Ctx,
    source: Resource,
    user_id: int,
    *,
    access_level: int,
    expires_at: dt.date | None = _UNSET,
) -> Membership:
    """Change a member's level and, when given (None clears it), expiry.

    Raises NotFound("Member"), Forbidden (bots, the personal namespace holder, Owner rules, the
    last Owner of a group), Invalid.
    """
    if not can_admin_members(ctx, source):
        raise Forbidden()
    lock_source(ctx, source)
    found = get_member(ctx, source, user_id)
    member, user = found.member, found.user
    if is_project_bot(user) or _is_personal_holder(source, user_id):
        raise Forbidden()
    _check_owner_rule(ctx, source, member.access_level, access_level)
    if access_level != member.access_level and _is_last_owner(ctx, source, member):
        raise Forbidden()
    new_expiry = member.expires_at if expires_at is _UNSET else expires_at
    _validate(
        ctx, source, user, access_level, new_expiry if new_expiry != member.expires_at else None, new=False
    )
    entity = source.entity
    if access_level != member.access_level:
        record(
            ctx,
            Event.MEMBER_ACCESS_LEVEL_CHANGED,
            entity,
            target=Target("User", user.id, user.username),
            access_level={"from": member.access_level, "to": access_level},
        )
        member.access_level = access_level
    if new_expiry != member.expires_at:
        record(
            ctx,
            Event.MEMBER_EXPIRY_CHANGED,
            entity,
            target=Target("User", user.id, user.username),
            expires_at={
                "from": None if member.expires_at is None else member.expires_at.isoformat(),
                "to": None if new_expiry is None else new_expiry.isoformat(),
            },
        )
        member.expires_at = new_expiry
    member.updated_at = ctx.now()
    ctx.db.flush()
    return found


def remove_member(ctx: Ctx, source: Resource, user_id: int, *, skip_subresources: bool = False) -> None:
    """Remove a membership: administrators of the source, or the member leaving on their own.

    Removing a group member also removes their direct memberships in its subgroups and projects
    unless ``skip_subresources`` (GitLab's default), keeping any subgroup's last Owner. Raises
    NotFound("Member"), Forbidden.
    """
    lock_source(ctx, source)
    found = get_member(ctx, source, user_id)
    member, user = found.member, found.user
    leaving = ctx.actor.user_id == user_id
    if is_project_bot(user) or _is_personal_holder(source, user_id):
        raise Forbidden()
    if not (can_admin_members(ctx, source) or leaving):
        raise Forbidden()
    if not leaving:
        _check_owner_rule(ctx, source, member.access_level)
    if _is_last_owner(ctx, source, member):
        raise Forbidden()
    _delete(ctx, source, member, user)
    if not source.is_project and not skip_subresources:
        assert isinstance(source.obj, Namespace)
        _remove_from_subresources(ctx, source.obj, user)


def _delete(ctx: Ctx, source: Resource, member: Member, user: User) -> None:
    record(
        ctx,
        Event.MEMBER_REMOVED,
        source.entity,
        target=Target("User", user.id, user.username),
        access_level=member.access_level,
        expires_at=None if member.expires_at is None else member.expires_at.isoformat(),
    )
    if source.is_project:
        record_event(ctx, Action.LEFT, source.id, author_id=user.id)
    ctx.db.delete(member)
    ctx.db.flush()


def _remove_from_subresources(ctx: Ctx, group: Namespace, user: User) -> None:
    subgroups = ctx.db.scalars(select(Namespace).where(queries.descendants_of(group))).all()
    for sub in sorted(subgroups, key=lambda g: g.full_path.count("/")):
        sub_member = _row(ctx.db, Resource(sub), user.id)
        if sub_member is not None and not _is_last_owner(ctx, Resource(sub), sub_member):
            _delete(ctx, Resource(sub), sub_member, user)
    projects = ctx.db.scalars(
        select(Project).where(
            Project.namespace_id.in_(
                select(Namespace.id).where(queries.namespace_subtree(group)).scalar_subquery()
            )
        )
    ).all()
    for project in projects:
        project_member = _row(ctx.db, Resource(project), user.id)
        if project_member is not None:
            _delete(ctx, Resource(project), project_member, user)


# -- what a members page may offer --------------------------------------------------------------

BOT_MANAGED = "Managed by its access token"
PERSONAL_HOLDER = "Holds the personal namespace"
LAST_OWNER = "The last Owner: add another Owner before changing this role"


@dataclass(frozen=True)
class MemberControls:
    """What the actor may do to one listed membership, by the rules of the use cases below.

    ``roles``: the levels ``update_member`` would accept (empty: the role cannot change);
    ``expiry``: whether the expiry date may change; ``remove``: whether ``remove_member`` would
    remove it; ``note``: why a row has no controls, when the reason is its own (bots, the last
    Owner, the holder of a personal namespace).
    """

    roles: tuple[AccessLevel, ...] = ()
    expiry: bool = False
    remove: bool = False
    note: str | None = None

    @property
    def editable(self) -> bool:
        return bool(self.roles) or self.expiry


def is_direct(source: Resource, found: Membership) -> bool:
    """Whether a listed membership belongs to ``source`` itself (not inherited from a group)."""
    return found.source_type == source.source_type.value and found.source_id == source.id


def grantable_levels(ctx: Ctx, source: Resource) -> list[AccessLevel]:
    """The roles the actor may give on ``source``, lowest first; empty when they cannot add members.

    Nobody but an Owner (or admin) grants a level above their own, and only Owners grant Owner on a
    project (``add_member``). Minimal access is offered on groups only, as GitLab's role lists do.
    """
    if not can_admin_members(ctx, source):
        return []
    own = actor_level(ctx, source)
    levels = sorted(AccessLevel(level) for level in MEMBER_LEVELS)
    return [
        level
        for level in levels
        if (own >= AccessLevel.OWNER or level <= own)
        and not (source.is_project and level == AccessLevel.MINIMAL_ACCESS)
    ]


def member_controls(ctx: Ctx, source: Resource, found: Membership) -> MemberControls:
    """What the actor may do to ``found`` (one row of ``all_members``) on ``source``'s Members page.

    Mirrors ``update_member`` and ``remove_member``: project bots are managed by their token only;
    inherited members are changed where they are direct members; a project's Owners are changed by
    Owners only; a group's last Owner keeps the role and stays; a new role is never below the one
    the member inherits.
    """
    user, member = found.user, found.member
    if is_project_bot(user):
        return MemberControls(note=BOT_MANAGED)
    if not is_direct(source, found):
        return MemberControls()
    if _is_personal_holder(source, user.id):
        return MemberControls(note=PERSONAL_HOLDER)
    if not can_admin_members(ctx, source):
        return MemberControls()
    if source.is_project and member.access_level >= AccessLevel.OWNER and not _may_manage_owners(ctx, source):
        return MemberControls()
    if _is_last_owner(ctx, source, member):
        return MemberControls(expiry=True, note=LAST_OWNER)
    inherited, _group = _inherited_level(ctx, source, user.id)
    roles = tuple(level for level in grantable_levels(ctx, source) if level >= inherited)
    return MemberControls(roles=roles, expiry=True, remove=True)


def find_invitee(ctx: Ctx, source: Resource, ref: str) -> User:
    """The user an "Add members" form names by username (``@`` optional) or e-mail address.

    Only those who administer ``source``'s members may look users up this way (so that nobody
    else learns which addresses have accounts). Raises Forbidden, NotFound("User").
    """
    if not can_admin_members(ctx, source):
        raise Forbidden()
    text = ref.strip()
    if not text:
        raise Invalid.field("username", "can't be blank")
    if "@" in text[1:]:
        condition = User.email == text.lower()
    else:
        condition = User.username_lower == text.removeprefix("@").lower()
    user = ctx.db.scalars(select(User).where(condition)).first()
    if user is None:
        raise NotFound("User")
    return user
