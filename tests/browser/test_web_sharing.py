"""Sharing a project or a group with a group from the Members pages: the "Groups" section, the
"Invite a group" form and "Remove group", and the invited groups' members in the member list.

Each change is checked through the API too (``shared_with_groups``, ``members/all``), so that a
page that only looks right cannot pass; forged posts use requests against the same live server.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.browser.pages import csrf_of, session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import Factory, LiveServer

PASSWORD = "a-long-password-1"
GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50


def _member_row(page: Page, username: str) -> Locator:
    return page.locator("table.members-table").get_by_role("row").filter(has_text=f"@{username}")


def _group_row(page: Page, full_path: str) -> Locator:
    return page.locator("table.shared-groups-table").get_by_role("row").filter(has_text=full_path)


def _shared_with(server: LiveServer, kind: str, source_id: int) -> dict[int, dict[str, Any]]:
    response = server.root("GET", f"/{kind}/{source_id}")
    assert response.status_code == 200, response.text
    return {link["group_id"]: link for link in response.json()["shared_with_groups"]}


def _all_members(server: LiveServer, kind: str, source_id: int) -> dict[int, int]:
    response = server.root("GET", f"/{kind}/{source_id}/members/all", params={"per_page": 100})
    assert response.status_code == 200, response.text
    return {m["id"]: m["access_level"] for m in response.json()}


def _invite(page: Page, full_path: str, role: str, ends_on: str | None = None) -> None:
    page.get_by_label("Group to invite").fill(full_path)
    page.get_by_label("Maximum role").select_option(label=role)
    if ends_on is not None:
        page.get_by_label("Invitation ends on (optional)").fill(ends_on)
    page.get_by_role("button", name="Invite group").click()


def test_a_maintainer_invites_a_group_sees_its_members_capped_and_removes_it(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    home = factory.group()
    project = factory.project(namespace_id=home["id"])
    team = factory.group()
    maintainer = factory.user()
    factory.member("projects", project["id"], maintainer["id"], MAINTAINER)
    factory.member("groups", team["id"], maintainer["id"], GUEST)
    lead = factory.user()
    factory.member("groups", team["id"], lead["id"], MAINTAINER)
    newbie = factory.user()
    factory.member("groups", team["id"], newbie["id"], GUEST)
    url = f"/{project['path_with_namespace']}/-/project_members"

    signed_in(page, maintainer["username"], PASSWORD)
    page.goto(url)
    groups = page.get_by_role("table", name="Groups")
    expect(groups).to_contain_text("This project is not shared with any group.")
    # The picker suggests the groups the Maintainer belongs to; the role stops at their own.
    expect(page.locator(f"#share-group-choices option[value='{team['full_path']}']")).to_have_count(1)
    expect(page.get_by_label("Maximum role").locator("option")).to_have_text(
        ["Guest", "Planner", "Reporter", "Developer", "Maintainer"]
    )

    _invite(page, team["full_path"], "Reporter")
    expect(page.get_by_role("status")).to_have_text(
        f"{team['full_path']} was invited to {project['name']} as Reporter."
    )
    assert _shared_with(server, "projects", project["id"])[team["id"]]["group_access_level"] == REPORTER
    assert _all_members(server, "projects", project["id"])[lead["id"]] == REPORTER

    row = _group_row(page, team["full_path"])
    expect(row).to_contain_text("Reporter")
    expect(row).to_contain_text("No expiration")
    expect(row.get_by_role("link", name=team["name"], exact=True)).to_have_attribute(
        "href", f"/groups/{team['full_path']}"
    )
    # Its members are listed at their level capped by the link's, managed in their group.
    lead_row = _member_row(page, lead["username"])
    expect(lead_row).to_contain_text(f"Invited group: {team['full_path']}")
    expect(lead_row).to_contain_text("Reporter")
    expect(lead_row).not_to_contain_text("Maintainer")
    expect(lead_row.get_by_role("combobox")).to_have_count(0)
    expect(lead_row.get_by_role("button")).to_have_count(0)
    expect(lead_row.get_by_role("link", name=team["full_path"], exact=True)).to_have_attribute(
        "href", f"/groups/{team['full_path']}/-/group_members"
    )
    expect(_member_row(page, newbie["username"])).to_contain_text("Guest")
    # The Maintainer's own, higher, direct membership wins over what the group gives them.
    own = _member_row(page, maintainer["username"])
    expect(own).to_contain_text("Direct member")
    expect(own).not_to_contain_text("Invited group")
    assert page.evaluate(AUDIT) == []

    # Inviting it again is refused in GitLab's words, and changes nothing.
    _invite(page, team["full_path"], "Developer")
    expect(page.get_by_role("alert")).to_have_text("Project already shared with this group.")
    expect(page.get_by_label("Group to invite")).to_have_value(team["full_path"])
    assert _shared_with(server, "projects", project["id"])[team["id"]]["group_access_level"] == REPORTER

    row = _group_row(page, team["full_path"])
    row.get_by_role("button", name="Remove group").click()
    dialog = page.get_by_role("dialog", name=f"Remove {team['full_path']} from {project['name']}?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert team["id"] in _shared_with(server, "projects", project["id"])
    row.get_by_role("button", name="Remove group").click()
    dialog.get_by_role("button", name="Remove group").click()
    expect(page.get_by_role("status")).to_have_text(
        f"{team['full_path']} was removed from {project['name']}."
    )
    expect(_group_row(page, team["full_path"])).to_have_count(0)
    expect(_member_row(page, lead["username"])).to_have_count(0)
    assert _shared_with(server, "projects", project["id"]) == {}
    assert lead["id"] not in _all_members(server, "projects", project["id"])


def test_refusals_are_form_errors_and_hide_which_groups_exist(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    project = factory.project(namespace_id=factory.group()["id"])
    maintainer = factory.user()
    factory.member("projects", project["id"], maintainer["id"], MAINTAINER)
    stranger_group = factory.group(visibility="public")
    url = f"/{project['path_with_namespace']}/-/project_members"

    signed_in(page, maintainer["username"], PASSWORD)
    page.goto(url)
    # A group the Maintainer does not belong to reads like one that does not exist (GitLab: 404).
    for path in (stranger_group["full_path"], "no-such-group-anywhere"):
        _invite(page, path, "Developer")
        expect(page.get_by_role("alert")).to_have_text("Group not found.")
        expect(page.get_by_label("Group to invite")).to_have_value(path)
    assert _shared_with(server, "projects", project["id"]) == {}

    # A level above their own, forged past the select: refused as the API refuses it (403).
    http = session_for(server, maintainer["username"], PASSWORD)
    token = csrf_of(http.get(f"{server.url}{url}", timeout=30).text)
    team = factory.group()
    factory.member("groups", team["id"], maintainer["id"], DEVELOPER)
    forged = http.post(
        f"{server.url}/{project['path_with_namespace']}/-/project_group_links",
        data={"authenticity_token": token, "group_path": team["full_path"], "group_access": str(OWNER)},
        timeout=30,
        allow_redirects=False,
    )
    assert forged.status_code == 403
    assert "You are not allowed to do that." in forged.text
    bad_level = http.post(
        f"{server.url}/{project['path_with_namespace']}/-/project_group_links",
        data={"authenticity_token": token, "group_path": team["full_path"], "group_access": "35"},
        timeout=30,
        allow_redirects=False,
    )
    assert bad_level.status_code == 400
    assert "Group access is not valid." in bad_level.text
    # Without the CSRF token nothing happens.
    no_csrf = http.post(
        f"{server.url}/{project['path_with_namespace']}/-/project_group_links",
        data={"group_path": team["full_path"], "group_access": str(GUEST)},
        timeout=30,
        allow_redirects=False,
    )
    assert no_csrf.status_code == 403
    assert _shared_with(server, "projects", project["id"]) == {}


def test_a_developer_sees_the_groups_but_no_invite_form_and_cannot_post_one(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    project = factory.project(namespace_id=factory.group()["id"])
    team = factory.group()
    member = factory.user()
    factory.member("groups", team["id"], member["id"], DEVELOPER)
    shared = server.root(
        "POST", f"/projects/{project['id']}/share", json={"group_id": team["id"], "group_access": DEVELOPER}
    )
    assert shared.status_code == 201, shared.text
    developer = factory.user()
    factory.member("projects", project["id"], developer["id"], DEVELOPER)
    factory.member("groups", team["id"], developer["id"], OWNER)
    url = f"/{project['path_with_namespace']}/-/project_members"

    signed_in(page, developer["username"], PASSWORD)
    page.goto(url)
    expect(page.get_by_role("heading", name="Invite a group")).to_have_count(0)
    expect(page.get_by_label("Group to invite")).to_have_count(0)
    row = _group_row(page, team["full_path"])
    expect(row).to_contain_text("Developer")
    expect(row.get_by_role("button")).to_have_count(0)
    expect(_member_row(page, member["username"])).to_contain_text(f"Invited group: {team['full_path']}")

    http = session_for(server, developer["username"], PASSWORD)
    token = csrf_of(http.get(f"{server.url}{url}", timeout=30).text)
    other = factory.group()
    factory.member("groups", other["id"], developer["id"], OWNER)
    base = f"{server.url}/{project['path_with_namespace']}/-/project_group_links"
    invite = http.post(
        base,
        data={"authenticity_token": token, "group_path": other["full_path"], "group_access": str(GUEST)},
        timeout=30,
        allow_redirects=False,
    )
    assert invite.status_code == 403
    remove = http.post(
        f"{base}/{team['id']}/remove", data={"authenticity_token": token}, timeout=30, allow_redirects=False
    )
    assert remove.status_code == 403
    assert set(_shared_with(server, "projects", project["id"])) == {team["id"]}


def test_a_group_owner_shares_a_group_with_an_expiry_and_removes_it(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner = factory.user()
    parent = factory.group()
    factory.member("groups", parent["id"], owner["id"], OWNER)
    group = factory.group(parent_id=parent["id"])
    team_parent = factory.group(visibility="public")
    team = factory.group(parent_id=team_parent["id"], visibility="public")
    factory.member("groups", team["id"], owner["id"], GUEST)
    above = factory.user()  # a member of the invited group's parent: inherited into it
    factory.member("groups", team_parent["id"], above["id"], OWNER)
    ends_on = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)).isoformat()
    url = f"/groups/{group['full_path']}/-/group_members"

    signed_in(page, owner["username"], PASSWORD)
    page.goto(url)
    # Neither the group itself nor a group above it can be invited.
    expect(page.locator(f"#share-group-choices option[value='{team['full_path']}']")).to_have_count(1)
    expect(page.locator(f"#share-group-choices option[value='{group['full_path']}']")).to_have_count(0)
    expect(page.locator(f"#share-group-choices option[value='{parent['full_path']}']")).to_have_count(0)
    _invite(page, parent["full_path"], "Guest")
    expect(page.get_by_role("alert")).to_have_text(
        "Group cannot be shared with itself or one of its ancestors."
    )

    _invite(page, team["full_path"], "Developer", ends_on)
    expect(page.get_by_role("status")).to_have_text(
        f"{team['full_path']} was invited to {group['name']} as Developer."
    )
    link = _shared_with(server, "groups", group["id"])[team["id"]]
    assert (link["group_access_level"], link["expires_at"]) == (DEVELOPER, ends_on)
    row = _group_row(page, team["full_path"])
    expect(row).to_contain_text("Developer")
    expected_day = dt.date.fromisoformat(ends_on)
    expect(row).to_contain_text(f"{expected_day:%b} {expected_day.day}, {expected_day.year}")
    above_row = _member_row(page, above["username"])
    expect(above_row).to_contain_text(f"Invited group: {team['full_path']}")
    expect(above_row).to_contain_text("Developer")
    assert _all_members(server, "groups", group["id"])[above["id"]] == DEVELOPER
    assert page.evaluate(AUDIT) == []

    # The group again: GitLab's message for a duplicate.
    _invite(page, team["full_path"], "Guest")
    expect(page.get_by_role("alert")).to_have_text(
        "Shared group The group has already been shared with this group."
    )

    _group_row(page, team["full_path"]).get_by_role("button", name="Remove group").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove group").click()
    expect(page.get_by_role("status")).to_have_text(f"{team['full_path']} was removed from {group['name']}.")
    assert _shared_with(server, "groups", group["id"]) == {}
    expect(_member_row(page, above["username"])).to_have_count(0)


def test_a_group_maintainer_may_not_share_the_group(server: LiveServer, page: Page, factory: Factory) -> None:
    group = factory.group()
    maintainer = factory.user()
    factory.member("groups", group["id"], maintainer["id"], MAINTAINER)
    team = factory.group(visibility="public")
    url = f"/groups/{group['full_path']}/-/group_members"
    signed_in(page, maintainer["username"], PASSWORD)
    page.goto(url)
    expect(page.get_by_role("heading", name="Invite a group")).to_have_count(0)
    expect(page.get_by_role("heading", name="Groups")).to_be_visible()
    http = session_for(server, maintainer["username"], PASSWORD)
    token = csrf_of(http.get(f"{server.url}{url}", timeout=30).text)
    response = http.post(
        f"{server.url}/groups/{group['full_path']}/-/group_links",
        data={"authenticity_token": token, "group_path": team["full_path"], "group_access": str(GUEST)},
        timeout=30,
        allow_redirects=False,
    )
    # GitLab's group share answers "Not Found" to those who are not Owners.
    assert response.status_code == 404
    assert _shared_with(server, "groups", group["id"]) == {}
