"""Issues and notes copied from another instance (direct transfer), as they were there.

Unlike ``records.issues.create_issue`` and ``records.notes.create_note``, which write what the
acting user writes now, these keep the source's number, dates, state and author: the author is who
the importer attributes the record to (a placeholder user, the Import User, GitLab Migration Bot),
never the importing user, who only acts. The importer has made its checks (it created the project
and acts as the user who may create there), so none are made here but the records' own rules:
a title or body the issue or note could not have is refused with Invalid, as on create.
"""

from __future__ import annotations

import datetime as dt

from keycrew.activity.kinds import NOTE, Action
from keycrew.activity.service import EventTarget, record_event
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.errors import BadParameter, Invalid
from keycrew.identity.models import User
from keycrew.namespaces.models import Project
from keycrew.records.issues import (
    ISSUE_TYPES,
    check_text,
    description_errors,
    insert_issue,
    next_iid,
    reference,
    title_errors,
)
from keycrew.records.models import Issue, Note
from keycrew.records.notes import body_errors


def _entity(project: Project) -> Entity:
    return Entity("Project", project.id, project.full_path)


def import_issue(
    ctx: Ctx,
    project: Project,
    *,
    author: User,
    iid: int,
    title: str,
    description: str | None,
    closed: bool,
    confidential: bool,
    issue_type: str | None,
    created_at: dt.datetime,
    updated_at: dt.datetime | None = None,
    closed_at: dt.datetime | None = None,
) -> Issue:
    """Write an issue as the source had it (its ``iid``, dates, state), authored by ``author``.

    The project's issue counter is raised to ``iid`` so that issues opened later take the next
    numbers. Raises Invalid (title, description, iid taken, NUL in text)."""
    try:
        check_text("title", title)
        check_text("description", description)
    except BadParameter as exc:  # here one more reason to skip the record
        raise Invalid(str(exc)) from None
    errors: dict[str, list[str]] = {}
    if e := title_errors(title):
        errors["title"] = e
    if e := description_errors(description or ""):
        errors["description"] = e
    if not 0 < iid <= MAX_ID:
        errors["iid"] = [f"must be between 1 and {MAX_ID}"]
    if errors:
        raise Invalid("", errors)
    kind = issue_type if issue_type in ISSUE_TYPES else "issue"
    next_iid(ctx, project, at_least=iid)
    issue = Issue(
        project_id=project.id,
        iid=iid,
        title=title,
        description=description or "",
        author_id=author.id,
        state="closed" if closed else "opened",
        confidential=confidential,
        issue_type=kind,
        closed_at=(closed_at or updated_at or created_at) if closed else None,
        created_at=created_at,
        updated_at=updated_at or created_at,
    )
    insert_issue(ctx, project, issue, verb="Imported", imported=True, author_id=author.id)
    return issue


def import_note(
    ctx: Ctx,
    project: Project,
    issue: Issue,
    *,
    author: User,
    body: str,
    internal: bool,
    created_at: dt.datetime,
    updated_at: dt.datetime | None = None,
) -> Note:
    """Write a comment as the source had it (its dates), authored by ``author``; the issue's
    ``updated_at`` is left as imported. Raises Invalid (body)."""
    try:
        check_text("body", body)
    except BadParameter as exc:
        raise Invalid(str(exc)) from None
    if e := body_errors(body):
        raise Invalid("", {"note": e})
    note = Note(
        project_id=project.id,
        issue_id=issue.id,
        author_id=author.id,
        body=body,
        system=False,
        confidential=internal,
        created_at=created_at,
        updated_at=updated_at or created_at,
    )
    ctx.db.add(note)
    ctx.db.flush()
    record(
        ctx,
        Event.NOTE_CREATED,
        _entity(project),
        target=Target("Note", note.id, f"{reference(project, issue)} note {note.id}"),
        custom_message=f"Imported a comment on issue {reference(project, issue)}",
        issue_iid=issue.iid,
        internal=internal,
        imported=True,
        author_id=author.id,
    )
    record_event(
        ctx, Action.COMMENTED, project.id, author_id=author.id, target=EventTarget(NOTE, note.id, issue.title)
    )
    return note
