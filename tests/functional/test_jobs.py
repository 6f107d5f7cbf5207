"""The background jobs framework: run records, the lease, dry runs, the scheduler, and the
delete-inactive-bots job walking every bot (not only the first 1,000). Both databases.

Two nodes on one database and kill -9 are in test_jobs_nodes.py.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from keycrew.audit.events import Event
from keycrew.audit.models import AuditEvent
from keycrew.automation.jobs import Job, JobRun
from keycrew.automation.registry import JOBS
from keycrew.automation.runs import (
    CLI,
    FAILED,
    INTERRUPTED,
    MANUAL,
    RUN_HISTORY,
    RUNNING,
    SCHEDULE,
    SKIPPED,
    SUCCEEDED,
    RunResult,
    find_run,
    last_runs,
    recent_runs,
    run_job,
)
from keycrew.automation.scheduler import Scheduler, cron_trigger, current_slot, next_fire_time
from keycrew.bootstrap import Runtime, build
from keycrew.config import Settings
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.instance.jobs import JobLease, JobRunRecord
from keycrew.tokens.models import PersonalAccessToken
from tests.support.live import Factory, LiveServer, uid

# -- helpers shared with test_jobs_nodes.py -----------------------------------------------------


def make_bots(
    sessions: sessionmaker[Session],
    project_id: int,
    count: int,
    *,
    inactive_days: int = 40,
    active: bool = False,
    now: dt.datetime | None = None,
) -> list[int]:
    """``count`` project bots of ``project_id``, each with one token revoked ``inactive_days`` ago
    (deletable by the cleanup when more than 30), or ``active`` (never deleted), inserted in bulk:
    ids in creation order."""
    now = now or dt.datetime.now(dt.UTC)
    revoked_at = now - dt.timedelta(days=inactive_days)
    tag = secrets.token_hex(4)
    names = [f"project_{project_id}_bot_{tag}{i:06d}" for i in range(count)]
    with sessions() as db:
        db.execute(
            insert(User),
            [
                {
                    "username": name,
                    "username_lower": name,
                    "name": "bulk bot",
                    "email": f"{name}@noreply.example.com",
                    "user_type": int(UserType.PROJECT_BOT),
                    "bot_resource_type": "Project",
                    "bot_resource_id": project_id,
                    "can_create_group": False,
                    "projects_limit": 0,
                    "created_at": revoked_at,
                    "updated_at": revoked_at,
                }
                for name in names
            ],
        )
        ids = dict(db.execute(select(User.username, User.id).where(User.username.in_(names))).all())
        db.execute(
            insert(PersonalAccessToken),
            [
                {
                    "user_id": ids[name],
                    "name": "bulk token",
                    "token_digest": secrets.token_hex(32),
                    "scopes": ["api"],
                    "revoked": not active,
                    "revoked_at": None if active else revoked_at,
                    "expires_at": (now + dt.timedelta(days=300)).date(),
                    "created_at": revoked_at - dt.timedelta(days=1),
                    "updated_at": revoked_at,
                }
                for name in names
            ],
        )
        db.commit()
    return [ids[name] for name in names]


def drop_bots(sessions: sessionmaker[Session], ids: list[int]) -> None:
    """Remove bots made by ``make_bots`` that are still there (rows only, as they were made)."""
    with sessions() as db:
        db.execute(delete(PersonalAccessToken).where(PersonalAccessToken.user_id.in_(ids)))
        db.execute(delete(User).where(User.id.in_(ids)))
        db.commit()


def remaining(sessions: sessionmaker[Session], ids: list[int]) -> int:
    with sessions() as db:
        # A reader on SQLite: it never waits for a job's write lock (WAL), and starves nobody.
        db.connection(execution_options={"sqlite_begin": "DEFERRED"})
        return int(db.scalar(select(func.count()).select_from(User).where(User.id.in_(ids))) or 0)


def deletions(sessions: sessionmaker[Session], ids: list[int]) -> dict[int, int]:
    """How many user.deleted audit events each of these users has."""
    with sessions() as db:
        db.connection(execution_options={"sqlite_begin": "DEFERRED"})
        rows = db.execute(
            select(AuditEvent.target_id, func.count())
            .where(AuditEvent.event_name == Event.USER_DELETED.value, AuditEvent.target_id.in_(ids))
            .group_by(AuditEvent.target_id)
        )
        return {int(target): int(n) for target, n in rows if target is not None}


def run(runtime: Runtime, job: Job | str, *, trigger: str, dry_run: bool = False) -> RunResult:
    return run_job(runtime.sessions, runtime.instance, runtime.clock, job, trigger=trigger, dry_run=dry_run)


def record_of(runtime: Runtime, run_id: int | None) -> JobRunRecord:
    assert run_id is not None
    with runtime.sessions() as db:
        found = db.get(JobRunRecord, run_id)
        assert found is not None
        return found


def counting_job(body: object = None, schedule: str = "0 0 * * *") -> Job:
    """A job of the test's own (a unique name: leases and runs are kept per name)."""

    def default(run: JobRun) -> None:
        with run.batch():
            run.count("looked", 3)
            run.note("looked at three things")

    return Job(uid("test-job-"), schedule, "a test job", body or default)  # type: ignore[arg-type]


# -- run records --------------------------------------------------------------------------------


def test_a_run_is_recorded_with_its_counts_and_notes(server: LiveServer) -> None:
    job = counting_job()
    result = run_job(server.runtime.sessions, server.runtime.instance, server.clock, job, trigger=CLI)
    assert result.status == SUCCEEDED
    assert result.summary == "looked 3"
    row = record_of(server.runtime, result.run_id)
    assert (row.job_name, row.trigger, row.status, row.dry_run) == (job.name, CLI, SUCCEEDED, False)
    assert row.counts == {"looked": 3}
    assert row.notes == ["looked at three things"]
    assert row.finished_at is not None
    assert row.finished_at >= row.started_at
    assert row.node.rsplit(":", 1)[1].isdigit()  # hostname:pid
    assert row.error is None
    # The lease is free again.
    with server.runtime.sessions() as db:
        lease = db.get(JobLease, job.name)
        assert lease is not None
        assert lease.holder is None


def test_runs_older_than_the_history_are_forgotten_when_the_job_runs_again(server: LiveServer) -> None:
    job, other = counting_job(), counting_job()
    kept = run(server.runtime, job, trigger=CLI).run_id
    theirs = run(server.runtime, other, trigger=CLI).run_id
    with server.runtime.sessions() as db:
        db.execute(
            update(JobRunRecord)
            .where(JobRunRecord.id.in_([kept, theirs]))
            .values(started_at=server.clock.now() - RUN_HISTORY - dt.timedelta(minutes=1))
        )
        db.commit()
    recent = run(server.runtime, job, trigger=CLI).run_id
    with server.runtime.sessions() as db:
        left = set(db.scalars(select(JobRunRecord.id).where(JobRunRecord.id.in_([kept, theirs, recent]))))
    # The job's own old run is gone; another job's old run waits for that job's next run.
    assert left == {theirs, recent}


def test_a_failing_body_ends_its_run_as_failed_with_the_error(server: LiveServer) -> None:
    def body(run: JobRun) -> None:
        run.count("done", 1)
        raise RuntimeError("the frobnicator is out of order")

    job = counting_job(body)
    result = run_job(server.runtime.sessions, server.runtime.instance, server.clock, job, trigger=MANUAL)
    assert result.status == FAILED
    row = record_of(server.runtime, result.run_id)
    assert row.status == FAILED
    assert row.error == "RuntimeError: the frobnicator is out of order"
    assert row.counts == {"done": 1}
    # The next run may start: the lease was released.
    again = run_job(server.runtime.sessions, server.runtime.instance, server.clock, job, trigger=MANUAL)
    assert again.status == FAILED
    assert again.run_id != result.run_id


def test_a_job_runs_once_at_a_time_a_second_run_is_skipped(server: LiveServer) -> None:
    started, release = threading.Event(), threading.Event()

    def body(run: JobRun) -> None:
        with run.batch():
            run.count("done", 1)
        started.set()
        assert release.wait(30)

    job = counting_job(body)
    results: list[RunResult] = []
    first = threading.Thread(
        target=lambda: results.append(
            run_job(server.runtime.sessions, server.runtime.instance, server.clock, job, trigger=MANUAL)
        )
    )
    first.start()
    try:
        assert started.wait(30)
        second = run_job(server.runtime.sessions, server.runtime.instance, server.clock, job, trigger=CLI)
        assert second.status == SKIPPED
        assert second.run_id is None
        assert second.reason is not None
        assert "already running on" in second.reason
        with server.runtime.sessions() as db:
            runs = recent_runs(db, job.name, server.clock.now())
            assert [r.status for r in runs] == [RUNNING]
            assert last_runs(db, [job.name], server.clock.now())[job.name].status == RUNNING
    finally:
        release.set()
        first.join(30)
    (done,) = results
    assert done.status == SUCCEEDED
    with server.runtime.sessions() as db:
        assert [r.status for r in recent_runs(db, job.name, server.clock.now())] == [SUCCEEDED]


def test_a_scheduled_slot_runs_once(server: LiveServer) -> None:
    job = counting_job()
    slot = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)
    sessions, instance = server.runtime.sessions, server.runtime.instance
    first = run_job(sessions, instance, server.clock, job, trigger=SCHEDULE, scheduled_for=slot)
    second = run_job(sessions, instance, server.clock, job, trigger=SCHEDULE, scheduled_for=slot)
    assert first.status == SUCCEEDED
    assert second.status == SKIPPED
    assert second.reason is not None
    assert "already ran for" in second.reason
    later = run_job(
        sessions, instance, server.clock, job, trigger=SCHEDULE, scheduled_for=slot + dt.timedelta(days=1)
    )
    assert later.status == SUCCEEDED
    assert record_of(server.runtime, first.run_id).scheduled_for == slot


def test_a_run_left_running_by_a_dead_node_shows_as_interrupted(server: LiveServer) -> None:
    job = counting_job()
    now = server.clock.now()
    with server.runtime.sessions() as db:
        dead = JobRunRecord(
            job_name=job.name,
            trigger=SCHEDULE,
            dry_run=False,
            node="gone-host:4242",
            started_at=now - dt.timedelta(minutes=5),
            status=RUNNING,
            counts={"deleted": 7},
            notes=[],
        )
        db.add(dead)
        db.flush()
        db.add(
            JobLease(
                name=job.name,
                holder="gone-host:4242/abc",
                run_id=dead.id,
                lease_until=now + dt.timedelta(seconds=30),
                heartbeat_at=now - dt.timedelta(seconds=30),
            )
        )
        db.commit()
        dead_id = dead.id
    with server.runtime.sessions() as db:
        # The lease still runs: the run may be alive (a node busy), nothing else may start.
        assert find_run(db, dead_id, server.clock.now()).status == RUNNING  # type: ignore[union-attr]
    skipped = run_job(server.runtime.sessions, server.runtime.instance, server.clock, job, trigger=CLI)
    assert skipped.status == SKIPPED
    assert "gone-host:4242" in (skipped.reason or "")
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    with server.runtime.sessions() as db:
        assert find_run(db, dead_id, server.clock.now()).status == INTERRUPTED  # type: ignore[union-attr]
    taken = run_job(server.runtime.sessions, server.runtime.instance, server.clock, job, trigger=CLI)
    assert taken.status == SUCCEEDED
    dead_row = record_of(server.runtime, dead_id)
    assert dead_row.status == INTERRUPTED
    assert dead_row.counts == {"deleted": 7}


def test_cancel_stops_a_run_at_its_next_batch(server: LiveServer) -> None:
    cancel = threading.Event()

    def body(run: JobRun) -> None:
        for _ in range(5):
            with run.batch():
                run.count("batches", 1)
            cancel.set()

    job = counting_job(body)
    result = run_job(
        server.runtime.sessions, server.runtime.instance, server.clock, job, trigger=SCHEDULE, cancel=cancel
    )
    assert result.status == INTERRUPTED
    assert result.counts == {"batches": 1}
    row = record_of(server.runtime, result.run_id)
    assert row.status == INTERRUPTED
    assert row.finished_at is not None
    assert "shutting down" in (row.error or "")


def test_the_heartbeat_saves_the_counts_so_far_and_renews_the_lease(server: LiveServer) -> None:
    progressed, release = threading.Event(), threading.Event()

    def body(run: JobRun) -> None:
        with run.batch():
            run.count("done", 2)
        progressed.set()
        assert release.wait(30)

    job = counting_job(body)
    results: list[RunResult] = []
    worker = threading.Thread(
        target=lambda: results.append(
            run_job(
                server.runtime.sessions,
                server.runtime.instance,
                server.clock,
                job,
                trigger=MANUAL,
                heartbeat_seconds=0.05,
            )
        )
    )
    worker.start()
    try:
        assert progressed.wait(30)
        deadline = time.monotonic() + 20
        seen: dict[str, object] = {}
        while time.monotonic() < deadline:
            with server.runtime.sessions() as db:
                row = db.scalars(select(JobRunRecord).where(JobRunRecord.job_name == job.name)).one()
                lease = db.get(JobLease, job.name)
                assert lease is not None
                assert lease.run_id == row.id
                seen = dict(row.counts)
                if seen == {"done": 2} and lease.heartbeat_at and lease.heartbeat_at > row.started_at:
                    break
            time.sleep(0.05)
        assert seen == {"done": 2}
    finally:
        release.set()
        worker.join(30)


# -- dry runs and delete-inactive-bots ------------------------------------------------------------


def test_a_dry_run_reports_what_it_would_do_and_changes_nothing(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    (bot,) = make_bots(server.runtime.sessions, project["id"], 1)
    with server.runtime.sessions() as db:
        username = db.get(User, bot).username  # type: ignore[union-attr]
    dry = run(server.runtime, "delete-inactive-bots", trigger=CLI, dry_run=True)
    assert dry.status == SUCCEEDED
    assert f"deleted bot @{username} (project {project['path_with_namespace']})" in dry.notes
    assert remaining(server.runtime.sessions, [bot]) == 1
    assert deletions(server.runtime.sessions, [bot]) == {}
    row = record_of(server.runtime, dry.run_id)
    assert row.dry_run is True
    assert row.status == SUCCEEDED
    real = run(server.runtime, "delete-inactive-bots", trigger=CLI)
    assert real.status == SUCCEEDED
    assert remaining(server.runtime.sessions, [bot]) == 0
    assert deletions(server.runtime.sessions, [bot]) == {bot: 1}


def test_delete_inactive_bots_walks_past_the_first_thousand_bots(
    server: LiveServer, factory: Factory
) -> None:
    project = factory.project()
    # 1,000 bots that stay (their tokens are active), then the ones to delete: beyond the first
    # 1,000 bots of the instance, whatever other tests made before.
    keepers = make_bots(server.runtime.sessions, project["id"], 1000, active=True)
    try:
        stale = make_bots(server.runtime.sessions, project["id"], 5)
        fresh = make_bots(server.runtime.sessions, project["id"], 2, inactive_days=2)
        with server.runtime.sessions() as db:
            bots_before = db.scalar(
                select(func.count())
                .select_from(User)
                .where(User.user_type == int(UserType.PROJECT_BOT), User.id < stale[0])
            )
            last_name = db.get(User, stale[-1]).username  # type: ignore[union-attr]
        assert (bots_before or 0) >= 1000
        result = run(server.runtime, "delete-inactive-bots", trigger=MANUAL)
        assert result.status == SUCCEEDED, result.error
        assert remaining(server.runtime.sessions, stale) == 0
        assert remaining(server.runtime.sessions, fresh) == 2
        assert remaining(server.runtime.sessions, keepers) == 1000
        assert deletions(server.runtime.sessions, stale) == dict.fromkeys(stale, 1)
        counts = result.counts
        assert counts["deleted"] >= 5
        assert counts["kept"] >= 1002
        row = record_of(server.runtime, result.run_id)
        assert row.counts == counts
        assert f"deleted bot @{last_name} (project {project['path_with_namespace']})" in row.notes
        with server.runtime.sessions() as db:
            # Deleted by GitLab Admin Bot, with GitLab's reason.
            event = db.scalars(
                select(AuditEvent).where(
                    AuditEvent.event_name == Event.USER_DELETED.value, AuditEvent.target_id == stale[-1]
                )
            ).one()
            assert event.author_name.startswith("GitLab-Admin-Bot")
            assert "No active token assigned" in str(event.details)
    finally:
        drop_bots(server.runtime.sessions, keepers)


# -- the scheduler --------------------------------------------------------------------------------


def test_cron_schedules_are_utc_and_crontab_weekdays() -> None:
    monday = dt.datetime(2026, 12, 7, 0, 30, tzinfo=dt.UTC)  # a Monday
    assert monday.weekday() == 0
    assert next_fire_time("0 0 * * *", monday) == dt.datetime(2026, 12, 8, 0, 0, tzinfo=dt.UTC)
    assert next_fire_time("21,42 0-4 * * *", monday) == dt.datetime(2026, 12, 7, 0, 42, tzinfo=dt.UTC)
    # crontab's 0 is Sunday (APScheduler 3's own 0 would be Monday).
    assert next_fire_time("0 3 * * 0", monday) == dt.datetime(2026, 12, 13, 3, 0, tzinfo=dt.UTC)
    assert next_fire_time("0 3 * * 1-5", monday) == dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)
    assert next_fire_time("*/5 * * * * *", monday) == monday
    assert current_slot("*/10 * * * *", dt.datetime(2026, 12, 7, 1, 23, 4, tzinfo=dt.UTC)) == dt.datetime(
        2026, 12, 7, 1, 20, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError):
        cron_trigger("every day")
    # Every registered job has a valid schedule.
    for job in JOBS.values():
        assert next_fire_time(job.schedule, monday) is not None, job.name
    assert JOBS["delete-inactive-bots"].schedule == "0 0 * * *"


def test_the_scheduler_runs_a_job_on_its_schedule(server: LiveServer) -> None:
    job = counting_job(schedule="* * * * * *")  # every second
    scheduler = Scheduler(server.runtime.sessions, server.runtime.instance, server.clock, jobs=[job])
    scheduler.start()
    try:
        assert job.name in scheduler.next_run_times()
        deadline = time.monotonic() + 20
        rows: list[JobRunRecord] = []
        while time.monotonic() < deadline and len(rows) < 2:
            with server.runtime.sessions() as db:
                rows = list(
                    db.scalars(
                        select(JobRunRecord).where(
                            JobRunRecord.job_name == job.name, JobRunRecord.status == SUCCEEDED
                        )
                    )
                )
            time.sleep(0.1)
    finally:
        scheduler.stop()
    assert len(rows) >= 2
    assert all(r.trigger == SCHEDULE and r.scheduled_for is not None for r in rows)
    assert all(r.scheduled_for is not None and r.scheduled_for.microsecond == 0 for r in rows)
    assert len({r.scheduled_for for r in rows}) == len(rows)
    assert not scheduler.running


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.mark.parametrize("jobs", ["on", "off"])
def test_keycrew_jobs_off_runs_no_scheduler(data_dir: Path, jobs: str) -> None:
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'k.sqlite3'}", jobs=jobs)  # type: ignore[arg-type]
    runtime = build(settings)
    try:
        schedulers = [s for s in runtime.services if isinstance(s, Scheduler)]
        assert len(schedulers) == (1 if jobs == "on" else 0)
        if schedulers:
            assert set(schedulers[0].jobs) == set(JOBS)
    finally:
        runtime.engine.dispose()


def test_the_session_server_runs_no_scheduled_job(server: LiveServer) -> None:
    """Test servers run with KEYCREW_JOBS=off: no scheduler service, and no run by schedule."""
    assert server.runtime.settings.jobs == "off"
    assert not [s for s in server.runtime.services if isinstance(s, Scheduler)]
    with server.runtime.sessions() as db:
        scheduled = db.scalars(
            select(JobRunRecord).where(
                JobRunRecord.trigger == SCHEDULE, JobRunRecord.job_name.in_(list(JOBS))
            )
        ).all()
    assert scheduled == []


def test_an_unknown_trigger_is_refused(server: LiveServer) -> None:
    with pytest.raises(ValueError):
        run_job(
            server.runtime.sessions, server.runtime.instance, server.clock, counting_job(), trigger="cron"
        )


def test_a_batch_commits_only_while_the_run_holds_its_lease(server: LiveServer) -> None:
    """A run whose lease another run took over (its node was cut off for longer than the lease)
    stops at its next batch without committing it: two runs never both commit work."""
    marker = uid("marker-")

    def body(run: JobRun) -> None:
        with run.batch():
            run.count("first", 1)
        with server.runtime.sessions() as db:  # another node takes the lapsed lease over
            db.execute(update(JobLease).where(JobLease.name == job.name).values(holder="thief:1/x"))
            db.commit()
        with run.batch() as ctx:
            ctx.db.add(JobLease(name=marker, holder=None))
        run.count("second", 1)

    job = counting_job(body)
    result = run_job(server.runtime.sessions, server.runtime.instance, server.clock, job, trigger=CLI)
    assert result.status == INTERRUPTED
    assert result.counts == {"first": 1}
    assert "taken over" in (result.error or "")
    with server.runtime.sessions() as db:
        assert db.get(JobLease, marker) is None  # the second batch was rolled back
        lease = db.get(JobLease, job.name)
        assert lease is not None
        assert lease.holder == "thief:1/x"  # the run's end does not free a lease it lost
