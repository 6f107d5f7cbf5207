"""Contribution events as a caller may see them (GitLab's EventsFinder), and the projects a user
contributed to (ContributedProjectsFinder), chosen and counted in SQL.

An event shows only in a project the caller may read; a push only where they may download code
(Reporter+ on a private project); an issue's event only if they may read the issue (confidential
ones: its author and Planner+), a comment's only if they may read it and its issue; events about
issues or notes gone are never shown. Unlike GitLab, which drops invisible rows after paging,
every page is full and ``X-Total`` counts what the caller sees.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Date, Select, and_, bindparam, false, not_, or_, select, true

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import visible_levels
from keycrew.access.queries import projects_reached_by
from keycrew.activity.kinds import (
    ACTIONS,
    CONTRIBUTION_TARGET_ACTIONS,
    CONTRIBUTION_TARGETS,
    ISSUE,
    NOTE,
    TARGET_TYPES,
    Action,
)
from keycrew.activity.models import ActivityEvent, PushEventPayload
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.db.listings import Listing, listing
from keycrew.db.reads import Reader, prepared
from keycrew.errors import BadParameter, Forbidden, NotFound, Unauthenticated
from keycrew.identity.models import User
from keycrew.identity.views import USER_COLUMNS
from keycrew.namespaces.models import Project
from keycrew.namespaces.views import PROJECT_COLUMNS, PROJECTS_WITH_NAMESPACE, ProjectLike
from keycrew.records.models import Issue, Note

_E = ActivityEvent.__table__.c
_U = User.__table__.c
_PP = PushEventPayload.__table__.c
_P = Project.__table__.c
_I = Issue.__table__.alias("event_issue")
_N = Note.__table__.alias("event_note")
_NI = Issue.__table__.alias("event_note_issue")

EVENT_SORTS = ("asc", "desc")


@dataclass(frozen=True)
class EventFilter:
    """GitLab's event filters: ``action`` and ``target_type`` as the API names them (ACTIONS,
    TARGET_TYPES keys), exclusive day bounds, and the order by id."""

    action: str | None = None
    target_type: str | None = None
    before: dt.date | None = None
    after: dt.date | None = None
    sort: str = "desc"


class EventRow(NamedTuple):
    """An event with what its entity shows: its target's live iid and title, its note and its
    push payload (None where it has none)."""

    id: int
    project_id: int
    action: int
    target_type: str | None
    target_id: int | None
    author_id: int
    stored_title: str | None
    created_at: dt.datetime
    issue_iid: int | None
    issue_title: str | None
    note_id: int | None
    note_body: str | None
    note_author_id: int | None
    note_created_at: dt.datetime | None
    note_updated_at: dt.datetime | None
    note_system: bool | None
    note_confidential: bool | None
    note_issue_id: int | None
    note_issue_iid: int | None
    note_issue_title: str | None
    push_event_id: int | None
    commit_count: int | None
    push_action: int | None
    ref_type: int | None
    commit_from: str | None
    commit_to: str | None
    ref: str | None
    commit_title: str | None
    ref_count: int | None

    @property
    def target_iid(self) -> int | None:
        return self.issue_iid if self.target_type == ISSUE else self.target_id

    @property
    def target_title(self) -> str | None:
        if self.target_type == ISSUE:
            return self.issue_title
        if self.target_type == NOTE:
            return self.note_issue_title
        return self.stored_title


_COLUMNS = [
    _E.id,
    _E.project_id,
    _E.action,
    _E.target_type,
    _E.target_id,
    _E.author_id,
    _E.target_title,
    _E.created_at,
    _I.c.iid,
    _I.c.title,
    _N.c.id,
    _N.c.body,
    _N.c.author_id,
    _N.c.created_at,
    _N.c.updated_at,
    _N.c.system,
    _N.c.confidential,
    _NI.c.id,
    _NI.c.iid,
    _NI.c.title,
    _PP.event_id,
    _PP.commit_count,
    _PP.action,
    _PP.ref_type,
    _PP.commit_from,
    _PP.commit_to,
    _PP.ref,
    _PP.commit_title,
    _PP.ref_count,
]

_FROM = (
    ActivityEvent.__table__.join(Project.__table__, _P.id == _E.project_id)
    .outerjoin(_I, and_(_E.target_type == ISSUE, _I.c.id == _E.target_id))
    .outerjoin(_N, and_(_E.target_type == NOTE, _N.c.id == _E.target_id))
    .outerjoin(_NI, _NI.c.id == _N.c.issue_id)
    .outerjoin(PushEventPayload.__table__, _PP.event_id == _E.id)
)


@dataclass(frozen=True)
class _Shape:
    source: str  # "author", "project", "authorized" (scope=all) or "none"
    viewer: str  # "admin", "member" or "anonymous"
    visible_levels: tuple[int, ...]
    action: bool
    target_type: bool
    before: bool
    after: bool
    sort: str


def _viewer(ctx: Ctx) -> str:
    if ctx.actor.is_admin:
        return "admin"
    return "anonymous" if ctx.actor.facts is None else "member"


def _reached(shape_viewer: str, name: str, level: int) -> ColumnElement[bool]:
    """Projects where the viewer's level is ``level``+ (a condition on the projects table)."""
    if shape_viewer == "anonymous":
        return false()
    return projects_reached_by(name, bindparam("viewer_id"), bindparam("today", type_=Date()), level)


def _readable(shape_viewer: str, levels: tuple[int, ...], name: str, level: int) -> ColumnElement[bool]:
    """Projects the viewer sees by their visibility, or with ``level``+ on them."""
    by_visibility: ColumnElement[bool] = _P.visibility_level.in_(levels) if levels else false()
    if shape_viewer == "anonymous":
        return by_visibility
    return or_(by_visibility, _reached(shape_viewer, name, level))


def _visible(shape: _Shape) -> ColumnElement[bool]:
    """Which events the viewer may see (Event#visible_to_user?), and only those whose target is
    still there."""
    issue_there = _I.c.id.is_not(None)
    note_there = and_(_N.c.id.is_not(None), _NI.c.id.is_not(None))
    is_push = _E.action == int(Action.PUSHED)
    is_issue = and_(not_(is_push), _E.target_type == ISSUE)
    is_note = and_(not_(is_push), _E.target_type == NOTE)
    other = and_(not_(is_push), or_(_E.target_type.is_(None), _E.target_type.not_in((ISSUE, NOTE))))
    if shape.viewer == "admin":
        return or_(is_push, and_(is_issue, issue_there), and_(is_note, note_there), other)
    viewer_id: Any = bindparam("viewer_id") if shape.viewer == "member" else None
    triage = _reached(shape.viewer, "event_triage", AccessLevel.PLANNER)
    levels = shape.visible_levels

    def issue_readable(issue: Any) -> ColumnElement[bool]:
        open_to = [issue.c.confidential.is_(false()), triage]
        if viewer_id is not None:
            open_to.append(issue.c.author_id == viewer_id)
        return or_(*open_to)

    return and_(
        _readable(shape.viewer, levels, "event_read", AccessLevel.GUEST),
        or_(
            and_(is_push, _readable(shape.viewer, levels, "event_code", AccessLevel.REPORTER)),
            and_(is_issue, issue_there, issue_readable(_I)),
            and_(
                is_note,
                note_there,
                or_(_N.c.confidential.is_(false()), triage),
                issue_readable(_NI),
            ),
            other,
        ),
    )


def _build(shape: _Shape) -> tuple[Select[Any], Select[Any] | None]:
    query = select(*_COLUMNS).select_from(_FROM)
    if shape.source == "author":
        query = query.where(_E.author_id == bindparam("author_id"))
    elif shape.source == "project":
        query = query.where(_E.project_id == bindparam("project_id"))
    elif shape.source == "authorized":
        query = query.where(_reached("member", "event_authorized", AccessLevel.GUEST))
    else:
        query = query.where(false())
    query = query.where(_visible(shape))
    if shape.action:
        query = query.where(_E.action == bindparam("action"))
    if shape.target_type:
        query = query.where(_E.target_type == bindparam("target_type"))
    if shape.before:
        query = query.where(_E.created_at < bindparam("before", type_=_E.created_at.type))
    if shape.after:
        query = query.where(_E.created_at >= bindparam("after", type_=_E.created_at.type))
    return query.order_by(_E.id.asc() if shape.sort == "asc" else _E.id.desc()), None


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _events(ctx: Ctx, source: str, flt: EventFilter, values: dict[str, Any]) -> Listing:
    viewer = _viewer(ctx)
    if viewer != "anonymous":
        values["viewer_id"] = ctx.actor.user_id
    values["today"] = ctx.today()
    if flt.action is not None:
        values["action"] = int(Action[flt.action.upper()])
    if flt.target_type is not None:
        values["target_type"] = TARGET_TYPES[flt.target_type]
    if flt.before is not None:
        values["before"] = _midnight(flt.before)
    if flt.after is not None:
        # GitLab's "after the end of that day".
        after = flt.after + dt.timedelta(days=1) if flt.after < dt.date.max else None
        values["after"] = dt.datetime.max.replace(tzinfo=dt.UTC) if after is None else _midnight(after)
    shape = _Shape(
        source=source,
        viewer=viewer,
        visible_levels=() if viewer == "admin" else tuple(visible_levels(ctx.actor)),
        action=flt.action is not None,
        target_type=flt.target_type is not None,
        before=flt.before is not None,
        after=flt.after is not None,
        sort=flt.sort,
    )
    return listing(("events", shape), lambda: _build(shape), values)


def check_filter(flt: EventFilter) -> None:
    """Refuse values outside GitLab's lists, as its API does (BadParameter)."""
    for name, value, allowed in (
        ("action", flt.action, ACTIONS),
        ("target_type", flt.target_type, tuple(TARGET_TYPES)),
        ("sort", flt.sort, EVENT_SORTS),
    ):
        if value is not None and value not in allowed:
            raise BadParameter(f"{name} does not have a valid value")


def own_events(ctx: Ctx, flt: EventFilter, *, scope_all: bool = False) -> Listing:
    """The actor's own events (GET /events), or with ``scope_all`` every visible event in the
    projects they are a member of. Raises Unauthenticated for anonymous callers."""
    check_filter(flt)
    if ctx.actor.user_id is None:
        raise Unauthenticated()
    if scope_all:
        return _events(ctx, "authorized", flt, {})
    return _events(ctx, "author", flt, {"author_id": ctx.actor.user_id})


_USER_BY_ID = select(User.id, User.private_profile).where(User.id == bindparam("id"))
_USER_BY_USERNAME = select(User.id, User.private_profile).where(User.username_lower == bindparam("username"))


def _profile(ctx: Ctx, ref: str) -> tuple[int, bool]:
    """The user named by ``ref`` (an id or a username, any case) and whether the caller may read
    their profile (a private one: only themself and admins). Raises NotFound("User")."""
    if ref.isascii() and ref.isdigit():
        user_id = int(ref) if len(ref) <= 20 else 0
        row = ctx.reads.first(_USER_BY_ID, {"id": user_id if user_id <= MAX_ID else 0})
    else:
        row = ctx.reads.first(_USER_BY_USERNAME, {"username": ref.lower()}) if len(ref) <= 255 else None
    if row is None:
        raise NotFound("User")
    user_id, private = int(row[0]), bool(row[1])
    readable = not private or ctx.actor.is_admin or ctx.actor.user_id == user_id
    return user_id, readable


def user_events(ctx: Ctx, user_ref: str, flt: EventFilter) -> Listing:
    """The events of the user named by ``user_ref`` the caller may see (GET /users/:id/events):
    none when their profile is private to the caller. Raises NotFound("User")."""
    check_filter(flt)
    user_id, readable = _profile(ctx, user_ref)
    if not readable:
        return _events(ctx, "none", flt, {})
    return _events(ctx, "author", flt, {"author_id": user_id})


def project_events(ctx: Ctx, project: ProjectLike, flt: EventFilter) -> Listing:
    """The events of ``project`` (already found readable by the caller) the caller may see."""
    check_filter(flt)
    return _events(ctx, "project", flt, {"project_id": project.id})


class EventProject(NamedTuple):
    """What an event listing shows of the project an event happened in."""

    id: int
    name: str
    full_path: str


_PROJECTS_BY_IDS = prepared(
    select(_P.id, _P.name, _P.full_path).where(_P.id.in_(bindparam("ids", expanding=True)))
)


def event_projects(reads: Reader, ids: set[int]) -> dict[int, EventProject]:
    """The projects of a page of events (which the listing already found visible), by id: one
    statement (none for no ids)."""
    if not ids:
        return {}
    return {row[0]: EventProject(*row) for row in reads.rows(_PROJECTS_BY_IDS, {"ids": sorted(ids)})}


# -- contributed projects ---------------------------------------------------------------------------

_CONTRIBUTIONS = or_(
    _E.action == int(Action.PUSHED),
    and_(
        _E.target_type.in_(CONTRIBUTION_TARGETS),
        _E.action.in_([int(a) for a in CONTRIBUTION_TARGET_ACTIONS]),
    ),
    and_(_E.target_type == NOTE, _E.action == int(Action.COMMENTED)),
)
_ORDERS: dict[str, Any] = {
    "id": _P.id,
    "name": _P.name,
    "path": _P.path,
    "created_at": _P.created_at,
    "updated_at": _P.updated_at,
    "last_activity_at": _P.last_activity_at,
    "similarity": _P.name,
}


@dataclass(frozen=True)
class _ProjectsShape:
    viewer: str
    visible_levels: tuple[int, ...]
    readable_profile: bool
    order_by: str
    sort: str


def _build_contributed(shape: _ProjectsShape) -> tuple[Select[Any], Select[Any] | None]:
    contributed = select(_E.project_id).where(_E.author_id == bindparam("author_id"), _CONTRIBUTIONS)
    query = select(*PROJECT_COLUMNS).select_from(PROJECTS_WITH_NAMESPACE).where(_P.id.in_(contributed))
    if not shape.readable_profile:
        query = query.where(false())
    if shape.viewer != "admin":
        query = query.where(
            _readable(shape.viewer, shape.visible_levels, "contributed_read", AccessLevel.GUEST)
        )
    else:
        query = query.where(true())
    column = _ORDERS.get(shape.order_by, _P.created_at)
    desc = shape.sort != "asc"
    return query.order_by(
        column.desc() if desc else column.asc(), _P.id.desc() if desc else _P.id.asc()
    ), None


def contributed_projects(
    ctx: Ctx, user_ref: str, *, order_by: str = "created_at", sort: str = "desc"
) -> Listing:
    """The projects the user named by ``user_ref`` contributed to (pushes, issues opened or
    closed, comments) that the caller may see, as rows of ``PROJECT_COLUMNS``. Raises
    NotFound("User")."""
    user_id, readable = _profile(ctx, user_ref)
    viewer = _viewer(ctx)
    values: dict[str, Any] = {"author_id": user_id, "today": ctx.today()}
    if viewer == "member":
        values["viewer_id"] = ctx.actor.user_id
    shape = _ProjectsShape(
        viewer=viewer,
        visible_levels=() if viewer == "admin" else tuple(visible_levels(ctx.actor)),
        readable_profile=readable,
        order_by=order_by,
        sort=sort,
    )
    return listing(("contributed_projects", shape), lambda: _build_contributed(shape), values)


# -- user activities --------------------------------------------------------------------------------


def months_before(day: dt.date, months: int) -> dt.date:
    """``day`` ``months`` months earlier, on the last day of that month if it is shorter."""
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    for last in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise ValueError(day)  # pragma: no cover


ACTIVITY_DEFAULT_MONTHS = 6
_ACTIVE_SINCE = (
    select(*USER_COLUMNS)
    .where(_U.last_activity_on >= bindparam("since", type_=Date()))
    .order_by(_U.last_activity_on.asc(), _U.id.asc())
)


def user_activities(ctx: Ctx, since: dt.date | None) -> Listing:
    """The users active on or after ``since`` (default six months ago), least recently active
    first: GitLab's GET /user/activities, for admins only. Raises Forbidden."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    if since is None:
        since = months_before(ctx.today(), ACTIVITY_DEFAULT_MONTHS)
    return listing(("user_activities",), lambda: (_ACTIVE_SINCE, None), {"since": since})
