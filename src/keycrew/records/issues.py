"""Use cases on issues: find (permission-checked), list, create, update, delete.

Each state change writes its audit event in the caller's transaction. Issue numbers (iid) come from
the project's ``last_issue_iid`` counter, bumped with one ``UPDATE ... RETURNING`` that row-locks the
project on PostgreSQL (and runs under SQLite's write lock), so concurrent creates never collide.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, case, delete, false, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import find_project
from keycrew.access.policy import effective_project_level
from keycrew.activity.kinds import ISSUE, NOTE, Action
from keycrew.activity.service import EventTarget, delete_events, record_event
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.errors import BadParameter, Forbidden, Invalid, NotFound, Unauthenticated
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Project
from keycrew.records.models import Issue, Note

ISSUE_TYPES = ("issue", "incident")
STATES = ("opened", "closed")
STATE_EVENTS = ("close", "reopen")
ORDER_BY = ("created_at", "updated_at", "title")
TITLE_MAX = 255
# GitLab's limit for descriptions (1 MiB of characters).
DESCRIPTION_MAX = 1_048_576


# GitLab's Planner role may read confidential issues, edit and delete issues; Reporter+ include it.
TRIAGE_LEVEL = AccessLevel.PLANNER


def reference(project: Project, issue: Issue) -> str:
    return f"{project.full_path}#{issue.iid}"


def _entity(project: Project) -> Entity:
    return Entity("Project", project.id, project.full_path)


def _level(ctx: Ctx, project: Project) -> int:
    return effective_project_level(ctx.reads, ctx.actor, project, ctx.today())


def can_triage(ctx: Ctx, project: Project) -> bool:
    """Planner+ members and admins: read confidential issues and internal notes, edit any issue."""
    return ctx.actor.is_admin or _level(ctx, project) >= TRIAGE_LEVEL


def can_read_issue(ctx: Ctx, project: Project, issue: Issue) -> bool:
    """The project is readable (checked by the caller); confidential issues need more."""
    if not issue.confidential:
        return True
    if ctx.actor.user_id is not None and issue.author_id == ctx.actor.user_id:
        return True
    return can_triage(ctx, project)


def can_update_issue(ctx: Ctx, project: Project, issue: Issue) -> bool:
    if ctx.actor.user_id is not None and issue.author_id == ctx.actor.user_id:
        return True
    return can_triage(ctx, project)


def can_delete_issue(ctx: Ctx, project: Project) -> bool:
    """Project Owners and admins, and GitLab's Planner role (which may delete issues)."""
    level = _level(ctx, project)
    return level >= AccessLevel.OWNER or level == AccessLevel.PLANNER


def may_set_iid_and_dates(ctx: Ctx, project: Project) -> bool:
    """GitLab lets admins and project Owners choose ``iid`` and ``created_at`` on create."""
    return _level(ctx, project) >= AccessLevel.OWNER


def _require_user(ctx: Ctx) -> User:
    user = ctx.actor.user
    if user is None:
        raise Unauthenticated()
    return user


def _check_writable(project: Project) -> None:
    if project.archived:
        raise Forbidden()


def check_text(name: str, value: str | None) -> None:
    """PostgreSQL text cannot hold NUL; refuse it on every backend alike (BadParameter)."""
    if value is not None and "\x00" in value:
        raise BadParameter(f"{name} is invalid")


def find_issue(ctx: Ctx, project_ref: str | int, iid: int) -> tuple[Project, Issue]:
    """The project and its issue ``iid`` if the actor may read both.

    Raises NotFound("Project") when the project is not readable, NotFound("Issue") when the issue
    does not exist or is confidential and the actor may not see it.
    """
    project = find_project(ctx, project_ref)
    if not 0 < iid <= MAX_ID:
        raise NotFound("Issue")
    issue = ctx.db.scalars(select(Issue).where(Issue.project_id == project.id, Issue.iid == iid)).first()
    if issue is None or not can_read_issue(ctx, project, issue):
        raise NotFound("Issue")
    return project, issue


@dataclass(frozen=True)
class IssueFilter:
    state: str | None = None
    author_id: int | None = None
    author_username: str | None = None
    search: str | None = None
    search_in: tuple[str, ...] = ("title", "description")
    confidential: bool | None = None
    issue_type: str | None = None
    iids: tuple[int, ...] | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    updated_after: dt.datetime | None = None
    updated_before: dt.datetime | None = None
    created_by_me: bool = False
    # assigned_to_me: issues have no assignees yet, so that scope matches nothing.
    assigned_to_me: bool = False
    order_by: str = "created_at"
    sort: str = "desc"


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def issues_query(ctx: Ctx, project: Project, flt: IssueFilter) -> Select[Any]:
    """The project's issues that the actor may see, filtered and ordered (stable on id)."""
    query = select(Issue).where(Issue.project_id == project.id)
    if not can_triage(ctx, project):
        # Confidential issues only show to their author (and triagers, handled above).
        visible: ColumnElement[bool] = Issue.confidential.is_(false())
        if ctx.actor.user_id is not None:
            visible = or_(visible, Issue.author_id == ctx.actor.user_id)
        query = query.where(visible)
    return _filtered(ctx, query, flt)


def issues_in_projects_query(
    ctx: Ctx, project_ids: Select[Any], triaged_ids: list[int] | None, flt: IssueFilter
) -> Select[Any]:
    """The issues of several projects (``project_ids`` selects those the actor may read) that the
    actor may see, filtered and ordered as ``issues_query``: confidential ones only to their
    author, admins, and in the projects ``triaged_ids`` (where the actor is Planner+)."""
    query = select(Issue).where(Issue.project_id.in_(project_ids))
    if not ctx.actor.is_admin:
        visible: ColumnElement[bool] = Issue.confidential.is_(false())
        if ctx.actor.user_id is not None:
            visible = or_(visible, Issue.author_id == ctx.actor.user_id)
        if triaged_ids:
            visible = or_(visible, Issue.project_id.in_(triaged_ids))
        query = query.where(visible)
    return _filtered(ctx, query, flt)


def _filtered(ctx: Ctx, query: Select[Any], flt: IssueFilter) -> Select[Any]:
    if flt.state in STATES:
        query = query.where(Issue.state == flt.state)
    if flt.author_id is not None:
        query = query.where(Issue.author_id == flt.author_id if 0 < flt.author_id <= MAX_ID else false())
    if flt.author_username is not None:
        check_text("author_username", flt.author_username)
        query = query.where(
            Issue.author_id.in_(select(User.id).where(User.username_lower == flt.author_username.lower()))
        )
    if flt.created_by_me:
        query = query.where(Issue.author_id == ctx.actor.user_id)
    if flt.assigned_to_me:
        query = query.where(false())
    if flt.search:
        check_text("search", flt.search)
        pattern = f"%{_escape_like(flt.search)}%"
        columns = [Issue.title if field == "title" else Issue.description for field in flt.search_in]
        query = query.where(or_(*(column.ilike(pattern, escape="\\") for column in columns)))
    if flt.confidential is not None:
        query = query.where(Issue.confidential.is_(flt.confidential))
    if flt.issue_type is not None:
        query = query.where(Issue.issue_type == flt.issue_type)
    if flt.iids is not None:
        query = query.where(Issue.iid.in_([i for i in flt.iids if 0 < i <= MAX_ID]))
    if flt.created_after is not None:
        query = query.where(Issue.created_at >= flt.created_after)
    if flt.created_before is not None:
        query = query.where(Issue.created_at <= flt.created_before)
    if flt.updated_after is not None:
        query = query.where(Issue.updated_at >= flt.updated_after)
    if flt.updated_before is not None:
        query = query.where(Issue.updated_at <= flt.updated_before)
    column = {"created_at": Issue.created_at, "updated_at": Issue.updated_at, "title": Issue.title}[
        flt.order_by
    ]
    if flt.sort == "asc":
        return query.order_by(column.asc(), Issue.id.asc())
    return query.order_by(column.desc(), Issue.id.desc())


def user_notes_counts(ctx: Ctx, issue_ids: Iterable[int]) -> dict[int, int]:
    """Non-system notes per issue, in one query."""
    ids = list(issue_ids)
    if not ids:
        return {}
    rows = ctx.db.execute(
        select(Note.issue_id, func.count(Note.id))
        .where(Note.issue_id.in_(ids), Note.system.is_(false()))
        .group_by(Note.issue_id)
    ).all()
    return {int(issue_id): int(count) for issue_id, count in rows}


def users_by_id(ctx: Ctx, ids: Iterable[int | None]) -> Mapping[int, User]:
    """The users behind author/closed_by ids, in one query."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {u.id: u for u in ctx.db.scalars(select(User).where(User.id.in_(wanted)))}


def title_errors(title: str) -> list[str]:
    if not title.strip():
        return ["can't be blank"]
    if len(title) > TITLE_MAX:
        return [f"is too long (maximum is {TITLE_MAX} characters)"]
    return []


def description_errors(description: str) -> list[str]:
    if len(description) > DESCRIPTION_MAX:
        return [f"is too long (maximum is {DESCRIPTION_MAX} characters)"]
    return []


def next_iid(ctx: Ctx, project: Project, at_least: int | None = None) -> int:
    """Bump the project's counter (or raise it to ``at_least``) and return its new value.

    One UPDATE ... RETURNING: the row lock it takes serialises concurrent creators on PostgreSQL,
    and the value it reads is the committed one, never a stale copy from this session.
    """
    counter = Project.last_issue_iid
    # max(counter, at_least) spelled as CASE: SQLite has no GREATEST.
    new_value = counter + 1 if at_least is None else case((counter < at_least, at_least), else_=counter)
    value = ctx.db.execute(
        update(Project)
        .where(Project.id == project.id)
        .values(last_issue_iid=new_value, last_activity_at=ctx.now())
        .returning(Project.last_issue_iid)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    return int(value)


def insert_issue(ctx: Ctx, project: Project, issue: Issue, *, verb: str, **details: object) -> None:
    """Add ``issue`` (its iid already chosen) with its audit event ("<verb> issue <ref>") and its
    activity event by its author; an iid taken meanwhile is Invalid. Shared by opening an issue
    and importing one (``keycrew.records.imported``), which adds ``details`` to the audit event."""
    try:
        with ctx.db.begin_nested():
            ctx.db.add(issue)
            ctx.db.flush()
    except IntegrityError:
        raise Invalid.field("iid", "has already been taken") from None
    ref = reference(project, issue)
    record(
        ctx,
        Event.ISSUE_CREATED,
        _entity(project),
        target=Target("Issue", issue.id, ref),
        custom_message=f"{verb} {issue.issue_type} {ref}",
        iid=issue.iid,
        issue_type=issue.issue_type,
        confidential=issue.confidential,
        **details,
    )
    target = EventTarget(ISSUE, issue.id, issue.title)
    record_event(ctx, Action.CREATED, project.id, author_id=issue.author_id, target=target)


def create_issue(
    ctx: Ctx,
    project: Project,
    *,
    title: str,
    description: str | None = None,
    confidential: bool = False,
    issue_type: str | None = None,
    iid: int | None = None,
    created_at: dt.datetime | None = None,
) -> Issue:
    """Open an issue in ``project`` (already permission-checked for reading) as the actor.

    Anyone who may read the project may create issues; incidents need the Planner role or more
    (others get a plain issue, as GitLab filters the type). ``iid`` and ``created_at`` are honoured
    for admins and project Owners only. Returns the issue; raises Invalid (title, description,
    iid taken), Forbidden (archived project), Unauthenticated.
    """
    user = _require_user(ctx)
    _check_writable(project)
    check_text("title", title)
    check_text("description", description)
    errors: dict[str, list[str]] = {}
    if e := title_errors(title):
        errors["title"] = e
    if e := description_errors(description or ""):
        errors["description"] = e
    if errors:
        raise Invalid("", errors)
    kind = issue_type or "issue"
    # The Alert Bot opens incidents for alerts (GitLab gives it Reporter access to every project).
    alert_bot = ctx.actor.facts is not None and ctx.actor.facts.user_type == UserType.ALERT_BOT
    if kind == "incident" and not alert_bot and not can_triage(ctx, project):
        kind = "issue"
    privileged = may_set_iid_and_dates(ctx, project)
    if not privileged:
        iid, created_at = None, None
    if iid is not None and not 0 < iid <= MAX_ID:
        raise Invalid.field("iid", f"must be between 1 and {MAX_ID}")
    now = ctx.now()
    created = created_at or now
    # Step one: take the number. Everything below runs in the same transaction, so a failure
    # later (the iid already taken) leaves the counter as it was.
    number = iid if iid is not None else next_iid(ctx, project)
    if iid is not None:
        next_iid(ctx, project, at_least=iid)
    issue = Issue(
        project_id=project.id,
        iid=number,
        title=title,
        description=description or "",
        author_id=user.id,
        state="opened",
        confidential=confidential,
        issue_type=kind,
        created_at=created,
        updated_at=created,
    )
    insert_issue(ctx, project, issue, verb="Created")
    return issue


@dataclass(frozen=True)
class IssueChanges:
    """What a PUT asks to change; None means "leave as is"."""

    title: str | None = None
    description: str | None = None
    confidential: bool | None = None
    issue_type: str | None = None
    state_event: str | None = None
    updated_at: dt.datetime | None = None


def update_issue(ctx: Ctx, project: Project, issue: Issue, changes: IssueChanges) -> Issue:
    """Apply ``changes`` as the actor: the author or a Planner+/admin may edit.

    Title/description edits set ``last_edited_by``; closing sets ``closed_at``/``closed_by`` and
    reopening clears them. One audit event per changed attribute, in this transaction; nothing is
    written when nothing changes. Raises Forbidden, Invalid.
    """
    user = _require_user(ctx)
    if not can_update_issue(ctx, project, issue):
        raise Forbidden()
    _check_writable(project)
    check_text("title", changes.title)
    check_text("description", changes.description)
    errors: dict[str, list[str]] = {}
    if changes.title is not None and (e := title_errors(changes.title)):
        errors["title"] = e
    if changes.description is not None and (e := description_errors(changes.description)):
        errors["description"] = e
    if errors:
        raise Invalid("", errors)
    now = ctx.now()
    changed: list[tuple[str, Any, Any]] = []
    if changes.title is not None and changes.title != issue.title:
        changed.append(("title", issue.title, changes.title))
        issue.title = changes.title
    if changes.description is not None and changes.description != issue.description:
        # Descriptions can be a megabyte: the event says that it changed, not what to.
        changed.append(("description", None, None))
        issue.description = changes.description
    if any(name in ("title", "description") for name, _, _ in changed):
        issue.last_edited_by_id = user.id
    if changes.confidential is not None and changes.confidential != issue.confidential:
        changed.append(("confidential", issue.confidential, changes.confidential))
        issue.confidential = changes.confidential
    if (
        changes.issue_type is not None
        and changes.issue_type != issue.issue_type
        and (changes.issue_type != "incident" or can_triage(ctx, project))
    ):
        changed.append(("issue_type", issue.issue_type, changes.issue_type))
        issue.issue_type = changes.issue_type
    if changes.state_event == "close" and issue.state != "closed":
        changed.append(("state", issue.state, "closed"))
        issue.state, issue.closed_at, issue.closed_by_id = "closed", now, user.id
    elif changes.state_event == "reopen" and issue.state == "closed":
        changed.append(("state", issue.state, "opened"))
        issue.state, issue.closed_at, issue.closed_by_id = "opened", None, None
    if not changed:
        return issue
    issue.updated_at = (
        changes.updated_at if changes.updated_at and may_set_iid_and_dates(ctx, project) else now
    )
    ctx.db.flush()
    state = next((new for name, _, new in changed if name == "state"), None)
    if state is not None:
        action = Action.CLOSED if state == "closed" else Action.REOPENED
        record_event(ctx, action, project.id, target=EventTarget(ISSUE, issue.id, issue.title))
    for name, old, new in changed:
        record(
            ctx,
            Event.ISSUE_UPDATED,
            _entity(project),
            target=Target("Issue", issue.id, reference(project, issue)),
            change=name,
            **({"from": old, "to": new} if name != "description" else {}),
        )
    return issue


def delete_issue(ctx: Ctx, project: Project, issue: Issue) -> None:
    """Delete the issue and its notes (project Owners, Planners and admins). Raises Forbidden."""
    _require_user(ctx)
    if not can_delete_issue(ctx, project):
        raise Forbidden()
    ref = reference(project, issue)
    issue_id, title = issue.id, issue.title
    # GitLab deletes the events about an issue with it (and those about its notes).
    delete_events(ctx, targets={ISSUE: [issue_id], NOTE: select(Note.id).where(Note.issue_id == issue_id)})
    notes = ctx.db.execute(
        delete(Note).where(Note.issue_id == issue_id).execution_options(synchronize_session=False)
    )
    ctx.db.delete(issue)
    ctx.db.flush()
    record(
        ctx,
        Event.ISSUE_DELETED,
        _entity(project),
        target=Target("Issue", issue_id, ref),
        custom_message=f"Deleted issue {ref}",
        title=title,
        notes_deleted=getattr(notes, "rowcount", None),
    )
