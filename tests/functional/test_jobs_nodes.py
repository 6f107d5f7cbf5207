"""Background jobs across processes: two servers on one database with their schedulers on run each
slot once and do the work once; `keycrew jobs run` killed with kill -9 mid-run is finished by the
next run, nothing done twice, the killed run shown as interrupted. Both databases.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from keycrew.automation.jobs import Job, JobRun
from keycrew.automation.registry import JOBS
from keycrew.automation.runs import (
    CLI,
    INTERRUPTED,
    RUNNING,
    SCHEDULE,
    SKIPPED,
    SUCCEEDED,
    RunResult,
    find_run,
    run_job,
)
from keycrew.automation.scheduler import Scheduler
from keycrew.instance.jobs import JobRunRecord
from tests.functional.test_jobs import deletions, make_bots, remaining
from tests.support.live import BACKENDS, Factory, LiveServer, start_server, uid
from tests.support.processes import KEYCREW, clean_env


@pytest.fixture(scope="module", params=BACKENDS)
def nodes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[LiveServer]]:
    """Two servers with their schedulers on, on one database."""
    data_dir = Path(tmp_path_factory.mktemp(f"jobs-nodes-{request.param}"))
    first = start_server(request.param, data_dir, jobs="on")
    one = next(first)
    second = start_server(request.param, data_dir, url=one.runtime.settings.sqlalchemy_url, jobs="on")
    two = next(second)
    try:
        yield [one, two]
    finally:
        for started in (second, first):
            with pytest.raises(StopIteration):
                next(started)


def scheduler_of(server: LiveServer) -> Scheduler:
    (scheduler,) = [s for s in server.runtime.services if isinstance(s, Scheduler)]
    return scheduler


def test_both_nodes_schedule_every_job(nodes: list[LiveServer]) -> None:
    for node in nodes:
        scheduler = scheduler_of(node)
        assert scheduler.running
        planned = scheduler.next_run_times()
        assert set(JOBS) <= set(planned)
        assert all(planned[name] is not None for name in JOBS)


def test_two_nodes_run_each_scheduled_slot_once(nodes: list[LiveServer]) -> None:
    name = uid("two-nodes-")
    work: list[tuple[int, dt.datetime | None]] = []
    attempts: list[tuple[int, RunResult]] = []
    lock = threading.Lock()

    def job_for(index: int) -> Job:
        def body(run: JobRun) -> None:
            with run.batch(), lock:
                work.append((index, run.scheduled_for))
            time.sleep(0.3)  # still holding the lease when the other node fires the slot
            run.count("done", 1)

        return Job(name, "* * * * * *", "every second, on both nodes", body)

    schedulers = [scheduler_of(node) for node in nodes]
    for index, scheduler in enumerate(schedulers):
        job = job_for(index)
        fire = scheduler.fire

        def recording(job: Job, slot: dt.datetime | None = None, *, fire=fire, index=index) -> RunResult:  # type: ignore[no-untyped-def]
            result = fire(job, slot)
            with lock:
                attempts.append((index, result))
            return result

        scheduler.fire = recording  # type: ignore[method-assign]
        scheduler.add(job)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len({slot for _, slot in work}) < 4:
            time.sleep(0.1)
    finally:
        for scheduler in schedulers:
            scheduler.remove(name)
            del scheduler.fire  # type: ignore[method-assign]
    time.sleep(1.0)  # the runs in progress end
    slots = [slot for _, slot in work]
    assert len(set(slots)) >= 4
    assert len(slots) == len(set(slots)), (
        f"a slot ran twice: {sorted(s for s in slots if slots.count(s) > 1)}"
    )
    with nodes[0].runtime.sessions() as db:
        rows = list(db.scalars(select(JobRunRecord).where(JobRunRecord.job_name == name)))
    assert sorted(r.scheduled_for for r in rows if r.status == SUCCEEDED) == sorted(s for s in slots if s)
    assert {r.trigger for r in rows} == {SCHEDULE}
    # Both nodes fired (nearly) every slot; for each slot one ran it and the other skipped it.
    by_node = {index: [r for i, r in attempts if i == index] for index in (0, 1)}
    assert by_node[0]
    assert by_node[1]
    assert any(r.status == SKIPPED for _, r in attempts)
    assert all(r.status in (SUCCEEDED, SKIPPED) for _, r in attempts)


def test_two_nodes_firing_one_slot_delete_each_bot_once(nodes: list[LiveServer]) -> None:
    first = nodes[0]
    project = Factory(first).project()
    bots = make_bots(first.runtime.sessions, project["id"], 120)
    slot = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=3650)
    job = JOBS["delete-inactive-bots"]
    barrier = threading.Barrier(2)
    results: list[RunResult] = []

    def fire(node: LiveServer) -> None:
        barrier.wait(10)
        results.append(scheduler_of(node).fire(job, slot))

    threads = [threading.Thread(target=fire, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(r.status for r in results) == [SKIPPED, SUCCEEDED]
    assert remaining(first.runtime.sessions, bots) == 0
    assert deletions(first.runtime.sessions, bots) == dict.fromkeys(bots, 1)
    with first.runtime.sessions() as db:
        runs = list(
            db.scalars(
                select(JobRunRecord).where(
                    JobRunRecord.job_name == job.name, JobRunRecord.scheduled_for == slot
                )
            )
        )
    assert len(runs) == 1
    assert runs[0].counts["deleted"] >= 120


# -- kill -9 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def lone(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server of its own (its database is the kill -9 test's alone)."""
    yield from start_server(request.param, Path(tmp_path_factory.mktemp(f"jobs-kill-{request.param}")))


@pytest.mark.slow
def test_kill_9_mid_run_then_the_next_run_finishes_the_work_once(
    lone: LiveServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    request.addfinalizer(lone.clock.reset)
    sessions = lone.runtime.sessions
    project = Factory(lone).project()
    count = 400
    bots = make_bots(sessions, project["id"], count)
    env = clean_env(lone.data_dir, KEYCREW_DATABASE_URL=lone.runtime.settings.sqlalchemy_url)
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [*KEYCREW, "jobs", "run", "delete-inactive-bots"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        left = count
        # Kill it once two batches have committed (a batch is 50 bots), well before the end.
        while time.monotonic() < deadline and proc.poll() is None:
            left = remaining(sessions, bots)
            if left <= count - 100:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed:\n{stderr.read_text()}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    left = remaining(sessions, bots)
    assert 0 < left < count
    with sessions() as db:
        (killed,) = db.scalars(
            select(JobRunRecord).where(
                JobRunRecord.job_name == "delete-inactive-bots", JobRunRecord.trigger == CLI
            )
        ).all()
        killed_id = killed.id
        assert killed.status == RUNNING
        assert killed.finished_at is None
        # Its lease has not lapsed yet: the run may still be alive as far as anyone can tell.
        assert find_run(db, killed_id, lone.clock.now()).status == RUNNING  # type: ignore[union-attr]
    held = run_job(sessions, lone.runtime.instance, lone.clock, "delete-inactive-bots", trigger=CLI)
    assert held.status == SKIPPED
    # A minute later (the lease lapsed: nobody renews it), the run shows as interrupted ...
    lone.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    with sessions() as db:
        assert find_run(db, killed_id, lone.clock.now()).status == INTERRUPTED  # type: ignore[union-attr]
    # ... and the next run finishes the work.
    again = run_job(sessions, lone.runtime.instance, lone.clock, "delete-inactive-bots", trigger=CLI)
    assert again.status == SUCCEEDED, again.error
    assert again.counts["deleted"] == left
    assert remaining(sessions, bots) == 0
    # Every bot deleted exactly once.
    assert deletions(sessions, bots) == dict.fromkeys(bots, 1)
    with sessions() as db:
        killed_row = db.get(JobRunRecord, killed_id)
        assert killed_row is not None
        assert killed_row.status == INTERRUPTED
        assert killed_row.error
