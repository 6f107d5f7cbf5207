"""The background jobs keycrew knows, and what a job's body receives to do its work.

A job's body works in batches: ``run.batch()`` opens one transaction acting as GitLab Admin Bot
and commits it at the end of the ``with`` block (a dry run rolls it back instead, so the body
runs its real code and reports what it would do). A body walks its candidates in keyset order
(``id > last id``) and leaves every finished item marked in the same transaction as the work on
it (a notification's "sent" column, a deleted row), so that a run killed mid-way loses at most its
open batch, and the next run, finding only what is left, finishes the work without doing
anything twice.

Adapters (the CLI, the scheduler in ``keycrew serve``, the admin page) look jobs up in
``keycrew.automation.registry.JOBS``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from keycrew.clock import Clock
from keycrew.context import Actor, Ctx, Instance
from keycrew.identity.internal import admin_bot

log = logging.getLogger("keycrew.jobs")

# How many lines of "what it did" a run keeps (counts are always complete).
MAX_NOTES = 1000
# The longest pause after a batch on SQLite (see JobRun.batch).
SQLITE_BREATH_MAX = 0.1


class Progress:
    """Where a run reports how far it is (the CLI draws a bar; elsewhere nothing)."""

    def start(self, total: int | None) -> None:
        """The run now knows (roughly) how many items it will look at."""

    def advance(self, n: int = 1) -> None:
        """``n`` more items were looked at."""


@dataclass
class JobRun:
    """One run of a job: the transactions it works in, and what it did (counts and notes)."""

    sessions: sessionmaker[Session]
    instance: Instance
    clock: Clock
    dry_run: bool = False
    progress: Progress = field(default_factory=Progress)
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    # The slot of the schedule this run is for (None when run by hand).
    scheduled_for: dt.datetime | None = None
    # Called before each batch: raises to stop the run there (its lease was lost, the server is
    # shutting down). Set by keycrew.automation.runs.run_job.
    guard: Callable[[], None] | None = None
    # Called in each batch's transaction just before its commit: renews the run's lease there, and
    # raises (rolling the batch back) when the lease is no longer the run's. Set by run_job.
    renew: Callable[[Session], None] | None = None

    @contextmanager
    def batch(self) -> Iterator[Ctx]:
        """One transaction acting as GitLab Admin Bot: committed when the block ends (rolled back
        on an error, and always on a dry run)."""
        if self.guard is not None:
            self.guard()
        began = time.monotonic()
        with self.sessions() as db:
            sqlite = db.get_bind().dialect.name == "sqlite"
            ctx = Ctx(db, Actor(user=None, via="system"), self.instance, self.clock)
            ctx = ctx.as_actor(Actor(user=admin_bot(ctx), via="system"))
            try:
                yield ctx
                if self.renew is not None and not self.dry_run:
                    self.renew(db)
            except BaseException:
                db.rollback()
                raise
            if self.dry_run:
                db.rollback()
            else:
                db.commit()
        if sqlite:
            # SQLite has one write lock, and a writer that waits for it retries on its busy
            # handler's schedule (its pauses grow to 100 ms): a breath after each batch, a tenth of
            # the batch's time, lets the web's writes in between a long job's batches.
            time.sleep(min(SQLITE_BREATH_MAX, (time.monotonic() - began) / 10))

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] += n

    def note(self, line: str) -> None:
        """One line of what the run did (or, on a dry run, would do): "deleted bot @x"."""
        if len(self.notes) < MAX_NOTES:
            self.notes.append(line)

    def summary(self) -> str:
        """The counts on one line: "deleted 2, kept 5" (or "nothing to do")."""
        parts = [f"{key} {value}" for key, value in self.counts.items()]
        return ", ".join(parts) if parts else "nothing to do"


@dataclass(frozen=True)
class Job:
    name: str
    # When the scheduler runs it: a cron expression in UTC (GitLab's schedule for the same job).
    schedule: str
    description: str
    body: Callable[[JobRun], None]
