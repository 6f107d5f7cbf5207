"""The scheduler inside `keycrew serve`: each job on its cron schedule (UTC), through ``run_job``.

Built on APScheduler 3 (``BackgroundScheduler`` with a ``CronTrigger`` per job): a well-kept
library that parses cron expressions, computes fire times across months and DST-free UTC, and
handles misfires (a slot missed while the process was busy or asleep runs once, late, within
``MISFIRE_GRACE_SECONDS``; several missed slots coalesce into one). APScheduler's own job store
stays in memory: what must be shared between nodes (who runs a job now, which slot ran) is in
the database, in the job's lease and its run records (keycrew.automation.runs). So every node,
and every worker process of a node, may run the scheduler: for each slot the first to take the
lease runs the job, the others skip it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Iterable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.orm import Session, sessionmaker

from keycrew.automation.jobs import Job
from keycrew.automation.registry import JOBS
from keycrew.automation.runs import SCHEDULE, RunResult, run_job
from keycrew.clock import Clock
from keycrew.context import Instance

log = logging.getLogger("keycrew.jobs")

# A slot fired this late (the process was busy or suspended) still runs; later ones are dropped.
MISFIRE_GRACE_SECONDS = 300
# How many jobs may run at once in one process (each job itself runs at most once at a time).
WORKERS = 4

_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekday_field(value: str) -> str:
    """crontab's weekday numbers (0 and 7 Sunday) as names: APScheduler 3 counts from Monday."""
    parts: list[str] = []
    for part in value.split(","):
        if re.fullmatch(r"[0-7]", part):
            parts.append(_WEEKDAYS[int(part) % 7])
        elif match := re.fullmatch(r"([0-7])-([0-7])", part):
            first, last = int(match[1]), int(match[2])
            parts.extend(_WEEKDAYS[day % 7] for day in range(first, last + 1))
        else:
            parts.append(part)
    return ",".join(dict.fromkeys(parts))


def cron_trigger(schedule: str) -> CronTrigger:
    """A cron expression in UTC: five fields (minute hour day month weekday, as crontab and
    GitLab's cron jobs), or six with seconds first (for finer schedules, and tests)."""
    fields = schedule.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ValueError(f"{schedule!r} is not a cron expression (5 or 6 fields)")
    second, minute, hour, day, month, weekday = fields
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekday_field(weekday),
        timezone=dt.UTC,
    )


def next_fire_time(schedule: str, after: dt.datetime) -> dt.datetime | None:
    """When a schedule fires next at or after ``after`` (UTC)."""
    fire = cron_trigger(schedule).get_next_fire_time(None, after)
    return None if fire is None else fire.astimezone(dt.UTC)


def current_slot(schedule: str, now: dt.datetime) -> dt.datetime:
    """The slot a firing at ``now`` is for: the schedule's latest fire time not after ``now``
    (looking back at most the misfire grace), so that every node firing one slot names it alike."""
    trigger = cron_trigger(schedule)
    start = now - dt.timedelta(seconds=MISFIRE_GRACE_SECONDS)
    slot: dt.datetime | None = None
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= now:
        slot = fire
        fire = trigger.get_next_fire_time(fire, fire + dt.timedelta(seconds=1))
    return (slot or now.replace(microsecond=0)).astimezone(dt.UTC)


class Scheduler:
    """A Runtime service: started with the server, runs each job on its schedule until stopped."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        instance: Instance,
        clock: Clock,
        jobs: Iterable[Job] | None = None,
        *,
        wake_on_start: Iterable[str] = (),
    ) -> None:
        self.sessions = sessions
        # Jobs run once as soon as the scheduler starts (work a stopped or killed process left
        # half done resumes now, not at the next slot).
        self.wake_on_start = tuple(wake_on_start)
        self.instance = instance
        self.clock = clock
        self.jobs: dict[str, Job] = {job.name: job for job in (JOBS.values() if jobs is None else jobs)}
        self.stopping = threading.Event()
        # fire_soon's bookkeeping: the jobs it is running now, and those woken again meanwhile.
        self._soon_lock = threading.Lock()
        self._soon_busy: set[str] = set()
        self._soon_again: set[str] = set()
        self._soon_threads: list[threading.Thread] = []
        # APScheduler logs every firing at INFO; keycrew logs each run's start and outcome itself.
        for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        self._scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(WORKERS)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_SECONDS,
            },
            timezone=dt.UTC,
        )

    def add(self, job: Job) -> None:
        """Schedule ``job`` (also after start; a job of the same name is replaced)."""
        self.jobs[job.name] = job
        self._scheduler.add_job(
            self.fire,
            trigger=cron_trigger(job.schedule),
            args=[job],
            id=job.name,
            name=job.name,
            replace_existing=True,
        )

    def remove(self, name: str) -> None:
        """Stop scheduling the job ``name`` (a run in progress goes on)."""
        self.jobs.pop(name, None)
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)

    def fire(self, job: Job, slot: dt.datetime | None = None) -> RunResult:
        """What the scheduler calls at each slot of ``job``: one run under its lease (skipped when
        another process runs the job or already ran this slot). Never raises."""
        if slot is None:
            slot = current_slot(job.schedule, dt.datetime.now(dt.UTC))
        try:
            return run_job(
                self.sessions,
                self.instance,
                self.clock,
                job,
                trigger=SCHEDULE,
                scheduled_for=slot,
                cancel=self.stopping,
            )
        except Exception as exc:  # the database is down: the next slot tries again
            log.exception("job %s: the scheduled run for %s could not start", job.name, slot)
            return RunResult(job.name, "failed", SCHEDULE, error=f"{type(exc).__name__}: {exc}")

    def fire_soon(self, name: str) -> None:
        """Run the job ``name`` once now in a thread of its own, not at its next slot (new
        work arrived: a direct transfer was created). A wake while the job runs through this method
        runs it once more afterwards, so that work committed after the run's last look is not left
        for the next slot; a run elsewhere (its lease held) makes this one a skip. Never raises."""
        job = self.jobs.get(name)
        if job is None or not self._scheduler.running or self.stopping.is_set():
            return
        with self._soon_lock:
            if name in self._soon_busy:
                self._soon_again.add(name)
                return
            self._soon_busy.add(name)
        # Not through APScheduler's job store: a one-off job there races its own removal with a
        # shutdown (JobLookupError in the scheduler's thread when a server stops as it starts).
        thread = threading.Thread(target=self._run_soon, args=[job], name=f"keycrew-wake-{name}", daemon=True)
        with self._soon_lock:
            self._soon_threads = [t for t in self._soon_threads if t.is_alive()] + [thread]
        thread.start()

    def _run_soon(self, job: Job) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    # No slot: a wake is not one of the schedule's slots, which stay the schedule's.
                    run_job(
                        self.sessions, self.instance, self.clock, job, trigger=SCHEDULE, cancel=self.stopping
                    )
                except Exception:
                    log.exception("job %s: the run on wake could not start", job.name)
                with self._soon_lock:
                    if job.name not in self._soon_again:
                        self._soon_busy.discard(job.name)
                        return
                    self._soon_again.discard(job.name)
        finally:
            with self._soon_lock:
                self._soon_busy.discard(job.name)
                self._soon_again.discard(job.name)

    def next_run_times(self) -> dict[str, dt.datetime | None]:
        """When each job runs next (None before start or for a paused job)."""
        times: dict[str, dt.datetime | None] = {}
        for scheduled in self._scheduler.get_jobs():
            fire = getattr(scheduled, "next_run_time", None)
            times[scheduled.id] = None if fire is None else fire.astimezone(dt.UTC)
        return times

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        for job in list(self.jobs.values()):
            self.add(job)
        self.stopping.clear()
        self._scheduler.start()
        for name in self.wake_on_start:
            self.fire_soon(name)
        log.info("scheduler started: %s", ", ".join(f"{j.name} ({j.schedule})" for j in self.jobs.values()))

    def stop(self) -> None:
        """Stop firing; a run in progress stops at its next batch (recorded as interrupted)."""
        if not self._scheduler.running:
            return
        self.stopping.set()
        self._scheduler.shutdown(wait=True)
        with self._soon_lock:
            woken = list(self._soon_threads)
        for thread in woken:  # a run on wake stops at its next batch, as the scheduled ones
            thread.join(timeout=30)
