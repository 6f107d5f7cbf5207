"""The activity pages: a project's (/<project>/activity), a person's (/users/<username>/activity)
and the dashboard's (/dashboard/activity): what each event reads as, the filters, the pages, and
who sees what. Every list is checked against the Events API's, so that a page that only looks
right cannot pass."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.pages import session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.git import Git, repo_url
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid
from tests.support.statements import counting

PASSWORD = "a-long-password-1"
DEVELOPER = 30
RECENTLY = re.compile(r"^(just now|\d+ minutes? ago)$")


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path)


def _api_event_ids(server: LiveServer, path: str, token: str | None = None, **params: Any) -> list[int]:
    response = server.request(
        "GET", path, token=server.root_token if token is None else token, params={"per_page": 100} | params
    )
    assert response.status_code == 200, response.text
    return [event["id"] for event in response.json()]


def _shown_ids(page: Page) -> list[int]:
    return [
        int(i) for i in page.locator("li.event").evaluate_all("(els) => els.map((e) => e.dataset.eventId)")
    ]


def _issue(server: LiveServer, project_id: int, token: str, title: str, **attrs: Any) -> dict[str, Any]:
    response = server.request(
        "POST", f"/projects/{project_id}/issues", token=token, json={"title": title} | attrs
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_the_project_activity_page_words_each_event_and_filters_them(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    author, token = factory.user_with_token()
    project = factory.project(token=token)
    joiner = factory.user()
    factory.member("projects", project["id"], joiner["id"], DEVELOPER)
    issue = _issue(server, project["id"], token, "Broken build")
    note = server.request(
        "POST",
        f"/projects/{project['id']}/issues/{issue['iid']}/notes",
        token=token,
        json={"body": "The cache is stale."},
    )
    assert note.status_code == 201, note.text
    closed = server.request(
        "PUT", f"/projects/{project['id']}/issues/{issue['iid']}", token=token, json={"state_event": "close"}
    )
    assert closed.status_code == 200, closed.text

    signed_in(page, author["username"], PASSWORD)
    page.goto(f"/{project['path_with_namespace']}")
    page.get_by_role("main").get_by_role("link", name="Activity", exact=True).click()
    expect(page).to_have_url(re.compile(re.escape(f"/{project['path_with_namespace']}/activity") + "$"))
    expect(page.get_by_role("heading", name="Activity", exact=True)).to_be_visible()

    events = page.locator("li.event")
    expect(events).to_have_count(5)
    assert _shown_ids(page) == _api_event_ids(server, f"/projects/{project['id']}/events")
    name = author["name"]
    expect(events.nth(0)).to_contain_text(f"{name} closed issue #{issue['iid']} “Broken build”")
    expect(events.nth(1)).to_contain_text(f"{name} commented on issue #{issue['iid']} “Broken build”")
    expect(events.nth(1)).to_contain_text("The cache is stale.")
    expect(events.nth(2)).to_contain_text(f"{name} opened issue #{issue['iid']} “Broken build”")
    expect(events.nth(3)).to_contain_text(f"{joiner['name']} joined project")
    expect(events.nth(4)).to_contain_text(f"{name} created project")
    # The author links to their activity; times are relative, with the moment in the title.
    expect(events.nth(3).get_by_role("link", name=joiner["name"])).to_have_attribute(
        "href", f"/users/{joiner['username']}/activity"
    )
    for label in events.locator("time").all_inner_texts():
        assert RECENTLY.match(label), label
    expect(events.first.locator("time")).to_have_attribute("title", re.compile(r"UTC$"))
    assert page.evaluate(AUDIT) == []

    page.get_by_role("link", name="Issue events").click()
    expect(page.get_by_role("link", name="Issue events")).to_have_attribute("aria-current", "page")
    expect(events).to_have_count(2)
    assert _shown_ids(page) == _api_event_ids(
        server, f"/projects/{project['id']}/events", target_type="issue"
    )
    page.get_by_role("link", name="Comments").click()
    expect(events).to_have_count(1)
    page.get_by_role("link", name="Team").click()
    expect(events).to_have_count(1)
    expect(events.first).to_contain_text("joined project")
    page.get_by_role("link", name="Push events").click()
    expect(page.get_by_role("list").filter(has_text="No activity of this kind yet.")).to_have_count(1)


def test_activity_is_paginated_and_costs_the_same_for_any_page(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user, token = factory.user_with_token()
    project = factory.project(token=token)
    for number in range(25):
        _issue(server, project["id"], token, f"Issue {number}")
    url = f"/{project['path_with_namespace']}/activity"
    signed_in(page, user["username"], PASSWORD)
    page.goto(url)
    events = page.locator("li.event")
    expect(events).to_have_count(20)
    pager = page.get_by_role("navigation", name="Activity pages")
    expect(pager).to_contain_text("Showing 1\u201320 of 26")
    expect(pager.get_by_role("link", name="Previous page")).to_have_count(0)
    pager.get_by_role("link", name="Next page").click()
    expect(events).to_have_count(6)
    expect(events.last).to_contain_text("created project")
    expect(pager).to_contain_text("Showing 21\u201326 of 26")
    api = _api_event_ids(server, f"/projects/{project['id']}/events")
    assert _shown_ids(page) == api[20:]
    pager.get_by_role("link", name="Previous page").click()
    expect(events).to_have_count(20)
    assert _shown_ids(page) == api[:20]

    # A page of 20 events and one of 6 run as many statements: authors are read in one batch.
    http = session_for(server, user["username"], PASSWORD)
    assert http.get(f"{server.url}{url}", timeout=30).status_code == 200
    costs = []
    for query in ("", "?page=2"):
        with counting(server) as seen:
            response = http.get(f"{server.url}{url}{query}", timeout=30)
        assert response.status_code == 200
        costs.append(len(seen))
    assert costs[0] == costs[1], costs


def test_a_persons_activity_shows_only_what_the_viewer_may_see(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    author, token = factory.user_with_token()
    hidden = factory.project(token=token, name=uid("hidden"), visibility="private")
    shown = factory.project(token=token, name=uid("shown"), visibility="public")
    _issue(server, hidden["id"], token, "Secret plan")
    _issue(server, shown["id"], token, "Public bug")
    _issue(server, shown["id"], token, "Quiet bug", confidential=True)
    viewer = factory.user()
    url = f"/users/{author['username']}/activity"

    signed_in(page, viewer["username"], PASSWORD)
    page.goto(url)
    expect(page.get_by_role("heading", name=f"Activity of @{author['username']}")).to_be_visible()
    events = page.locator("li.event")
    viewer_token = factory.token(viewer["id"])
    expected = _api_event_ids(server, f"/users/{author['id']}/events", viewer_token)
    assert len(expected) == 2
    expect(events).to_have_count(2)
    assert _shown_ids(page) == expected
    expect(events.first).to_contain_text("opened issue #1 “Public bug”")
    expect(events.first.get_by_role("link", name=shown["path_with_namespace"])).to_have_attribute(
        "href", f"/{shown['path_with_namespace']}"
    )
    expect(page.get_by_role("main")).not_to_contain_text(hidden["path_with_namespace"])
    expect(page.get_by_role("main")).not_to_contain_text("Quiet bug")
    assert page.evaluate(AUDIT) == []

    # An admin sees everything; an anonymous visitor what is public.
    page.context.clear_cookies()
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(url)
    expect(events).to_have_count(5)
    assert _shown_ids(page) == _api_event_ids(server, f"/users/{author['id']}/events")
    anonymous = requests.get(f"{server.url}{url}", timeout=30)
    assert anonymous.status_code == 200
    assert "Public bug" in anonymous.text
    assert "Secret plan" not in anonymous.text
    assert requests.get(f"{server.url}/users/no-such-person-{uid()}/activity", timeout=30).status_code == 404


def test_the_dashboard_activity_lists_the_events_of_ones_projects(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    member = factory.user()
    mine = factory.project(name=uid("mine"))
    factory.member("projects", mine["id"], member["id"], DEVELOPER)
    others = factory.project(name=uid("others"), visibility="public")
    signed_in(page, member["username"], PASSWORD)
    page.goto("/dashboard/activity")
    events = page.locator("li.event")
    member_token = factory.token(member["id"])
    expect(events.first).to_contain_text(f"{member['name']} joined project")
    expect(events.first.get_by_role("link", name=mine["path_with_namespace"])).to_be_visible()
    assert _shown_ids(page) == _api_event_ids(server, "/events", member_token, scope="all")
    expect(page.get_by_role("main")).not_to_contain_text(others["path_with_namespace"])
    page.get_by_role("link", name="your own activity").click()
    expect(page.get_by_role("heading", name=f"Activity of @{member['username']}")).to_be_visible()
    assert page.evaluate(AUDIT) == []
    # Anonymous visitors are sent to sign in.
    response = requests.get(f"{server.url}/dashboard/activity", timeout=30, allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/users/sign_in")


def test_pushes_read_as_gitlabs_and_a_project_called_activity_keeps_its_page(
    server: LiveServer, page: Page, factory: Factory, git: Git
) -> None:
    user, token = factory.user_with_token(scopes=["api", "write_repository"])
    project = factory.project(token=token)
    clone, _ = git.clone(repo_url(server, project["path_with_namespace"], user["username"], token))
    git.commit(clone, "a.txt")
    assert git.push(clone, "origin", "HEAD:main").returncode == 0
    git.commit(clone, "b.txt")
    git.commit(clone, "c.txt")
    assert git.push(clone, "origin", "HEAD:main").returncode == 0
    git.run("tag", "v1", cwd=clone)
    assert git.push(clone, "origin", "v1").returncode == 0
    assert git.push(clone, "origin", ":v1").returncode == 0

    signed_in(page, user["username"], PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/activity?filter=push")
    events = page.locator("li.event")
    expect(events).to_have_count(4)
    expect(events.nth(0)).to_contain_text(f"{user['name']} deleted tag v1")
    expect(events.nth(1)).to_contain_text("pushed new tag v1")
    expect(events.nth(2)).to_contain_text("pushed to branch main")
    expect(events.nth(2)).to_contain_text("2 commits: change c.txt")
    expect(events.nth(3)).to_contain_text("pushed new branch main")
    expect(events.nth(3)).to_contain_text("change a.txt")

    # A project whose path is "activity" is reached at <namespace>/activity as before.
    group = factory.group()
    called = factory.project(namespace_id=group["id"], name="activity", path="activity")
    page.context.clear_cookies()
    signed_in(page, "root", ROOT_PASSWORD)
    response = page.goto(f"/{group['full_path']}/activity")
    assert response is not None
    assert response.status == 200
    expect(page.get_by_role("heading", name=called["name"], exact=True)).to_be_visible()
    expect(page.get_by_text("Clone with HTTPS")).to_be_visible()
