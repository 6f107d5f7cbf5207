"""Accessibility basics on every main page: a language, one h1, landmarks, a name for every control,
no duplicate ids, headed tables; and signing in with the keyboard alone."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer

# Runs in the page: every problem found, as readable strings.
AUDIT = """() => {
  const problems = [];
  const name = (el) => {
    if (el.getAttribute('aria-label')) return el.getAttribute('aria-label');
    const by = el.getAttribute('aria-labelledby');
    if (by) return by.split(' ').map((id) => document.getElementById(id)?.textContent || '').join(' ').trim();
    if (el.id) {
      const label = document.querySelector(`label[for="${CSS.escape(el.id)}"]`);
      if (label) return label.textContent.trim();
    }
    const wrapping = el.closest('label');
    if (wrapping) return wrapping.textContent.trim();
    if (['BUTTON', 'A'].includes(el.tagName)) return el.textContent.trim();
    return '';
  };
  if (!document.documentElement.lang) problems.push('html has no lang');
  const headings = document.querySelectorAll('h1').length;
  if (headings !== 1) problems.push(`${headings} h1`);
  if (!document.querySelector('main')) problems.push('no main landmark');
  if (!document.title.trim()) problems.push('no title');
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')) {
    if (!name(el)) problems.push(`unnamed ${el.tagName.toLowerCase()} ${el.outerHTML.slice(0, 80)}`);
  }
  const ids = [...document.querySelectorAll('[id]')].map((el) => el.id);
  for (const id of new Set(ids)) {
    if (ids.filter((x) => x === id).length > 1) problems.push(`duplicate id ${id}`);
  }
  for (const table of document.querySelectorAll('table')) {
    if (!table.querySelector('th')) problems.push('table without headers');
    if (!name(table) && !table.querySelector('caption')) problems.push('table without a name');
  }
  for (const img of document.querySelectorAll('img, svg[role=img]')) {
    if (!img.getAttribute('alt') && !img.getAttribute('aria-label') && !img.querySelector('title'))
      problems.push('image without a text alternative');
  }
  return problems;
}"""


@pytest.fixture
def forge(server: LiveServer, factory: Factory, gl: Any) -> dict[str, Any]:
    group = factory.group()
    project = factory.project(namespace_id=group["id"], initialize_with_readme=True)
    server.root("POST", f"/projects/{project['id']}/access_tokens", json={"name": "ci", "scopes": ["api"]})
    server.root("POST", f"/groups/{group['id']}/access_tokens", json={"name": "g", "scopes": ["read_api"]})
    server.root(
        "POST",
        f"/projects/{project['id']}/deploy_tokens",
        json={"name": "pull", "scopes": ["read_repository"]},
    )
    account = gl.service_accounts.create({})
    factory.member("projects", project["id"], account.id, 20)
    user = factory.user()
    return {"group": group, "project": project, "account": account.id, "user": user}


def test_every_main_page_passes_the_basic_audit(
    server: LiveServer, page: Page, forge: dict[str, Any]
) -> None:
    project_path = forge["project"]["path_with_namespace"]
    group_path = forge["group"]["full_path"]
    for signed_out in ("/users/sign_in", "/users/password/new"):
        page.goto(signed_out)
        assert page.evaluate(AUDIT) == [], signed_out
    signed_in(page, "root", ROOT_PASSWORD)
    user = forge["user"]["username"]
    paths = [
        "/",
        f"/{project_path}",
        f"/groups/{group_path}",
        f"/{project_path}/-/project_members",
        f"/groups/{group_path}/-/group_members",
        f"/{project_path}/-/settings/access_tokens",
        f"/groups/{group_path}/-/settings/access_tokens",
        f"/{project_path}/-/settings/deploy_tokens",
        f"/groups/{group_path}/-/settings/deploy_tokens",
        "/-/user_settings/personal_access_tokens",
        "/admin/users",
        f"/admin/users/{forge['user']['username']}",
        "/admin/service_accounts",
        f"/admin/service_accounts/{forge['account']}",
        "/admin/seats",
        "/admin/audit_events",
        "/admin/application_settings",
        "/no/such/page",
        # Pages issue 13 added or changed.
        "/groups/new",
        f"/groups/new?parent_id={forge['group']['id']}",
        "/projects/new",
        f"/groups/{group_path}/-/edit",
        f"/{project_path}/-/edit",
        "/admin/users/new",
        f"/admin/users/{user}/edit",
        "/-/user_settings/profile",
        "/-/profile/notifications",
        "/admin/background_jobs",
        "/admin/background_jobs/delete-inactive-bots",
        "/admin/outbox",
        "/admin/token_hygiene",
        "/admin/credentials",
        "/admin/hooks",
        f"/{project_path}/-/hooks",
        f"/groups/{group_path}/-/hooks",
        f"/groups/{group_path}/-/settings/compliance_frameworks",
    ]
    found: dict[str, list[str]] = {}
    for path in paths:
        response = page.goto(path)
        assert response is not None
        if response.status not in (200, 404):
            found[path] = [f"status {response.status}"]
            continue
        problems = page.evaluate(AUDIT)
        if problems:
            found[path] = problems
    assert found == {}


def test_sign_in_with_the_keyboard_alone(server: LiveServer, page: Page) -> None:
    page.goto("/users/sign_in")
    # The login field has the focus; the fields follow in reading order.
    expect(page.get_by_label("Username or primary email")).to_be_focused()
    page.keyboard.type("root")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(ROOT_PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # On every other page the first Tab reaches the skip link, which moves the focus to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_confirmation_dialogs_work_from_the_keyboard(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    project = factory.project()
    token = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "kbd", "scopes": ["api"]}
    ).json()
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/settings/access_tokens")
    revoke = page.get_by_role("row").filter(has_text="kbd").get_by_role("button", name="Revoke")
    revoke.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # closes without acting
    expect(dialog).to_be_hidden()
    response = server.request("GET", "/user", token=token["token"])
    assert response.status_code == 200
    revoke.focus()
    page.keyboard.press("Enter")
    dialog.get_by_role("button", name="Revoke token").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("has been revoked")
    assert server.request("GET", "/user", token=token["token"]).status_code == 401
