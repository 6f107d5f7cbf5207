"""Deferred Ghost migrations: a deleted user's records, moved (or deleted) a batch at a time.

GitLab's Users::GhostUserMigration: deleting a user with many records blocks the user and leaves
one row here, and the ``ghost-migration`` job consumes it (keycrew.automation.ghost). Each batch
is one set-based statement per table (``UPDATE ... WHERE id IN (SELECT id ... WHERE author_id =
:user LIMIT :n)``): a moved record no longer matches, so a batch needs no cursor, a batch that
never committed is simply done again, and none is done twice. The counts of what moved are kept
on the row in the same transaction as the batch, so that the user.deleted event written at the
end reports exact totals however often the job was interrupted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, delete, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from keycrew.activity.kinds import ISSUE, NOTE
from keycrew.activity.models import ActivityEvent, PushEventPayload
from keycrew.context import Ctx
from keycrew.db.base import Base, JSONDict, UTCDateTime
from keycrew.records.models import Issue, Note

# Records per statement: large enough that the per-statement and per-commit costs vanish next to
# the rows' own (bench/ghost.py), small enough that a batch holds its locks for well under a
# second and a killed run loses little.
BATCH_SIZE = 50_000
# A hard delete's batch reads its ids first and names them in a few statements (SQLite takes at
# most 32,766 parameters in one).
HARD_DELETE_BATCH_SIZE = 5_000


class GhostUserMigration(Base):
    """A user being deleted: blocked already, records still being moved to the Ghost User."""

    __tablename__ = "ghost_user_migrations"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    # Who asked (the author of the final user.deleted event); None once that user is gone too.
    initiator_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    hard_delete: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Not before this moment (pushed back after a failed attempt, as GitLab's consume_after).
    consume_after: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    # What has been moved (or deleted) so far, by kind: the progress, committed with each batch.
    moved: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


def pending_migration(ctx: Ctx, user_id: int) -> GhostUserMigration | None:
    return ctx.db.scalar(select(GhostUserMigration).where(GhostUserMigration.user_id == user_id))


def _count(result: object) -> int:
    rowcount = getattr(result, "rowcount", None)
    return int(rowcount) if rowcount is not None and rowcount >= 0 else 0


@dataclass(frozen=True)
class _Step:
    """One kind of record: how to find a batch of it, and what to do with that batch."""

    kind: str
    model: Any
    where: Callable[[int], ColumnElement[bool]]
    # (ctx, user id, ghost id or None, ids select) -> rows changed
    apply: Callable[[Ctx, int, int | None, Any], int]


def _reassign(model: Any, column: str) -> Callable[[Ctx, int, int | None, Any], int]:
    def apply(ctx: Ctx, _user_id: int, ghost_id: int | None, ids: Any) -> int:
        return _count(
            ctx.db.execute(
                update(model)
                .where(model.id.in_(ids))
                .values({column: ghost_id})
                .execution_options(synchronize_session=False)
            )
        )

    return apply


def _forget(model: Any, column: str) -> Callable[[Ctx, int, int | None, Any], int]:
    """Clear the column (what the foreign key's ON DELETE SET NULL would do with the user, but in
    batches rather than in the final DELETE)."""
    reassign = _reassign(model, column)

    def apply(ctx: Ctx, user_id: int, _ghost_id: int | None, ids: Any) -> int:
        return reassign(ctx, user_id, None, ids)

    return apply


def _delete_events(ctx: Ctx, _user_id: int, _ghost_id: int | None, ids: Any) -> int:
    ids = list(ctx.db.scalars(ids))
    if not ids:
        return 0
    ctx.db.execute(
        delete(PushEventPayload)
        .where(PushEventPayload.event_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return _count(
        ctx.db.execute(
            delete(ActivityEvent)
            .where(ActivityEvent.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    )


def _delete_notes(ctx: Ctx, _user_id: int, _ghost_id: int | None, ids: Any) -> int:
    ids = list(ctx.db.scalars(ids))
    if not ids:
        return 0
    # The events about these notes go with them, as a note's deletion takes its events.
    ctx.db.execute(
        delete(ActivityEvent)
        .where(ActivityEvent.target_type == NOTE, ActivityEvent.target_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return _count(
        ctx.db.execute(delete(Note).where(Note.id.in_(ids)).execution_options(synchronize_session=False))
    )


def _delete_issues(ctx: Ctx, _user_id: int, _ghost_id: int | None, ids: Any) -> int:
    ids = list(ctx.db.scalars(ids))
    if not ids:
        return 0
    # Every note on these issues, whoever wrote it, and the events about both.
    notes_on = select(Note.id).where(Note.issue_id.in_(ids))
    ctx.db.execute(
        delete(ActivityEvent)
        .where(
            or_(
                (ActivityEvent.target_type == ISSUE) & ActivityEvent.target_id.in_(ids),
                (ActivityEvent.target_type == NOTE) & ActivityEvent.target_id.in_(notes_on),
            )
        )
        .execution_options(synchronize_session=False)
    )
    ctx.db.execute(delete(Note).where(Note.issue_id.in_(ids)).execution_options(synchronize_session=False))
    return _count(
        ctx.db.execute(delete(Issue).where(Issue.id.in_(ids)).execution_options(synchronize_session=False))
    )


# Soft delete: what GitLab's MigrateRecordsToGhostUserService moves (of what keycrew keeps).
_MOVE = (
    _Step("issues", Issue, lambda u: Issue.author_id == u, _reassign(Issue, "author_id")),
    _Step(
        "issues_last_edited",
        Issue,
        lambda u: Issue.last_edited_by_id == u,
        _reassign(Issue, "last_edited_by_id"),
    ),
    _Step("notes", Note, lambda u: Note.author_id == u, _reassign(Note, "author_id")),
    _Step(
        "events", ActivityEvent, lambda u: ActivityEvent.author_id == u, _reassign(ActivityEvent, "author_id")
    ),
    # Who closed an issue is forgotten, not moved (GitLab's closed_by nullify).
    _Step("issues_closed", Issue, lambda u: Issue.closed_by_id == u, _forget(Issue, "closed_by_id")),
)

# Hard delete: the user's events, notes and issues go (with every note on those issues); edit marks
# pointing at the user are cleared.
_DELETE = (
    _Step("events", ActivityEvent, lambda u: ActivityEvent.author_id == u, _delete_events),
    _Step("notes", Note, lambda u: Note.author_id == u, _delete_notes),
    _Step("issues", Issue, lambda u: Issue.author_id == u, _delete_issues),
    _Step(
        "issues_last_edited",
        Issue,
        lambda u: Issue.last_edited_by_id == u,
        _forget(Issue, "last_edited_by_id"),
    ),
    _Step("issues_closed", Issue, lambda u: Issue.closed_by_id == u, _forget(Issue, "closed_by_id")),
)


def _steps(hard_delete: bool) -> tuple[_Step, ...]:
    return _DELETE if hard_delete else _MOVE


def records_left(ctx: Ctx, user_id: int, *, hard_delete: bool = False, limit: int | None = None) -> int:
    """How many records of ``user_id`` remain to be moved (or deleted); with ``limit``, counting
    stops beyond it (a bounded query per table: the cost of deciding whether to defer)."""
    total = 0
    for step in _steps(hard_delete):
        query = select(step.model.id).where(step.where(user_id))
        if limit is not None:
            query = query.limit(limit + 1 - total)
        total += int(ctx.db.scalar(select(func.count()).select_from(query.subquery())) or 0)
        if limit is not None and total > limit:
            return total
    return total


def migrate_batch(
    ctx: Ctx, migration: GhostUserMigration, ghost_id: int | None, limit: int = BATCH_SIZE
) -> int:
    """Move (``ghost_id``) or, on a hard delete, delete up to ``limit`` more records of the
    migration's user, in the caller's transaction, and add them to ``migration.moved``.

    Returns how many records this batch took; 0 means nothing is left.
    """
    user_id = migration.user_id
    if migration.hard_delete:
        limit = min(limit, HARD_DELETE_BATCH_SIZE)
    for step in _steps(migration.hard_delete):
        ids = select(step.model.id).where(step.where(user_id)).limit(limit)
        done = step.apply(ctx, user_id, ghost_id, ids)
        if done:
            moved = dict(migration.moved or {})
            moved[step.kind] = int(moved.get(step.kind, 0)) + done
            migration.moved = moved
            migration.updated_at = ctx.now()
            ctx.db.flush()
            return done
    return 0
