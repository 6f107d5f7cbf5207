"""Bots on the Members pages: a bot's token expiry, and a bot whose tokens are all revoked or
expired shown with the day the delete-inactive-bots job removes it (the job's own rule, checked
by running the job on both sides of that day), and the project page's link to its group.

Browser tests drive Debian's headless Chromium against the live server; the server's clock is
moved for the expired token and for the job, and put back after.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from keycrew.automation.bots import cleanup_batch
from keycrew.context import Actor
from tests.browser.pages import session_for, signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer
from tests.support.statements import counting


def _row(page: Page, username: str) -> Locator:
    return page.locator(f'tr[data-username="{username}"]')


def _label(day: dt.date) -> str:
    return f"{day:%b} {day.day}, {day.year}"


def _bot_token(server: LiveServer, kind: str, source_id: int, expires_at: dt.date) -> dict[str, Any]:
    response = server.root(
        "POST",
        f"/{kind}/{source_id}/access_tokens",
        json={"name": "deployer", "scopes": ["api"], "expires_at": expires_at.isoformat()},
    )
    assert response.status_code == 201, response.text
    token = dict(response.json())
    bot = server.root("GET", f"/users/{token['user_id']}").json()
    return token | {"username": bot["username"]}


def _run_cleanup_for(server: LiveServer, bot_id: int) -> bool:
    """Run the delete-inactive-bots job's batch on this one bot; True if it deleted it."""
    with server.runtime.sessions() as db, db.begin():
        result = cleanup_batch(server.runtime.ctx(db, Actor.system()), after_id=bot_id - 1, size=1)
    assert result.last_id == bot_id
    return bot_id in result.deleted_bot_ids


def test_a_bot_shows_its_token_expiry_with_a_badge_when_it_is_soon(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    today = server.clock.now().date()
    soon = _bot_token(server, "projects", project["id"], today + dt.timedelta(days=5))
    later = _bot_token(server, "projects", project["id"], today + dt.timedelta(days=90))
    group_bot = _bot_token(server, "groups", group["id"], today + dt.timedelta(days=3))
    signed_in(page, "root", ROOT_PASSWORD)

    page.goto(f"/{project['path_with_namespace']}/-/project_members")
    row = _row(page, soon["username"])
    expect(row).to_contain_text(f"Token expires {_label(today + dt.timedelta(days=5))}")
    expect(row).to_contain_text("in 5 days")
    expect(row.get_by_text("Expires soon")).to_be_visible()
    expect(row).to_contain_text("Maintainer")
    row = _row(page, later["username"])
    expect(row).to_contain_text(f"Token expires {_label(today + dt.timedelta(days=90))}")
    expect(row).to_contain_text("in 90 days")
    expect(row.get_by_text("Expires soon")).to_have_count(0)

    page.goto(f"/groups/{group['full_path']}/-/group_members")
    row = _row(page, group_bot["username"])
    expect(row).to_contain_text(f"Token expires {_label(today + dt.timedelta(days=3))}")
    expect(row).to_contain_text("in 3 days")
    expect(row.get_by_text("Expires soon")).to_be_visible()


def test_a_bot_with_a_revoked_token_shows_when_the_cleanup_job_removes_it(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    project = factory.project()
    today = server.clock.now().date()
    token = _bot_token(server, "projects", project["id"], today + dt.timedelta(days=60))
    revoked = server.root("DELETE", f"/projects/{project['id']}/access_tokens/{token['id']}")
    assert revoked.status_code == 204, revoked.text
    days = server.root("GET", "/application/settings").json()[
        "inactive_resource_access_tokens_delete_after_days"
    ]
    assert days > 0
    # The job runs daily at 00:00 UTC: the first run at least `days` after the revocation.
    due = server.clock.now() + dt.timedelta(days=days)
    removal = due.date() + dt.timedelta(days=1)
    signed_in(page, "root", ROOT_PASSWORD)

    page.goto(f"/{project['path_with_namespace']}/-/project_members")
    row = _row(page, token["username"])
    expect(row).to_contain_text(f"Token revoked — removed on {_label(removal)}")
    expect(row.locator("time")).to_have_attribute("datetime", removal.isoformat())
    # Not shown with an active role any more, nor with a token expiry.
    expect(row.get_by_role("combobox")).to_have_count(0)
    expect(row).not_to_contain_text("Token expires")

    # The job agrees: kept at the run the day before, deleted at the run of that day.
    try:
        server.clock.travel_to(dt.datetime.combine(removal - dt.timedelta(days=1), dt.time(), dt.UTC))
        assert not _run_cleanup_for(server, token["user_id"])
        server.clock.travel_to(dt.datetime.combine(removal, dt.time(0, 0, 5), dt.UTC))
        assert _run_cleanup_for(server, token["user_id"])
    finally:
        server.clock.reset()
    page.reload()
    expect(_row(page, token["username"])).to_have_count(0)


def test_a_bot_with_an_expired_token_shows_when_it_is_removed(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    group = factory.group()
    today = server.clock.now().date()
    expires = today + dt.timedelta(days=1)
    token = _bot_token(server, "groups", group["id"], expires)
    days = server.root("GET", "/application/settings").json()[
        "inactive_resource_access_tokens_delete_after_days"
    ]
    # It died at 00:00 UTC on its expiry date: the run of that moment plus `days` removes it.
    removal = expires + dt.timedelta(days=days)
    signed_in(page, "root", ROOT_PASSWORD)
    try:
        server.clock.travel_to(dt.datetime.combine(today + dt.timedelta(days=3), dt.time(12), dt.UTC))
        page.goto(f"/groups/{group['full_path']}/-/group_members")
        row = _row(page, token["username"])
        expect(row).to_contain_text(f"Token expired — removed on {_label(removal)}")
        server.clock.travel_to(dt.datetime.combine(removal, dt.time(), dt.UTC) - dt.timedelta(seconds=5))
        assert not _run_cleanup_for(server, token["user_id"])
        server.clock.travel_to(dt.datetime.combine(removal, dt.time(), dt.UTC))
        assert _run_cleanup_for(server, token["user_id"])
    finally:
        server.clock.reset()


def test_the_bots_tokens_of_a_members_page_are_read_in_one_query(
    server: LiveServer, factory: Factory
) -> None:
    project = factory.project()
    today = server.clock.now().date()
    url = f"{server.url}/{project['path_with_namespace']}/-/project_members"
    http = session_for(server, "root", ROOT_PASSWORD)
    costs = []
    for added, shown in ((1, 1), (3, 4)):
        for n in range(added):
            _bot_token(server, "projects", project["id"], today + dt.timedelta(days=10 + shown + n))
        assert http.get(url, timeout=30).status_code == 200
        with counting(server) as seen:
            response = http.get(url, timeout=30)
        assert response.status_code == 200
        assert response.text.count("Token expires") == shown
        token_reads = [s for s in seen if re.search(r"\bFROM personal_access_tokens\b", s)]
        assert len(token_reads) == 1, token_reads
        costs.append(len(seen))
    assert costs[0] == costs[1], costs


def test_the_project_page_links_to_its_group_and_back(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    group = factory.group(name="Platform Team")
    project = factory.project(namespace_id=group["id"], name="Deploy Tools")
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/{project['path_with_namespace']}")
    expect(page.locator(".project-namespace")).to_have_text("in Platform Team")
    page.locator(".project-namespace").get_by_role("link", name="Platform Team").click()
    expect(page).to_have_url(re.compile(rf"/groups/{re.escape(group['full_path'])}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Platform Team")
    page.get_by_role("list", name="Projects").get_by_role("link", name="Deploy Tools").click()
    expect(page).to_have_url(re.compile(rf"/{re.escape(project['path_with_namespace'])}$"))

    # A personal project leads to its owner.
    personal = factory.project()
    page.goto(f"/{personal['path_with_namespace']}")
    link = page.locator(".project-namespace").get_by_role("link")
    expect(link).to_have_attribute("href", f"/users/{personal['namespace']['full_path']}/activity")
