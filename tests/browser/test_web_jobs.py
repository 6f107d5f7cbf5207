"""The Admin area's "Background jobs": every job with its schedule, next and last run; "Run now"
(and a dry run) that runs the job in the background; a job's recent runs and a run's notes.

Headless Chromium as root; the checks a browser cannot make (a non-admin's 404s, a post without
its CSRF token, Admin Mode) use requests against the same live server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from keycrew.automation.registry import JOBS
from keycrew.automation.runs import MANUAL, SUCCEEDED
from keycrew.identity.models import User
from keycrew.instance.jobs import JobRunRecord
from tests.browser.pages import csrf_of, session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.functional.test_jobs import make_bots, remaining
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer

PASSWORD = "a-long-password-1"
JOB = "delete-inactive-bots"


def _runs(server: LiveServer, after_id: int) -> list[JobRunRecord]:
    with server.runtime.sessions() as db:
        db.connection(execution_options={"sqlite_begin": "DEFERRED"})
        return list(
            db.scalars(
                select(JobRunRecord)
                .where(JobRunRecord.job_name == JOB, JobRunRecord.id > after_id)
                .order_by(JobRunRecord.id)
            )
        )


def _last_run_id(server: LiveServer) -> int:
    runs = _runs(server, 0)
    return runs[-1].id if runs else 0


def _finished(server: LiveServer, after_id: int) -> JobRunRecord:
    """The first run of the job after ``after_id`` once it has ended (the page runs it in a thread)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        runs = _runs(server, after_id)
        if runs and runs[0].finished_at is not None:
            return runs[0]
        time.sleep(0.05)
    raise AssertionError(f"no finished run of {JOB} after run {after_id}")


def test_an_admin_runs_a_job_now_and_reads_what_it_did(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    project = factory.project()
    (bot,) = make_bots(server.runtime.sessions, project["id"], 1)
    with server.runtime.sessions() as db:
        username = db.get(User, bot).username  # type: ignore[union-attr]
    before = _last_run_id(server)
    before_audit = server.root("GET", "/audit_events", params={"per_page": 1}).json()[0]["id"]
    signed_in(page, "root", ROOT_PASSWORD)

    page.goto("/admin/background_jobs")
    expect(
        page.get_by_role("navigation", name="Admin area").get_by_role("link", name="Background jobs")
    ).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", level=1)).to_have_text("Background jobs")
    expect(page.locator("#scheduler-off")).to_be_visible()  # test servers run KEYCREW_JOBS=off
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(len(JOBS))
    row = page.locator(f"#job-{JOB}")
    expect(row).to_contain_text("0 0 * * *")
    expect(row.locator("time").first).to_contain_text("00:00 UTC")  # next run: the next midnight
    assert page.evaluate(AUDIT) == []

    # A dry run first: it reports, and changes nothing.
    row.get_by_role("link", name=JOB).click()
    expect(page).to_have_url(re.compile(f"/admin/background_jobs/{JOB}$"))
    page.get_by_label("Dry run (report what it would do, change nothing)").check()
    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("status")).to_have_text(
        f"A dry run of {JOB} has started. Reload to see its outcome."
    )
    dry = _finished(server, before)
    assert (dry.status, dry.trigger, dry.dry_run) == (SUCCEEDED, MANUAL, True)
    assert remaining(server.runtime.sessions, [bot]) == 1

    # Then the real run, from the list.
    page.goto("/admin/background_jobs")
    page.get_by_role("button", name=f"Run {JOB} now").click()
    expect(page.get_by_role("status")).to_have_text(f"A run of {JOB} has started. Reload to see its outcome.")
    real = _finished(server, dry.id)
    assert (real.status, real.trigger, real.dry_run) == (SUCCEEDED, MANUAL, False)
    assert remaining(server.runtime.sessions, [bot]) == 0
    # Each "Run now" is audited as the admin's act (the job's own changes as Admin Bot's).
    requested = server.root(
        "GET", "/audit_events", params={"entity_type": "Gitlab::Audit::InstanceScope", "per_page": 100}
    ).json()
    mine = [e for e in requested if e["details"].get("target_details") == JOB and e["id"] > before_audit]
    assert [(e["author_id"], e["event_name"], e["details"].get("dry_run")) for e in mine] == [
        (1, "job.run_requested", None),
        (1, "job.run_requested", True),
    ]

    page.reload()
    runs = page.locator("table tbody tr")
    expect(runs.first).to_contain_text(f"#{real.id}")
    expect(runs.first).to_contain_text("Succeeded")
    expect(runs.first).to_contain_text("manual")
    expect(runs.nth(1)).to_contain_text("(dry run)")
    assert page.evaluate(AUDIT) == []

    runs.first.get_by_role("link", name=f"#{real.id}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Run #{real.id} of {JOB}")
    expect(page.locator(".job-notes")).to_contain_text(
        f"deleted bot @{username} (project {project['path_with_namespace']})"
    )
    assert page.evaluate(AUDIT) == []

    # The list shows the last run and its outcome.
    page.goto("/admin/background_jobs")
    expect(page.locator(f"#job-{JOB} .job-outcome")).to_contain_text("Succeeded")
    expect(page.locator(f"#job-{JOB} .job-outcome")).to_contain_text("deleted")


def test_background_jobs_are_for_admins_only(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    http = session_for(server, user["username"], PASSWORD)
    run_id = _last_run_id(server) or 1
    for path in (
        "/admin/background_jobs",
        f"/admin/background_jobs/{JOB}",
        f"/admin/background_jobs/{JOB}/runs/{run_id}",
    ):
        assert http.get(f"{server.url}{path}", timeout=30).status_code == 404, path
    before = _last_run_id(server)
    token = csrf_of(http.get(f"{server.url}/", timeout=30).text)
    response = http.post(
        f"{server.url}/admin/background_jobs/{JOB}/run", data={"authenticity_token": token}, timeout=30
    )
    assert response.status_code == 404
    time.sleep(0.2)
    assert _last_run_id(server) == before


def test_run_now_needs_the_csrf_token_and_unknown_jobs_and_runs_are_404(server: LiveServer) -> None:
    http = session_for(server, "root", ROOT_PASSWORD)
    before = _last_run_id(server)
    refused = http.post(f"{server.url}/admin/background_jobs/{JOB}/run", data={}, timeout=30)
    assert refused.status_code == 403
    time.sleep(0.2)
    assert _last_run_id(server) == before
    for path in (
        "/admin/background_jobs/no-such-job",
        f"/admin/background_jobs/{JOB}/runs/nope",
        f"/admin/background_jobs/{JOB}/runs/999999999",
        f"/admin/background_jobs/{JOB}/runs/2147483648",
        f"/admin/background_jobs/{JOB}/runs/99999999999999999999",
        f"/admin/background_jobs/{JOB}/runs/%C2%B2",
        f"/admin/background_jobs/{JOB}/runs/-1",
    ):
        assert http.get(f"{server.url}{path}", timeout=30).status_code == 404, path
    page = http.get(f"{server.url}/admin/background_jobs", timeout=30)
    unknown = http.post(
        f"{server.url}/admin/background_jobs/no-such-job/run",
        data={"authenticity_token": csrf_of(page.text)},
        timeout=30,
    )
    assert unknown.status_code == 404


@pytest.fixture
def admin_mode(server: LiveServer) -> Iterator[None]:
    assert server.root("PUT", "/application/settings", json={"admin_mode": True}).status_code == 200
    yield
    assert server.root("PUT", "/application/settings", json={"admin_mode": False}).status_code == 200


def test_with_admin_mode_an_admin_enters_it_first(
    server: LiveServer, factory: Factory, admin_mode: None
) -> None:
    admin = factory.user(admin=True)
    http = session_for(server, admin["username"], PASSWORD)
    response = http.get(f"{server.url}/admin/background_jobs", timeout=30, allow_redirects=False)
    assert response.status_code in (302, 303)
    assert "/admin/session/new" in response.headers["location"]
    before = _last_run_id(server)
    token = csrf_of(http.get(f"{server.url}/", timeout=30).text)
    posted = http.post(
        f"{server.url}/admin/background_jobs/{JOB}/run",
        data={"authenticity_token": token},
        timeout=30,
        allow_redirects=False,
    )
    assert posted.status_code in (302, 303)
    assert "/admin/session/new" in posted.headers["location"]
    time.sleep(0.2)
    assert _last_run_id(server) == before
