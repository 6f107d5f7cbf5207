"""Running a job: its lease, its run record, and what the run did.

``run_job`` is the one way every adapter runs a job (the scheduler, ``keycrew jobs run``, the admin
page's "Run now"). It

1. takes the job's lease with a conditional UPDATE (free, or lapsed) on ``job_leases``, so that of
   all the nodes and processes on one database exactly one runs a given job at a time; a run that
   finds the lease held is skipped and says by whom;
2. records the run (``job_runs``, status running) in the same transaction; a scheduled run carries
   its slot, unique per job, so that a slot another node already ran is skipped too;
3. runs the body while a heartbeat thread renews the lease (and saves the counts so far) every
   few seconds; a node that dies (kill -9) stops renewing, its lease lapses after
   ``LEASE_SECONDS``, and the next run on any node takes over, marking the dead run interrupted;
4. records the outcome (succeeded, failed with the error, interrupted) and frees the lease.

An exception in a body ends its run as failed (logged, recorded), never its caller.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.automation.jobs import MAX_NOTES, Job, JobRun, Progress
from keycrew.automation.registry import JOBS
from keycrew.clock import Clock
from keycrew.context import Ctx, Instance
from keycrew.errors import Conflict
from keycrew.instance.jobs import (
    CLI,
    FAILED,
    INTERRUPTED,
    MANUAL,
    RUNNING,
    SCHEDULE,
    SUCCEEDED,
    TRIGGERS,
    JobLease,
    JobRunRecord,
)

__all__ = [
    "CLI",
    "FAILED",
    "HEARTBEAT_SECONDS",
    "INTERRUPTED",
    "LEASE_SECONDS",
    "MANUAL",
    "RUNNING",
    "SCHEDULE",
    "SKIPPED",
    "SUCCEEDED",
    "JobCancelled",
    "LeaseLost",
    "RunResult",
    "RunView",
    "find_run",
    "last_runs",
    "node_name",
    "recent_runs",
    "run_job",
    "shown_status",
]

log = logging.getLogger("keycrew.jobs")

# How long a lease lasts without a heartbeat: a dead node's job can run again this long after.
LEASE_SECONDS = 60.0
# How often a running job renews its lease (and saves its counts so far).
HEARTBEAT_SECONDS = 10.0
# A run that did not start: its lease was held, or its slot already ran (never recorded).
SKIPPED = "skipped"
# The longest error text kept on a run.
MAX_ERROR = 8000


# How long run records are kept: a job that runs every two minutes leaves ~21,600 rows in 30 days.
RUN_HISTORY = dt.timedelta(days=30)


class LeaseLost(Exception):
    """The run's lease lapsed or was taken over (its heartbeats failed): it stops at its next batch."""


class JobCancelled(BaseException):
    """The process running the job is shutting down: the run stops at its next batch."""


def node_name() -> str:
    """This process, as the runs and leases name it: "hostname:pid"."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RunResult:
    """What a call of ``run_job`` did: a recorded run, or why it did not start (skipped)."""

    job: str
    status: str
    trigger: str
    dry_run: bool = False
    run_id: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    # Why a skipped run did not start.
    reason: str | None = None

    @property
    def summary(self) -> str:
        """The counts on one line: "deleted 2, kept 5" (or "nothing to do")."""
        return summary_of(self.counts)


def summary_of(counts: dict[str, Any]) -> str:
    parts = [f"{key} {value}" for key, value in counts.items()]
    return ", ".join(parts) if parts else "nothing to do"


def shown_status(run: JobRunRecord, lease: JobLease | None, now: dt.datetime) -> str:
    """A run's status as it really is: one still marked running whose lease is gone or lapsed was
    left by a node that died (it is interrupted)."""
    if run.status != RUNNING:
        return run.status
    alive = (
        lease is not None
        and lease.run_id == run.id
        and lease.lease_until is not None
        and lease.lease_until >= now
    )
    return RUNNING if alive else INTERRUPTED


class _Lease:
    """The lease of one run: taken with the run's record, renewed by a thread, freed at the end."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        name: str,
        holder: str,
        seconds: float,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.name = name
        self.holder = holder
        self.seconds = seconds
        self.until: dt.datetime | None = None
        self.lost = threading.Event()

    def _until(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(seconds=self.seconds)

    def ensure_row(self) -> None:
        """The job's lease row exists (created free on the job's first run, by whichever node)."""
        with self.sessions() as db:
            if db.get(JobLease, self.name) is not None:
                return
            try:
                db.execute(insert(JobLease).values(name=self.name, holder=None))
                db.commit()
            except IntegrityError:  # another node created it at the same moment
                db.rollback()

    def take(self, db: Session, now: dt.datetime) -> bool:
        """Take the lease if it is free or lapsed (in ``db``'s transaction); False if held."""
        result = db.execute(
            update(JobLease)
            .where(
                JobLease.name == self.name,
                or_(JobLease.holder.is_(None), JobLease.lease_until.is_(None), JobLease.lease_until < now),
            )
            .values(holder=self.holder, lease_until=self._until(now), heartbeat_at=now, run_id=None)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return False
        self.until = self._until(now)
        return True

    def renew(self, run: JobRun | None = None, run_id: int | None = None, every: float = 0.0) -> None:
        """Extend the lease (and save the run's counts so far); marks it lost if taken over.

        Skipped while a batch renewed it less than ``every`` seconds ago (a run that commits
        batches often keeps its lease with them, without a write of its own)."""
        now = self.clock.now()
        if self.until is not None and self.until - now > dt.timedelta(seconds=self.seconds - every):
            return
        try:
            with self.sessions() as db:
                result = db.execute(
                    update(JobLease)
                    .where(JobLease.name == self.name, JobLease.holder == self.holder)
                    .values(lease_until=self._until(now), heartbeat_at=now)
                    .execution_options(synchronize_session=False)
                )
                if getattr(result, "rowcount", 0) != 1:
                    self.lost.set()
                    db.rollback()
                    log.error("job %s lost its lease (taken over by another run)", self.name)
                    return
                if run is not None and run_id is not None and not run.dry_run:
                    db.execute(
                        update(JobRunRecord)
                        .where(JobRunRecord.id == run_id)
                        .values(counts=dict.copy(run.counts), notes=list(run.notes))
                        .execution_options(synchronize_session=False)
                    )
                db.commit()
                self.until = self._until(now)
        except SQLAlchemyError:
            log.warning("job %s could not renew its lease", self.name, exc_info=True)

    def renew_in(self, db: Session, run: JobRun, run_id: int) -> None:
        """Extend the lease in ``db``'s transaction (a batch's, before it commits): the work of a
        batch commits only with a lease that is still this run's; else LeaseLost. The run's
        counts so far are saved with it."""
        now = self.clock.now()
        result = db.execute(
            update(JobLease)
            .where(JobLease.name == self.name, JobLease.holder == self.holder)
            .values(lease_until=self._until(now), heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            self.lost.set()
            raise LeaseLost(f"the lease of job {self.name} was taken over by another run")
        db.execute(
            update(JobRunRecord)
            .where(JobRunRecord.id == run_id)
            .values(counts=dict.copy(run.counts), notes=list(run.notes))
            .execution_options(synchronize_session=False)
        )
        self.until = self._until(now)

    def check(self) -> None:
        """Raise LeaseLost when the lease is no longer this run's (lost, or lapsed unrenewed)."""
        if self.lost.is_set() or (self.until is not None and self.clock.now() > self.until):
            raise LeaseLost(f"the lease of job {self.name} lapsed or was taken over")


class _Heartbeat(threading.Thread):
    def __init__(self, lease: _Lease, run: JobRun, run_id: int, every: float) -> None:
        super().__init__(name=f"keycrew-job-{lease.name}", daemon=True)
        self.lease = lease
        self.run_ = run
        self.run_id = run_id
        self.every = every
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self.lease.renew(self.run_, self.run_id, self.every)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def _claim(
    lease: _Lease,
    job: Job,
    *,
    trigger: str,
    dry_run: bool,
    node: str,
    scheduled_for: dt.datetime | None,
) -> int | str:
    """Take the lease and record the run as running, in one transaction: the run's id, or why not."""
    lease.ensure_row()
    with lease.sessions() as db:
        now = lease.clock.now()
        if not lease.take(db, now):
            db.rollback()
            held = db.get(JobLease, job.name)
            who = held.holder.split("/", 1)[0] if held is not None and held.holder else "another node"
            until = held.lease_until.isoformat() if held is not None and held.lease_until else "?"
            return f"job {job.name} is already running on {who} (its lease runs until {until})"
        # Whatever this job left running before is dead: the lease was free or had lapsed.
        db.execute(
            update(JobRunRecord)
            .where(JobRunRecord.job_name == job.name, JobRunRecord.status == RUNNING)
            .values(status=INTERRUPTED, error="The node running it stopped before the end.")
            .execution_options(synchronize_session=False)
        )
        record = JobRunRecord(
            job_name=job.name,
            trigger=trigger,
            dry_run=dry_run,
            node=node,
            scheduled_for=scheduled_for,
            started_at=now,
            status=RUNNING,
            counts={},
            notes=[],
        )
        db.add(record)
        try:
            db.flush()
        except IntegrityError:  # (job_name, scheduled_for): another node ran this slot already
            db.rollback()
            slot = scheduled_for.isoformat() if scheduled_for is not None else "this slot"
            return f"job {job.name} already ran for {slot}"
        db.execute(
            update(JobLease)
            .where(JobLease.name == job.name, JobLease.holder == lease.holder)
            .values(run_id=record.id)
            .execution_options(synchronize_session=False)
        )
        db.commit()
        return record.id


def _finish(lease: _Lease, run_id: int, run: JobRun, status: str, error: str | None) -> None:
    """Record the run's outcome, forget the job's runs older than ``RUN_HISTORY`` and free the lease
    (if it still is this run's), in one transaction."""
    try:
        with lease.sessions() as db:
            now = lease.clock.now()
            db.execute(
                delete(JobRunRecord)
                .where(JobRunRecord.job_name == lease.name, JobRunRecord.started_at < now - RUN_HISTORY)
                .execution_options(synchronize_session=False)
            )
            db.execute(
                update(JobRunRecord)
                .where(JobRunRecord.id == run_id)
                .values(
                    status=status,
                    finished_at=now,
                    counts=dict(run.counts),
                    notes=list(run.notes[:MAX_NOTES]),
                    error=error[:MAX_ERROR] if error else None,
                )
                .execution_options(synchronize_session=False)
            )
            db.execute(
                update(JobLease)
                .where(JobLease.name == lease.name, JobLease.holder == lease.holder)
                .values(holder=None, run_id=None, lease_until=None)
                .execution_options(synchronize_session=False)
            )
            db.commit()
    except SQLAlchemyError:
        # The lease lapses by itself; the run will show as interrupted.
        log.exception("job %s: could not record the end of run %s", lease.name, run_id)


def run_job(
    sessions: sessionmaker[Session],
    instance: Instance,
    clock: Clock,
    job: Job | str,
    *,
    trigger: str,
    dry_run: bool = False,
    progress: Progress | None = None,
    scheduled_for: dt.datetime | None = None,
    cancel: threading.Event | None = None,
    node: str | None = None,
    lease_seconds: float = LEASE_SECONDS,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> RunResult:
    """Run ``job`` once under its lease and record the run (see the module's docstring).

    Returns the outcome; a run that could not start (lease held, slot already run) is "skipped"
    with the reason. A failing body gives "failed" with its error; ``cancel`` (set when the
    process shuts down) stops the run at its next batch as "interrupted".
    """
    if isinstance(job, str):
        job = JOBS[job]
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    node = node or node_name()
    lease = _Lease(sessions, clock, job.name, f"{node}/{secrets.token_hex(6)}", lease_seconds)
    claimed = _claim(lease, job, trigger=trigger, dry_run=dry_run, node=node, scheduled_for=scheduled_for)
    if isinstance(claimed, str):
        log.info("%s: skipped", claimed)
        return RunResult(job.name, SKIPPED, trigger, dry_run, reason=claimed)
    run_id = claimed

    def guard() -> None:
        if cancel is not None and cancel.is_set():
            raise JobCancelled("the process is shutting down")
        lease.check()

    run = JobRun(
        sessions,
        instance,
        clock,
        dry_run=dry_run,
        progress=progress or Progress(),
        scheduled_for=scheduled_for,
        guard=guard,
    )
    run.renew = lambda db: lease.renew_in(db, run, run_id)
    heartbeat = _Heartbeat(lease, run, run_id, heartbeat_seconds)
    heartbeat.start()
    log.info("job %s: run %s started (%s%s)", job.name, run_id, trigger, ", dry run" if dry_run else "")
    status, error = FAILED, None
    try:
        job.body(run)
        status = SUCCEEDED
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C on `keycrew jobs run`
        status, error = INTERRUPTED, f"Stopped before the end ({type(exc).__name__})."
        raise
    except (JobCancelled, LeaseLost) as exc:
        status, error = INTERRUPTED, f"Stopped before the end: {exc}."
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.exception("job %s: run %s failed", job.name, run_id)
    finally:
        heartbeat.stop()
        _finish(lease, run_id, run, status, error)
        log.info("job %s: run %s %s: %s", job.name, run_id, status, run.summary())
    return RunResult(
        job.name,
        status,
        trigger,
        dry_run,
        run_id=run_id,
        counts=dict(run.counts),
        notes=list(run.notes),
        error=error,
    )


# -- what the CLI and the admin page show -------------------------------------------------------


@dataclass(frozen=True)
class RunView:
    """A run as shown: its record, with its real status (interrupted when its node died)."""

    record: JobRunRecord
    status: str

    @property
    def summary(self) -> str:
        return summary_of(self.record.counts)


def _leases(db: Session, names: Sequence[str]) -> dict[str, JobLease]:
    return {lease.name: lease for lease in db.scalars(select(JobLease).where(JobLease.name.in_(names)))}


def last_runs(db: Session, names: Sequence[str], now: dt.datetime) -> dict[str, RunView]:
    """The latest run of each of these jobs (those that never ran are absent)."""
    latest = (
        select(func.max(JobRunRecord.id))
        .where(JobRunRecord.job_name.in_(names))
        .group_by(JobRunRecord.job_name)
        .scalar_subquery()
    )
    leases = _leases(db, names)
    return {
        run.job_name: RunView(run, shown_status(run, leases.get(run.job_name), now))
        for run in db.scalars(select(JobRunRecord).where(JobRunRecord.id.in_(latest)))
    }


def recent_runs(db: Session, name: str, now: dt.datetime, limit: int = 20) -> list[RunView]:
    """A job's latest runs, newest first."""
    lease = db.get(JobLease, name)
    rows = db.scalars(
        select(JobRunRecord)
        .where(JobRunRecord.job_name == name)
        .order_by(JobRunRecord.id.desc())
        .limit(limit)
    )
    return [RunView(run, shown_status(run, lease, now)) for run in rows]


def find_run(db: Session, run_id: int, now: dt.datetime) -> RunView | None:
    run = db.get(JobRunRecord, run_id)
    if run is None:
        return None
    return RunView(run, shown_status(run, db.get(JobLease, run.job_name), now))


def request_run(ctx: Ctx, job: Job, *, dry_run: bool) -> None:
    """An admin's "Run now", audited in the caller's transaction: refused (409) while a run of the
    job holds its lease; the caller starts ``run_job`` (trigger manual) once this has committed."""
    lease = ctx.db.get(JobLease, job.name)
    now = ctx.now()
    if lease is not None and lease.holder and lease.lease_until is not None and lease.lease_until >= now:
        node = lease.holder.split("/", 1)[0]
        raise Conflict(f"{job.name} is already running (on {node}); try again when that run has ended.")
    record(
        ctx,
        Event.JOB_RUN_REQUESTED,
        Entity.instance(),
        Target("BackgroundJob", None, job.name),
        dry_run=dry_run or None,
    )
