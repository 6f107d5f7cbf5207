"""The ``ghost-migration`` job: finish the deletions that DELETE /users/:id left in the background.

GitLab's Users::MigrateRecordsToGhostUserInBatchesWorker. For each due row of
``ghost_user_migrations`` (oldest first), the deleted user's records move to the Ghost User (or,
on a hard delete, are deleted) one batch per transaction (records.ghost_migrations.migrate_batch,
which keeps the running counts on the row); when nothing is left, one last transaction deletes
the user and the row (actions.deletion.finish_deletion). A run killed at any point loses at most
its open batch; the next run carries on from what is left, so nothing moves twice and nothing is
lost. A migration that fails is retried 30 minutes later (``consume_after``), with the error kept
on its row.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from sqlalchemy import select

from keycrew.actions.deletion import finish_deletion
from keycrew.automation.jobs import Job, JobRun
from keycrew.identity.internal import ghost
from keycrew.identity.models import User
from keycrew.identity.queries import lock_user
from keycrew.records import ghost_migrations
from keycrew.records.ghost_migrations import GhostUserMigration, records_left

log = logging.getLogger("keycrew.jobs.ghost")

# GitLab pushes a failed migration's consume_after this far back.
RETRY_AFTER = dt.timedelta(minutes=30)
ERROR_MAX = 2000
# On SQLite every transaction takes the one write lock up front (BEGIN IMMEDIATE) and a waiting
# writer retries on its busy handler's schedule (at most every 100 ms): without a breath between
# batches, a long migration would keep the web's writes waiting until it ends.
SQLITE_PAUSE = 0.01


def _due(run: JobRun) -> list[tuple[int, int, str, bool, int]]:
    """(migration id, user id, username, hard delete, records left) of every due migration."""
    with run.batch() as ctx:
        rows = ctx.db.execute(
            select(
                GhostUserMigration.id,
                GhostUserMigration.user_id,
                User.username,
                GhostUserMigration.hard_delete,
            )
            .join(User, User.id == GhostUserMigration.user_id)
            .where(GhostUserMigration.consume_after <= ctx.now())
            .order_by(GhostUserMigration.id)
        ).all()
        return [
            (
                int(m_id),
                int(u_id),
                str(name),
                bool(hard),
                records_left(ctx, int(u_id), hard_delete=bool(hard)),
            )
            for m_id, u_id, name, hard in rows
        ]


def migrate_user(run: JobRun, migration_id: int, batch_size: int | None = None) -> bool:
    """Carry one migration through to the user's deletion, a batch per transaction (of
    ``batch_size`` records, default ``records.ghost_migrations.BATCH_SIZE``); False when another
    run finished it first."""
    limit = ghost_migrations.BATCH_SIZE if batch_size is None else batch_size
    while True:
        with run.batch() as ctx:
            found = ctx.db.get(GhostUserMigration, migration_id)
            if found is None:
                return False
            # The user's row first, then the migration's: the order DELETE /users/:id takes them.
            user = ctx.db.get(User, found.user_id)
            if user is None:
                return False  # the row went with the user (ON DELETE CASCADE)
            lock_user(ctx, user)
            migration = ctx.db.scalars(
                select(GhostUserMigration)
                .where(GhostUserMigration.id == migration_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
            if migration is None:
                return False
            heir = None if migration.hard_delete else ghost(ctx).id
            hard = migration.hard_delete
            sqlite = ctx.db.get_bind().dialect.name == "sqlite"
            moved = ghost_migrations.migrate_batch(ctx, migration, heir, limit)
            if not moved:
                done = finish_deletion(ctx, migration)
        if moved:
            run.count("records deleted" if hard else "records moved", moved)
            run.progress.advance(moved)
            if sqlite:
                time.sleep(SQLITE_PAUSE)
            continue
        run.count("users deleted")
        total = sum(done.records.values()) + done.events
        what = "deleted" if hard else "moved to the Ghost User"
        run.note(f"deleted @{done.username} (id {done.user_id}); {total} records {what}")
        return True


def _failed(run: JobRun, migration_id: int, exc: BaseException) -> None:
    with run.batch() as ctx:
        migration = ctx.db.get(GhostUserMigration, migration_id)
        if migration is not None:
            migration.attempts += 1
            migration.last_error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX]
            migration.consume_after = ctx.now() + RETRY_AFTER
            migration.updated_at = ctx.now()


def run_ghost_migrations(run: JobRun) -> None:
    due = _due(run)
    run.progress.start(sum(left for *_, left in due))
    for migration_id, user_id, username, hard, left in due:
        if run.dry_run:
            # A dry run rolls every batch back: it would find the same records again and again.
            what = "delete" if hard else "move to the Ghost User"
            run.note(f"would delete @{username} (id {user_id}) and {what} {left} records")
            run.count("users to delete")
            run.count("records to delete" if hard else "records to move", left)
            run.progress.advance(left)
            continue
        try:
            migrate_user(run, migration_id)
        except Exception as exc:  # one user's failure must not hold up the others
            log.exception("ghost migration of user %s failed", user_id)
            run.count("failed")
            run.note(f"failed to delete @{username} (id {user_id}): {type(exc).__name__}; retried later")
            _failed(run, migration_id, exc)


ghost_migration_job = Job(
    "ghost-migration",
    # GitLab's Users::MigrateRecordsToGhostUserInBatchesWorker runs every 2 minutes.
    "*/2 * * * *",
    "Finish deletions of users with many records: move their records to the Ghost User (or "
    "delete them, on a hard delete) in batches, then delete the user.",
    run_ghost_migrations,
)
