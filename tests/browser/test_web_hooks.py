"""Settings > Webhooks and Admin > System hooks in Chromium, checked against the API and a real HTTP
receiver: add a hook through the form, test it, read its delivery log (request, response,
duration), edit and delete it; every page passes the basic accessibility audit."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid
from tests.support.receiver import Receiver

LOCAL = "allow_local_requests_from_web_hooks_and_services"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    try:
        yield found
    finally:
        found.stop()


@pytest.fixture
def local_allowed(server: LiveServer) -> Iterator[None]:
    assert server.root("PUT", "/application/settings", json={LOCAL: True}).status_code == 200
    yield
    assert server.root("PUT", "/application/settings", json={LOCAL: False}).status_code == 200


def test_project_webhook_add_test_log_edit_delete(
    server: LiveServer, page: Page, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    project = factory.project(initialize_with_readme=True)
    path = "/" + uid("ui")
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/hooks")
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    assert page.evaluate(AUDIT) == []
    page.get_by_label("URL", exact=True).fill(receiver.url + path)
    page.get_by_label("Name (optional)").fill("ui hook")
    page.get_by_label("Secret token (optional)").fill("ui-secret")
    expect(page.get_by_label("Push events", exact=True)).to_be_checked()
    page.get_by_label("Comment events", exact=True).check()
    page.get_by_role("button", name="Add webhook").click()
    page.wait_for_load_state()
    expect(page.get_by_text("The webhook was added.")).to_be_visible()
    (hook,) = server.root("GET", f"/projects/{project['id']}/hooks").json()
    assert hook["url"] == receiver.url + path
    assert hook["note_events"] is True
    assert hook["push_events"] is True
    assert "token" not in hook

    page.get_by_label("Event to test").select_option("push_events")
    page.get_by_role("button", name="Send test request").click()
    page.wait_for_load_state()
    expect(page.get_by_text("Hook executed successfully: HTTP 200")).to_be_visible()
    (request,) = receiver.wait_for(1, path)
    assert request.header("X-Gitlab-Token") == "ui-secret"
    log = page.get_by_role("table", name=re.compile(r"^Recent events"))
    expect(log.get_by_role("row")).to_have_count(2)
    expect(log).to_contain_text("push_hooks")
    expect(log).to_contain_text("200")
    expect(log).to_contain_text("sec")
    log.get_by_text("View details").click()
    expect(log).to_contain_text("X-Gitlab-Token: [REDACTED]")
    expect(log).to_contain_text('"object_kind": "push"')
    expect(log).to_contain_text('{"ok": true}')
    assert "ui-secret" not in page.content()
    assert page.evaluate(AUDIT) == []

    page.get_by_label("Comment events", exact=True).uncheck()
    page.get_by_label("Name", exact=True).fill("renamed")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_load_state()
    expect(page.get_by_text("The webhook was saved.")).to_be_visible()
    got = server.root("GET", f"/projects/{project['id']}/hooks/{hook['id']}").json()
    assert got["name"] == "renamed"
    assert got["note_events"] is False

    page.goto(f"/{project['path_with_namespace']}/-/hooks")
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete webhook").click()
    page.wait_for_load_state()
    expect(page.get_by_text("The webhook was deleted.")).to_be_visible()
    assert server.root("GET", f"/projects/{project['id']}/hooks").json() == []


def test_a_local_url_is_refused_in_the_form(server: LiveServer, page: Page, factory: Factory) -> None:
    project = factory.project()
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/hooks")
    page.get_by_label("URL", exact=True).fill("http://127.0.0.1:9/x")
    page.get_by_role("button", name="Add webhook").click()
    page.wait_for_load_state()
    expect(page.get_by_role("alert")).to_contain_text("Invalid url given")
    assert server.root("GET", f"/projects/{project['id']}/hooks").json() == []
    # The admin allows it on the settings page.
    page.goto("/admin/application_settings")
    expect(page.get_by_label("Allow requests to the local network from webhooks")).not_to_be_checked()
    expect(page.get_by_label("Allow requests to the local network from system hooks")).to_be_checked()


def test_group_webhooks_and_system_hooks_pages(
    server: LiveServer, page: Page, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    group = factory.group()
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/groups/{group['full_path']}/-/hooks")
    assert page.evaluate(AUDIT) == []
    page.get_by_label("URL", exact=True).fill(receiver.url + "/" + uid("g"))
    page.get_by_label("Member events", exact=True).check()
    page.get_by_role("button", name="Add webhook").click()
    page.wait_for_load_state()
    (hook,) = server.root("GET", f"/groups/{group['id']}/hooks").json()
    assert hook["member_events"] is True

    page.goto("/admin/hooks")
    expect(page.get_by_role("heading", name="System hooks", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="System hooks")).to_have_attribute("aria-current", "page")
    assert page.evaluate(AUDIT) == []
    path = "/" + uid("sys")
    page.get_by_label("URL", exact=True).fill(receiver.url + path)
    page.get_by_role("button", name="Add webhook").click()
    page.wait_for_load_state()
    system = [h for h in server.root("GET", "/hooks").json() if h["url"] == receiver.url + path]
    assert len(system) == 1
    try:
        page.get_by_role("button", name="Send test request").click()
        page.wait_for_load_state()
        expect(page.get_by_text("Hook executed successfully: HTTP 200")).to_be_visible()
        (request,) = receiver.wait_for(1, path)
        assert request.header("X-Gitlab-Event") == "System Hook"
        assert page.evaluate(AUDIT) == []
    finally:
        server.root("DELETE", f"/hooks/{system[0]['id']}")
