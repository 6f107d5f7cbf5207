"""Use cases on issue notes (comments): list, find, create, update, delete.

The issue is found (and its visibility checked) first with ``records.issues.find_issue``; internal
notes are seen only by Planner+ members and admins, as GitLab does.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, false, select

from keycrew.activity.kinds import NOTE, Action
from keycrew.activity.service import EventTarget, delete_events, record_event
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.errors import Forbidden, Invalid, NotFound, Unauthenticated
from keycrew.identity.models import User
from keycrew.namespaces.models import Project
from keycrew.records.issues import MAX_ID, can_triage, check_text, may_set_iid_and_dates, reference
from keycrew.records.models import Issue, Note

# GitLab's limit for note bodies.
BODY_MAX = 1_000_000
ORDER_BY = ("created_at", "updated_at")


def _entity(project: Project) -> Entity:
    return Entity("Project", project.id, project.full_path)


def _require_user(ctx: Ctx) -> User:
    user = ctx.actor.user
    if user is None:
        raise Unauthenticated()
    return user


def body_errors(body: str) -> list[str]:
    if not body.strip():
        return ["can't be blank"]
    if len(body) > BODY_MAX:
        return [f"is too long (maximum is {BODY_MAX} characters)"]
    return []


def _note_ref(project: Project, issue: Issue, note_id: int) -> str:
    return f"{reference(project, issue)} note {note_id}"


def notes_query(
    ctx: Ctx, project: Project, issue: Issue, *, order_by: str = "created_at", sort: str = "desc"
) -> Select[Any]:
    """The issue's notes the actor may read, ordered with id as tie-breaker."""
    query = select(Note).where(Note.issue_id == issue.id)
    if not can_triage(ctx, project):
        query = query.where(Note.confidential.is_(false()))
    column = Note.updated_at if order_by == "updated_at" else Note.created_at
    if sort == "asc":
        return query.order_by(column.asc(), Note.id.asc())
    return query.order_by(column.desc(), Note.id.desc())


def find_note(ctx: Ctx, project: Project, issue: Issue, note_id: int) -> Note:
    """The note on this issue if the actor may read it; NotFound("Note") otherwise."""
    note = ctx.db.get(Note, note_id) if 0 < note_id <= MAX_ID else None
    if note is None or note.issue_id != issue.id:
        raise NotFound("Note")
    if note.confidential and not can_triage(ctx, project):
        raise NotFound("Note")
    return note


def create_note(
    ctx: Ctx,
    project: Project,
    issue: Issue,
    *,
    body: str,
    internal: bool = False,
    created_at: dt.datetime | None = None,
) -> Note:
    """Comment on a readable issue as the actor (any signed-in reader of the project may).

    Internal notes need the Planner role or more; ``created_at`` is honoured for admins and project
    Owners. Touches the issue's ``updated_at``. Raises Invalid (body), Forbidden, Unauthenticated.
    """
    user = _require_user(ctx)
    if project.archived:
        raise Forbidden()
    check_text("body", body)
    if e := body_errors(body):
        raise Invalid("", {"note": e})
    if internal and not can_triage(ctx, project):
        raise Forbidden("Internal notes can only be created by Planners and above")
    now = ctx.now()
    when = created_at if created_at is not None and may_set_iid_and_dates(ctx, project) else now
    note = Note(
        project_id=project.id,
        issue_id=issue.id,
        author_id=user.id,
        body=body,
        system=False,
        confidential=internal,
        created_at=when,
        updated_at=when,
    )
    ctx.db.add(note)
    issue.updated_at = now
    ctx.db.flush()
    record(
        ctx,
        Event.NOTE_CREATED,
        _entity(project),
        target=Target("Note", note.id, _note_ref(project, issue, note.id)),
        custom_message=f"Commented on issue {reference(project, issue)}",
        issue_iid=issue.iid,
        internal=internal,
    )
    # A note's title is its issue's (GitLab's Note#title).
    record_event(ctx, Action.COMMENTED, project.id, target=EventTarget(NOTE, note.id, issue.title))
    return note


def _may_admin_note(ctx: Ctx, note: Note) -> bool:
    return ctx.actor.is_admin or (ctx.actor.user_id is not None and note.author_id == ctx.actor.user_id)


def update_note(ctx: Ctx, project: Project, issue: Issue, note: Note, *, body: str | None) -> Note:
    """Change the note's body (its author or an admin). Raises Forbidden, Invalid."""
    _require_user(ctx)
    if not _may_admin_note(ctx, note):
        raise Forbidden()
    if project.archived:
        raise Forbidden()
    if body is None or body == note.body:
        return note
    check_text("body", body)
    if e := body_errors(body):
        raise Invalid("", {"note": e})
    note.body = body
    note.updated_at = ctx.now()
    ctx.db.flush()
    record(
        ctx,
        Event.NOTE_UPDATED,
        _entity(project),
        target=Target("Note", note.id, _note_ref(project, issue, note.id)),
        custom_message=f"Edited a comment on issue {reference(project, issue)}",
        change="body",
        issue_iid=issue.iid,
    )
    return note


def delete_note(ctx: Ctx, project: Project, issue: Issue, note: Note) -> None:
    """Delete the note (its author or an admin). Raises Forbidden."""
    _require_user(ctx)
    if not _may_admin_note(ctx, note):
        raise Forbidden()
    note_id = note.id
    delete_events(ctx, targets={NOTE: [note_id]})
    ctx.db.delete(note)
    ctx.db.flush()
    record(
        ctx,
        Event.NOTE_DELETED,
        _entity(project),
        target=Target("Note", note_id, _note_ref(project, issue, note_id)),
        custom_message=f"Deleted a comment on issue {reference(project, issue)}",
        issue_iid=issue.iid,
    )
