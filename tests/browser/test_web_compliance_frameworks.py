"""Group > Settings > Compliance frameworks in Chromium: a top-level group's Owner adds a default
framework, a project created below the group carries it (API), the Owner edits and deletes it
through the page; a Maintainer of the group has no such link and no page."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.pages import session_for, signed_in
from tests.support.live import Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
SETTINGS = "/-/settings/compliance_frameworks"
MAINTAINER = 40


def _frameworks_of(server: LiveServer, project_id: int) -> list[str]:
    response = server.root("GET", f"/projects/{project_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["compliance_frameworks"])


def test_an_owner_manages_the_default_framework_new_projects_get(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    signed_in(page, owner["username"], PASSWORD)
    page.goto(f"/groups/{group['full_path']}")
    page.get_by_role("navigation", name="Group").get_by_role("link", name="Compliance frameworks").click()
    expect(page).to_have_url(f"{server.url}/groups/{group['full_path']}{SETTINGS}")
    expect(page.get_by_role("heading", name="Compliance frameworks", level=1)).to_be_visible()
    frameworks = page.get_by_role("table", name=re.compile(r"^Frameworks"))
    expect(frameworks).to_contain_text("This group has no compliance frameworks.")

    name = uid("SOC2-")
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Description", exact=True).fill("Service organisation controls")
    page.get_by_label("Default framework").check()
    page.get_by_role("button", name="Add framework").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_contain_text(f"Added the compliance framework {name}.")
    row = frameworks.get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("Default")
    expect(row).to_contain_text("Service organisation controls")

    project = factory.project(token=token, namespace_id=group["id"])
    assert project["compliance_frameworks"] == [name]

    # Rename it through the row's edit form.
    renamed = uid("SOC2-II-")
    row.get_by_text("Edit").click()
    row.get_by_label("Name").fill(renamed)
    row.get_by_role("button", name="Save framework").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_contain_text(f"Saved the compliance framework {renamed}.")
    assert _frameworks_of(server, project["id"]) == [renamed]

    # Delete it through the confirmation dialog.
    row = frameworks.get_by_role("row").filter(has_text=renamed)
    row.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name=f"Delete the compliance framework {renamed}?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Delete framework").click()
    page.wait_for_load_state()
    expect(frameworks).to_contain_text("This group has no compliance frameworks.")
    assert _frameworks_of(server, project["id"]) == []


def test_a_group_maintainer_gets_no_frameworks_page(server: LiveServer, page: Page, factory: Factory) -> None:
    group = factory.group()
    maintainer = factory.user()
    factory.member("groups", group["id"], maintainer["id"], MAINTAINER)
    signed_in(page, maintainer["username"], PASSWORD)
    page.goto(f"/groups/{group['full_path']}")
    nav = page.get_by_role("navigation", name="Group")
    expect(nav.get_by_role("link", name="Deploy tokens")).to_be_visible()
    expect(nav.get_by_role("link", name="Compliance frameworks")).to_have_count(0)
    http = session_for(server, maintainer["username"], PASSWORD)
    assert http.get(f"{server.url}/groups/{group['full_path']}{SETTINGS}", timeout=30).status_code == 403
