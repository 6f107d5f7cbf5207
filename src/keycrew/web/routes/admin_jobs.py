"""Web UI: the Admin area's "Background jobs" page: every job with its schedule, next and last run,
its recent runs, a run's notes, and "Run now".

Admins only (in Admin Mode when the instance asks for it), as the rest of the admin area; anyone
else is told the pages do not exist (404).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass

from fastapi import APIRouter, Response

from keycrew.automation.jobs import Job
from keycrew.automation.registry import JOBS
from keycrew.automation.runs import MANUAL, RunView, find_run, last_runs, recent_runs, request_run, run_job
from keycrew.automation.scheduler import Scheduler, next_fire_time
from keycrew.bootstrap import Runtime
from keycrew.context import Ctx
from keycrew.errors import Conflict, NotFound
from keycrew.infra.transactions import after_commit
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.security import Flash

router = APIRouter(prefix="/admin/background_jobs")

log = logging.getLogger("keycrew.jobs")

BASE = "/admin/background_jobs"


def _admin(page: Page) -> Ctx:
    """The request's Ctx, for an admin (in Admin Mode when the instance asks for it: else sent to
    enter it); anyone else is told the page does not exist (as the other admin pages)."""
    page.require_admin_mode()
    if not page.ctx.actor.is_admin:
        raise NotFound("Page")
    return page.ctx


@dataclass(frozen=True)
class JobRow:
    job: Job
    next_run: dt.datetime | None
    last: RunView | None
    running: bool


def _scheduler(runtime: Runtime) -> Scheduler | None:
    for service in runtime.services:
        if isinstance(service, Scheduler):
            return service
    return None


def _job(name: str) -> Job:
    job = JOBS.get(name)
    if job is None:
        raise NotFound("Job")
    return job


def _next_runs(runtime: Runtime, now: dt.datetime) -> dict[str, dt.datetime | None]:
    """When each job runs next: this node's scheduler knows; without one (KEYCREW_JOBS=off here),
    the schedule says when the next slot is (another node or cron may run it)."""
    scheduler = _scheduler(runtime)
    planned = scheduler.next_run_times() if scheduler is not None and scheduler.running else {}
    return {name: planned.get(name) or next_fire_time(job.schedule, now) for name, job in JOBS.items()}


@router.get("")
def jobs_page(page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    now = ctx.now()
    last = last_runs(ctx.db, list(JOBS), now)
    next_runs = _next_runs(page.runtime, now)
    rows = [
        JobRow(
            job,
            next_runs.get(name),
            last.get(name),
            last.get(name) is not None and last[name].status == "running",
        )
        for name, job in JOBS.items()
    ]
    scheduler = _scheduler(page.runtime)
    return page.render(
        "admin/jobs.html",
        title="Background jobs",
        rows=rows,
        scheduler_on=scheduler is not None and scheduler.running,
    )


@router.get("/{name}")
def job_page(name: str, page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    job = _job(name)
    now = ctx.now()
    runs = recent_runs(ctx.db, job.name, now, limit=50)
    return page.render(
        "admin/job.html",
        title=job.name,
        job=job,
        runs=runs,
        next_run=_next_runs(page.runtime, now).get(job.name),
        running=bool(runs) and runs[0].status == "running",
    )


@router.get("/{name}/runs/{run_id}")
def run_page(name: str, run_id: str, page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    job = _job(name)
    valid = run_id.isascii() and run_id.isdigit() and len(run_id) < 10
    found = find_run(ctx.db, int(run_id), ctx.now()) if valid else None
    if found is None or found.record.job_name != job.name:
        raise NotFound("Run")
    return page.render("admin/job_run.html", title=f"{job.name} run {found.record.id}", job=job, run=found)


def _start(runtime: Runtime, job: Job, dry_run: bool) -> None:
    """Run the job in a thread of its own (the page does not wait for it)."""
    scheduler = _scheduler(runtime)
    cancel = scheduler.stopping if scheduler is not None else None

    def work() -> None:
        try:
            result = run_job(
                runtime.sessions,
                runtime.instance,
                runtime.clock,
                job,
                trigger=MANUAL,
                dry_run=dry_run,
                cancel=cancel,
            )
        except Exception:
            log.exception("job %s: the run started from the admin page could not start", job.name)
            return
        if result.reason:
            log.warning(
                "job %s: the run started from the admin page did not run: %s", job.name, result.reason
            )

    threading.Thread(target=work, name=f"keycrew-job-{job.name}", daemon=True).start()


@router.post("/{name}/run")
def run_now(name: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    """Start a run of the job now, in the background (trigger "manual"); its outcome shows on the
    job's page."""
    ctx = _admin(page)
    job = _job(name)
    dry_run = form.flag("dry_run")
    try:
        request_run(ctx, job, dry_run=dry_run)
    except Conflict as exc:
        return page.redirect(f"{BASE}/{job.name}", Flash("alert", str(exc)))
    # The run starts once this request's transaction has ended (on SQLite it waits for it).
    after_commit(ctx.db, lambda: _start(page.runtime, job, dry_run))
    what = "A dry run" if dry_run else "A run"
    return page.notice(f"{BASE}/{job.name}", f"{what} of {job.name} has started. Reload to see its outcome.")
