"""New group, New project and Settings > General in Chromium: a person creates a group, a subgroup
and a project from the dashboard and the group page, renames and moves them, deletes them behind a
typed confirmation; the API's refusals show next to their field; Maintainers and Developers get
only what the API allows them; every page passes the audit and fits a 390 px screen."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.pages import csrf_of, session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
DEVELOPER, MAINTAINER = 30, 40
# Runs in the page: what, below the top bar, reaches past a 390 px screen's right edge.
FITS = """() => [...document.querySelectorAll('.shell, .shell *')]
  .filter((el) => el.getBoundingClientRect().right > 390 || el.scrollWidth > Math.max(el.clientWidth, 390))
  .map((el) => el.tagName + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : ''))"""


def _submit(page: Page, button: str) -> None:
    page.get_by_role("button", name=button).click()
    page.wait_for_load_state()


def test_a_person_creates_a_group_a_subgroup_and_a_project(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user = factory.user()
    signed_in(page, user["username"], PASSWORD)
    page.get_by_role("link", name="New group").click()
    expect(page.get_by_role("heading", name="New group", level=1)).to_be_visible()
    assert page.evaluate(AUDIT) == []

    # The API's refusal shows next to the field it names.
    path = uid("grp")
    page.get_by_label("Group name").fill("Platform")
    page.get_by_label("Group URL").fill("no spaces allowed")
    _submit(page, "Create group")
    expect(page.get_by_label("Group URL")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#group-path-error")).to_contain_text("Path")
    expect(page.get_by_label("Group name")).to_have_value("Platform")
    assert page.evaluate(AUDIT) == []

    page.get_by_label("Group URL").fill(path)
    page.get_by_label("Internal").check()
    _submit(page, "Create group")
    expect(page).to_have_url(f"{server.url}/groups/{path}")
    expect(page.get_by_role("status")).to_contain_text("Group Platform was created.")
    group = server.root("GET", f"/groups/{path}").json()
    assert group["visibility"] == "internal"

    # A subgroup, its parent chosen from the group's page.
    page.get_by_role("link", name="New subgroup").click()
    expect(page.get_by_label("Parent group")).to_have_value(str(group["id"]))
    page.get_by_label("Group name").fill("Tools")
    page.get_by_label("Group URL").fill("tools")
    _submit(page, "Create group")
    expect(page).to_have_url(f"{server.url}/groups/{path}/tools")

    # A project in the group, from the group's page.
    page.goto(f"/groups/{path}")
    page.get_by_role("link", name="New project").click()
    expect(page.get_by_role("heading", name="New project", level=1)).to_be_visible()
    expect(page.get_by_label("Namespace")).to_have_value(str(group["id"]))
    assert page.evaluate(AUDIT) == []
    page.get_by_label("Project name").fill("Web App")
    _submit(page, "Create project")
    expect(page).to_have_url(f"{server.url}/{path}/web-app")
    expect(page.get_by_role("status")).to_contain_text("Project Web App was created.")
    project = server.root("GET", f"/projects/{path}%2Fweb-app").json()
    assert project["visibility"] == "private"

    # A public project is refused in an internal group, with the API's words, next to the field.
    page.goto("/projects/new")
    page.get_by_label("Namespace").select_option(str(group["id"]))
    page.get_by_label("Project name").fill("Open")
    page.get_by_label("Public").check()
    _submit(page, "Create project")
    expect(page.locator("#project-visibility-error")).to_contain_text(
        "Public is not allowed in a internal group."
    )


def test_an_owner_edits_moves_and_deletes_a_project(server: LiveServer, page: Page, factory: Factory) -> None:
    owner, token = factory.user_with_token()
    group = factory.group(token=token, visibility="internal")
    project = factory.project(token=token, namespace_id=group["id"])
    full = project["path_with_namespace"]
    signed_in(page, owner["username"], PASSWORD)
    page.goto(f"/{full}")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="General").click()
    expect(page).to_have_url(f"{server.url}/{full}/-/edit")
    assert page.evaluate(AUDIT) == []

    page.get_by_label("Project name").fill("Renamed")
    page.locator("#project-description").fill("Our app")
    page.get_by_label("Internal").check()
    _submit(page, "Save changes")
    expect(page.get_by_role("status")).to_contain_text("Project Renamed was saved.")
    got = server.root("GET", f"/projects/{project['id']}").json()
    assert (got["name"], got["description"], got["visibility"]) == ("Renamed", "Our app", "internal")

    # Transfer: a wrong confirmation moves nothing; the right one moves it to the owner's namespace.
    transfer = page.get_by_role("region", name="Transfer project")
    transfer.get_by_label("New namespace").select_option(label=f"{owner['username']} (your namespace)")
    transfer.get_by_label(re.compile("To confirm")).fill("nope")
    _submit(page, "Transfer project")
    expect(page.locator("#transfer-confirm-error")).to_have_text(f"Type {full} to confirm.")
    assert server.root("GET", f"/projects/{project['id']}").json()["path_with_namespace"] == full
    transfer = page.get_by_role("region", name="Transfer project")
    transfer.get_by_label("New namespace").select_option(label=f"{owner['username']} (your namespace)")
    transfer.get_by_label(re.compile("To confirm")).fill(full)
    _submit(page, "Transfer project")
    moved = f"{owner['username']}/{project['path']}"
    expect(page).to_have_url(f"{server.url}/{moved}/-/edit")
    expect(page.get_by_role("status")).to_contain_text(f"was moved to {moved}.")

    # Delete behind the typed path.
    delete = page.get_by_role("region", name="Delete project")
    delete.get_by_label(re.compile("To confirm")).fill(moved)
    _submit(page, "Delete project")
    expect(page).to_have_url(f"{server.url}/")
    expect(page.get_by_role("status")).to_contain_text(f"Project {moved} was deleted.")
    assert server.root("GET", f"/projects/{project['id']}").status_code == 404


def test_an_owner_edits_transfers_and_deletes_a_group(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner, token = factory.user_with_token()
    top = factory.group(token=token)
    other = factory.group(token=token)
    sub = factory.group(token=token, parent_id=top["id"])
    signed_in(page, owner["username"], PASSWORD)
    page.goto(f"/groups/{sub['full_path']}")
    page.get_by_role("navigation", name="Group").get_by_role("link", name="General").click()
    expect(page).to_have_url(f"{server.url}/groups/{sub['full_path']}/-/edit")
    assert page.evaluate(AUDIT) == []

    # A subgroup cannot be more visible than its parent: the API's words, by the field.
    page.get_by_label("Public").check()
    _submit(page, "Save changes")
    expect(page.locator("#group-visibility-error")).to_contain_text("Public is not allowed")
    page.get_by_label("Group name").fill("Renamed sub")
    page.get_by_label("Private").check()
    _submit(page, "Save changes")
    expect(page.get_by_role("status")).to_contain_text("was saved.")
    assert server.root("GET", f"/groups/{sub['id']}").json()["name"] == "Renamed sub"

    transfer = page.get_by_role("region", name="Transfer group")
    transfer.get_by_label("New parent group").select_option(label=other["full_path"])
    transfer.get_by_label(re.compile("To confirm")).fill(sub["full_path"])
    _submit(page, "Transfer group")
    moved = f"{other['full_path']}/{sub['path']}"
    expect(page).to_have_url(f"{server.url}/groups/{moved}/-/edit")
    assert server.root("GET", f"/groups/{sub['id']}").json()["full_path"] == moved

    delete = page.get_by_role("region", name="Delete group")
    delete.get_by_label(re.compile("To confirm")).fill(moved)
    _submit(page, "Delete group")
    expect(page).to_have_url(f"{server.url}/")
    expect(page.get_by_role("status")).to_contain_text("was deleted.")
    assert server.root("GET", f"/groups/{sub['id']}").status_code == 404


def test_maintainers_and_developers_get_only_what_the_api_allows(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    full = project["path_with_namespace"]
    maintainer, developer = factory.user(), factory.user()
    factory.member("groups", group["id"], maintainer["id"], MAINTAINER)
    factory.member("groups", group["id"], developer["id"], DEVELOPER)

    signed_in(page, maintainer["username"], PASSWORD)
    page.goto(f"/groups/{group['full_path']}")
    expect(page.get_by_role("navigation", name="Group").get_by_role("link", name="General")).to_have_count(0)
    page.goto(f"/{full}/-/edit")
    expect(page.get_by_role("heading", name="General settings")).to_be_visible()
    expect(page.get_by_label("Public")).to_have_count(0)
    expect(page.get_by_role("region", name="Delete project")).to_have_count(0)
    page.get_by_label("Project name").fill("By maintainer")
    _submit(page, "Save changes")
    expect(page.get_by_role("status")).to_contain_text("was saved.")

    http = session_for(server, maintainer["username"], PASSWORD)
    assert http.get(f"{server.url}/groups/{group['full_path']}/-/edit", timeout=30).status_code == 403
    csrf = csrf_of(http.get(f"{server.url}/{full}/-/edit", timeout=30).text)
    headers = {"Origin": server.url}
    for action in ("delete", "transfer"):
        response = http.post(
            f"{server.url}/{full}/-/{action}",
            data={"authenticity_token": csrf, "confirm": full, "namespace_id": str(group["id"])},
            headers=headers,
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 403, (action, response.status_code)
    assert server.root("GET", f"/projects/{project['id']}").status_code == 200

    dev = session_for(server, developer["username"], PASSWORD)
    assert dev.get(f"{server.url}/{full}/-/edit", timeout=30).status_code == 403
    # A Developer may create projects in the group, not subgroups: the form offers no such parent.
    new_group = dev.get(f"{server.url}/groups/new", timeout=30).text
    assert f'value="{group["id"]}"' not in new_group
    new_project = dev.get(f"{server.url}/projects/new", timeout=30).text
    assert f'value="{group["id"]}"' in new_project


def test_the_new_pages_fit_a_phone(server: LiveServer, page: Page, factory: Factory) -> None:
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    project = factory.project(token=token, namespace_id=group["id"])
    page.set_viewport_size({"width": 390, "height": 844})
    signed_in(page, owner["username"], PASSWORD)
    for path in (
        "/",
        "/groups/new",
        "/projects/new",
        f"/groups/{group['full_path']}/-/edit",
        f"/{project['path_with_namespace']}/-/edit",
    ):
        response = page.goto(path)
        assert response is not None, path
        assert response.status == 200, path
        # The page's own content (the top bar's collapsing menu is not this page's: see FITS).
        assert page.evaluate(FITS) == [], path
        assert page.evaluate(AUDIT) == [], path


def test_unknown_and_huge_ids_are_refused_in_words(server: LiveServer, factory: Factory) -> None:
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    sub = factory.group(token=token, parent_id=group["id"])
    project = factory.project(token=token, namespace_id=group["id"])
    full = project["path_with_namespace"]
    http = session_for(server, owner["username"], PASSWORD)
    csrf = csrf_of(http.get(f"{server.url}/{full}/-/edit", timeout=30).text)
    posts = [
        ("/groups/new", {"name": "x", "path": uid("x"), "parent_id": "999999999999"}),
        ("/groups/new", {"name": "x", "path": uid("x"), "parent_id": "-1"}),
        ("/projects/new", {"name": "x", "namespace_id": "999999999999"}),
        (
            f"/groups/{sub['full_path']}/-/transfer",
            {"parent_id": "999999999999", "confirm": sub["full_path"]},
        ),
        (f"/{full}/-/transfer", {"namespace_id": "999999999999", "confirm": full}),
        (f"/{full}/-/edit", {"name": "x", "path": project["path"], "visibility": "secret"}),
    ]
    for path, data in posts:
        response = http.post(
            f"{server.url}{path}",
            data={"authenticity_token": csrf, **data},
            headers={"Origin": server.url},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code in (400, 404, 422), (path, response.status_code)
        assert 'class="field-error"' in response.text or 'role="alert"' in response.text, path
    assert server.root("GET", f"/projects/{project['id']}").json()["path_with_namespace"] == full
    assert server.root("GET", f"/groups/{sub['id']}").json()["full_path"] == sub["full_path"]


def test_a_project_called_edit_keeps_its_page(server: LiveServer, page: Page, factory: Factory) -> None:
    """The settings page lives under /-/ (…/-/edit), so no project path is taken from the projects."""
    group = factory.group()
    project = factory.project(namespace_id=group["id"], name="edit", path="edit")
    signed_in(page, "root", ROOT_PASSWORD)
    response = page.goto(f"/{project['path_with_namespace']}")
    assert response is not None
    assert response.status == 200
    expect(page.get_by_role("heading", level=1)).to_contain_text("edit")
    settings = page.goto(f"/{project['path_with_namespace']}/-/edit")
    assert settings is not None
    assert settings.status == 200
