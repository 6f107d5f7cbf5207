"""Settings > General > Service Desk in Chromium: a Maintainer turns Service Desk on, sets a project
key and a thank-you text; the address shown follows GitLab's form and agrees with the API; a bad
key is refused next to its field. The page passes the accessibility audit and fits a 390 px screen."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.pages import signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.backends import BACKENDS
from tests.support.live import Factory, LiveServer, start_server, uid

PASSWORD = "a-long-password-1"
DOMAIN = "desk.example.com"
MAINTAINER = 40


@pytest.fixture(scope="module", params=BACKENDS)
def desk_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    tmp = Path(tmp_path_factory.mktemp(f"desk-web-{request.param}"))
    nodes = start_server(request.param, tmp, incoming_email_address="incoming+%{key}@" + DOMAIN)
    try:
        yield next(nodes)
    finally:
        nodes.close()


@pytest.fixture
def desk_page(browser: Browser, desk_server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=desk_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def test_a_maintainer_turns_service_desk_on_with_a_project_key(
    desk_server: LiveServer, desk_page: Page
) -> None:
    factory = Factory(desk_server)
    maintainer = factory.user(password=PASSWORD)
    project = factory.project()
    factory.member("projects", project["id"], maintainer["id"], MAINTAINER)
    page = signed_in(desk_page, maintainer["username"], PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/edit")
    section = page.get_by_role("region", name="Service Desk")
    expect(section).to_be_visible()
    expect(section.locator("#service-desk-address")).to_have_count(0)
    assert page.evaluate(AUDIT) == []

    # A key with capitals and a space: refused, shown next to its field, nothing saved.
    section.get_by_label("Activate Service Desk").check()
    section.get_by_label("Project key (optional)").fill("Bad Key")
    section.get_by_role("button", name="Save Service Desk settings").click()
    page.wait_for_load_state()
    expect(page.locator("#service-desk-project-key-error")).to_contain_text("lowercase letters")
    assert page.evaluate(AUDIT) == []
    assert desk_server.root("GET", f"/projects/{project['id']}").json()["service_desk_enabled"] is False

    key = f"k_{uid().lower()}"
    section = page.get_by_role("region", name="Service Desk")
    section.get_by_label("Activate Service Desk").check()
    section.get_by_label("Project key (optional)").fill(key)
    section.get_by_label("Thank-you e-mail").fill("Thanks! Your ticket is %{ISSUE_ID}.")
    section.get_by_role("button", name="Save Service Desk settings").click()
    page.wait_for_load_state()
    expect(page.get_by_text("Service Desk settings were saved.")).to_be_visible()
    slug = re.sub(r"[^a-z0-9]", "-", project["path_with_namespace"].lower())
    expected = f"incoming+{slug}-{key}@{DOMAIN}"
    expect(page.locator("#service-desk-address")).to_have_text(expected)
    expect(page.get_by_label("Thank-you e-mail")).to_have_value("Thanks! Your ticket is %{ISSUE_ID}.")
    assert page.evaluate(AUDIT) == []
    fetched = desk_server.root("GET", f"/projects/{project['id']}").json()
    assert fetched["service_desk_enabled"] is True
    assert fetched["service_desk_address"] == expected

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#service-desk-address")).to_have_text(expected)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
