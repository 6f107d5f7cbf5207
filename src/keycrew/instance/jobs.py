"""The tables of the background jobs: one row per run (``job_runs``) and one lease per job
(``job_leases``), shared by every node on the database.

The rules that use them (taking and renewing a lease, recording a run) are in
``keycrew.automation.runs``; the models live here, below ``keycrew.migrations``, which must know
every table but may not import ``keycrew.automation`` (both sit on one layer).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, JSONDict, JSONList, UTCDateTime

# A run's status.
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
# Stopped before its end: its node died (kill -9, power loss: the lease lapsed) or shut down.
INTERRUPTED = "interrupted"

# What started a run.
SCHEDULE = "schedule"
MANUAL = "manual"  # "Run now" on the admin page
CLI = "cli"  # `keycrew jobs run`
TRIGGERS = (SCHEDULE, MANUAL, CLI)


class JobRunRecord(Base):
    """One run of a job, from its start (status running) to its end, with what it did."""

    __tablename__ = "job_runs"
    __table_args__ = (
        # A scheduled slot runs once, whichever node fires it first (NULL for manual and CLI runs,
        # which never collide: NULLs are distinct on SQLite and PostgreSQL).
        UniqueConstraint("job_name", "scheduled_for"),
        Index("ix_job_runs_job_name_id", "job_name", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_name: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who ran it: "hostname:pid".
    node: Mapped[str] = mapped_column(String(255))
    scheduled_for: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), index=True)
    # {"deleted": 3, "kept": 12}: complete at the end, as of the last heartbeat while it runs.
    counts: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # What it did, one line each ("deleted bot @x"); at most MAX_NOTES lines.
    notes: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    error: Mapped[str | None] = mapped_column(Text)


class JobLease(Base):
    """Who may run a job now: the holder until ``lease_until``, renewed while the run works.

    Taken by a conditional UPDATE (free, or lapsed), so that of several nodes on one database
    exactly one runs a given job at a time; a node that dies stops renewing and the lease lapses.
    """

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # "hostname:pid/nonce" of the run holding it; NULL when free.
    holder: Mapped[str | None] = mapped_column(String(255))
    run_id: Mapped[int | None] = mapped_column(Integer)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
