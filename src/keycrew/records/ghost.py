"""What happens to a user's issues and notes when the user is deleted.

GitLab either moves them to the Ghost user (the default) or, on a hard delete,
removes what the user authored. Both are bulk statements run in the caller's
transaction, so the user-deletion use case commits or rolls back everything at once.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from keycrew.context import Ctx
from keycrew.records.models import Issue, Note


def _count(result: object) -> int:
    rowcount = getattr(result, "rowcount", None)
    return int(rowcount) if rowcount is not None and rowcount >= 0 else 0


def move_records_to(ctx: Ctx, from_user_id: int, to_user_id: int) -> dict[str, int]:
    """Reassign everything ``from_user_id`` is credited with to ``to_user_id`` (the Ghost user).

    Returns counts per kind: ``issues`` (authored), ``issues_last_edited`` and ``notes``.
    Does not commit.
    """
    db = ctx.db
    # synchronize_session=False: we touch rows in bulk; the caller does not rely on
    # stale Issue/Note objects in this session after a user deletion.
    issues = db.execute(
        update(Issue)
        .where(Issue.author_id == from_user_id)
        .values(author_id=to_user_id)
        .execution_options(synchronize_session=False)
    )
    edited = db.execute(
        update(Issue)
        .where(Issue.last_edited_by_id == from_user_id)
        .values(last_edited_by_id=to_user_id)
        .execution_options(synchronize_session=False)
    )
    notes = db.execute(
        update(Note)
        .where(Note.author_id == from_user_id)
        .values(author_id=to_user_id)
        .execution_options(synchronize_session=False)
    )
    db.expire_all()
    return {
        "issues": _count(issues),
        "issues_last_edited": _count(edited),
        "notes": _count(notes),
    }


def delete_records_of(ctx: Ctx, user_id: int) -> dict[str, int]:
    """Hard-delete what ``user_id`` authored: their issues (with every note on them) and their notes.

    ``last_edited_by_id`` pointing at the user is nulled on the issues that remain.
    Returns counts per kind: ``issues``, ``notes`` (all notes removed, on the user's
    issues or elsewhere) and ``issues_last_edited`` (edit marks cleared). Does not commit.
    """
    db = ctx.db
    own_issue_ids = select(Issue.id).where(Issue.author_id == user_id)
    # Notes are deleted explicitly rather than through ON DELETE CASCADE: SQLite
    # only cascades with PRAGMA foreign_keys=ON, and we want the count anyway.
    notes = db.execute(
        delete(Note)
        .where((Note.author_id == user_id) | Note.issue_id.in_(own_issue_ids))
        .execution_options(synchronize_session=False)
    )
    issues = db.execute(
        delete(Issue).where(Issue.author_id == user_id).execution_options(synchronize_session=False)
    )
    edited = db.execute(
        update(Issue)
        .where(Issue.last_edited_by_id == user_id)
        .values(last_edited_by_id=None)
        .execution_options(synchronize_session=False)
    )
    db.expire_all()
    return {
        "issues": _count(issues),
        "notes": _count(notes),
        "issues_last_edited": _count(edited),
    }
