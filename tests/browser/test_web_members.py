"""The project and group Members pages: who is listed, which controls each viewer gets, and the forms.

Browser tests drive Debian's headless Chromium; forged posts (a level the viewer may not grant, no
CSRF token) use requests against the same live server. After every change the API's view is
checked, so that a page that only looks right cannot pass.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests
from playwright.sync_api import Locator, Page, expect

from tests.browser.pages import csrf_of, session_for, signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer

PASSWORD = "a-long-password-1"
GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50


def _row(page: Page, username: str) -> Locator:
    return page.get_by_role("row").filter(has_text=f"@{username}")


def _api_member(server: LiveServer, kind: str, source_id: int, user_id: int) -> dict[str, Any] | None:
    response = server.root("GET", f"/{kind}/{source_id}/members/{user_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return dict(response.json())


def _all_members(server: LiveServer, kind: str, source_id: int) -> dict[int, dict[str, Any]]:
    response = server.root("GET", f"/{kind}/{source_id}/members/all", params={"per_page": 100})
    assert response.status_code == 200, response.text
    return {m["id"]: m for m in response.json()}


def _project_in_group(factory: Factory) -> tuple[dict[str, Any], dict[str, Any]]:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    return group, project


def _project_bot(server: LiveServer, project_id: int) -> dict[str, Any]:
    token = server.root(
        "POST", f"/projects/{project_id}/access_tokens", json={"name": "deployer", "scopes": ["api"]}
    )
    assert token.status_code == 201, token.text
    bot = server.root("GET", f"/users/{token.json()['user_id']}").json()
    return dict(bot)


def _members_url(project: dict[str, Any]) -> str:
    return f"/{project['path_with_namespace']}/-/project_members"


def test_the_project_members_page_shows_bots_service_accounts_and_inherited_members(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    group, project = _project_in_group(factory)
    inherited = factory.user()
    factory.member("groups", group["id"], inherited["id"], DEVELOPER)
    bot = _project_bot(server, project["id"])
    account = server.root("POST", "/service_accounts", json={}).json()
    factory.member("projects", project["id"], account["id"], REPORTER)
    person = factory.user()
    factory.member("projects", project["id"], person["id"], GUEST)
    # The API's view, which the page must agree with.
    listed = _all_members(server, "projects", project["id"])
    assert {inherited["id"], bot["id"], account["id"], person["id"]} <= set(listed)

    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(_members_url(project))
    expect(page.get_by_role("heading", name="Members", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Members")).to_have_attribute("aria-current", "page")

    bot_row = _row(page, bot["username"])
    expect(bot_row).to_have_count(1)
    expect(bot_row.locator(".badge-bot")).to_have_text("Bot")
    expect(bot_row).to_contain_text("Maintainer")
    expect(bot_row).to_contain_text("Managed by its access token")
    expect(bot_row).to_contain_text("Direct member")
    expect(bot_row.get_by_role("combobox")).to_have_count(0)
    expect(bot_row.get_by_role("button")).to_have_count(0)

    account_row = _row(page, account["username"])
    expect(account_row.locator(".badge-service")).to_have_text("Service account")
    expect(account_row.get_by_role("combobox", name=f"Role of @{account['username']}")).to_have_value(
        str(REPORTER)
    )
    expect(account_row.get_by_role("button", name="Remove")).to_be_visible()

    inherited_row = _row(page, inherited["username"])
    expect(inherited_row).to_contain_text(f"Inherited from {group['full_name']}")
    expect(inherited_row).to_contain_text("Developer")
    expect(inherited_row.get_by_role("combobox")).to_have_count(0)
    expect(inherited_row.get_by_role("button")).to_have_count(0)
    link = inherited_row.get_by_role("link", name=group["full_name"], exact=True)
    expect(link).to_have_attribute("href", f"/groups/{group['full_path']}/-/group_members")

    expect(inherited_row).to_contain_text("No expiration")
    person_row = _row(page, person["username"])
    expect(person_row.get_by_label(f"Expiration date of @{person['username']}")).to_have_value("")
    expect(person_row.locator(".badge")).to_have_count(0)

    # The filter narrows the list by name.
    page.get_by_label("Filter by name").fill(account["name"])
    page.get_by_role("button", name="Filter").click()
    expect(_row(page, account["username"])).to_have_count(1)
    expect(_row(page, person["username"])).to_have_count(0)

    # The group's page lists the inherited member as its direct member, with controls there.
    link_page = page.goto(f"/groups/{group['full_path']}/-/group_members")
    assert link_page is not None
    assert link_page.status == 200
    group_row = _row(page, inherited["username"])
    expect(group_row).to_contain_text("Direct member")
    expect(group_row.get_by_role("combobox", name=f"Role of @{inherited['username']}")).to_have_value(
        str(DEVELOPER)
    )


def test_adding_changing_and_removing_a_project_member_through_the_forms(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    _group, project = _project_in_group(factory)
    newcomer = factory.user()
    expiry = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=40)).isoformat()
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(_members_url(project))

    page.get_by_label("Username or e-mail").fill(newcomer["email"])
    page.get_by_label("Role", exact=True).select_option(label="Developer")
    page.get_by_label("Expiration date (optional)").fill(expiry)
    page.get_by_role("button", name="Add to project").click()
    expect(page.get_by_role("status")).to_have_text(f"@{newcomer['username']} was added as Developer.")
    added = _api_member(server, "projects", project["id"], newcomer["id"])
    assert added is not None
    assert added["access_level"] == DEVELOPER
    assert added["expires_at"] == expiry

    row = _row(page, newcomer["username"])
    expect(row).to_contain_text("Direct member")
    row.get_by_role("combobox", name=f"Role of @{newcomer['username']}").select_option(label="Maintainer")
    row.get_by_label(f"Expiration date of @{newcomer['username']}").fill("")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text(
        f"@{newcomer['username']} is now Maintainer, with no expiration."
    )
    changed = _api_member(server, "projects", project["id"], newcomer["id"])
    assert changed is not None
    assert changed["access_level"] == MAINTAINER
    assert changed["expires_at"] is None
    expect(_row(page, newcomer["username"]).get_by_role("combobox")).to_have_value(str(MAINTAINER))

    row = _row(page, newcomer["username"])
    row.get_by_role("button", name="Remove").click()
    dialog = page.get_by_role("dialog", name=f"Remove @{newcomer['username']} from {project['name']}?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert _api_member(server, "projects", project["id"], newcomer["id"]) is not None
    row.get_by_role("button", name="Remove").click()
    dialog.get_by_role("button", name="Remove member").click()
    expect(page.get_by_role("status")).to_have_text(
        f"@{newcomer['username']} was removed from {project['name']}."
    )
    expect(_row(page, newcomer["username"])).to_have_count(0)
    assert _api_member(server, "projects", project["id"], newcomer["id"]) is None
    assert newcomer["id"] not in _all_members(server, "projects", project["id"])


def test_the_forms_report_the_domains_refusals_without_changing_anything(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    _group, project = _project_in_group(factory)
    _other_group, other = _project_in_group(factory)
    bot = _project_bot(server, other["id"])
    person = factory.user()
    factory.member("projects", project["id"], person["id"], DEVELOPER)
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(_members_url(project))

    # A project bot belongs to its own project only.
    page.get_by_label("Username or e-mail").fill(bot["username"])
    page.get_by_role("button", name="Add to project").click()
    expect(page.get_by_role("alert")).to_have_text("Project bots cannot be added to other groups / projects.")
    expect(page.get_by_label("Username or e-mail")).to_have_value(bot["username"])
    assert _api_member(server, "projects", project["id"], bot["id"]) is None

    # Somebody who is already a member, and somebody who does not exist.
    page.get_by_label("Username or e-mail").fill(f"@{person['username']}")
    page.get_by_role("button", name="Add to project").click()
    expect(page.get_by_role("alert")).to_have_text("Member already exists.")
    page.get_by_label("Username or e-mail").fill("nobody-by-this-name")
    page.get_by_role("button", name="Add to project").click()
    expect(page.get_by_role("alert")).to_have_text("User not found.")

    # A date in the past (the browser's date picker would stop it; a forged post is not stopped).
    http = session_for(server, "root", ROOT_PASSWORD)
    url = f"{server.url}{_members_url(project)}"
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    response = http.post(
        f"{url}/{person['id']}",
        data={
            "access_level": str(DEVELOPER),
            "expires_at": yesterday,
            "authenticity_token": _csrf(http, url),
        },
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 400
    assert "Expiration date cannot be a date in the past." in response.text
    for garbage in ({"access_level": "lots"}, {"access_level": "30", "expires_at": "soon"}):
        response = http.post(
            f"{url}/{person['id']}",
            data=garbage | {"authenticity_token": _csrf(http, url)},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 400, response.text
    for user_id in ("abc", "99999999999", str(bot["id"])):
        response = http.post(
            f"{url}/{user_id}/remove", data={"authenticity_token": _csrf(http, url)}, timeout=30
        )
        assert response.status_code == 404, response.text
    unchanged = _api_member(server, "projects", project["id"], person["id"])
    assert unchanged is not None
    assert (unchanged["access_level"], unchanged["expires_at"]) == (DEVELOPER, None)

    # The bot's own membership cannot be changed or removed through the forms either.
    other_url = f"{server.url}{_members_url(other)}"
    for action, data in ((f"/{bot['id']}", {"access_level": str(OWNER)}), (f"/{bot['id']}/remove", {})):
        response = http.post(
            other_url + action,
            data=data | {"authenticity_token": _csrf(http, other_url)},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 403, response.text
    kept = _api_member(server, "projects", other["id"], bot["id"])
    assert kept is not None
    assert kept["access_level"] == MAINTAINER


def _csrf(http: requests.Session, url: str) -> str:
    response = http.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


def test_a_developer_sees_the_list_without_any_controls(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    _group, project = _project_in_group(factory)
    developer = factory.user()
    colleague = factory.user()
    factory.member("projects", project["id"], developer["id"], DEVELOPER)
    factory.member("projects", project["id"], colleague["id"], REPORTER)
    signed_in(page, developer["username"], PASSWORD)
    page.goto(_members_url(project))
    expect(_row(page, colleague["username"])).to_contain_text("Reporter")
    expect(_row(page, developer["username"])).to_contain_text("Developer")
    expect(page.get_by_role("heading", name="Add members")).to_have_count(0)
    expect(page.get_by_role("table").get_by_role("combobox")).to_have_count(0)
    expect(page.get_by_role("table").get_by_role("button")).to_have_count(0)
    expect(page.locator("input[type=date]")).to_have_count(0)

    # Posting anyway (with a valid CSRF token) is refused, and nothing changes.
    http = session_for(server, developer["username"], PASSWORD)
    url = f"{server.url}{_members_url(project)}"
    stranger = factory.user()
    attempts = [
        ("", {"username": stranger["username"], "access_level": str(GUEST)}),
        (f"/{colleague['id']}", {"access_level": str(DEVELOPER)}),
        (f"/{colleague['id']}/remove", {}),
    ]
    for action, data in attempts:
        response = http.post(
            url + action,
            data=data | {"authenticity_token": _csrf(http, url)},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 403, response.text
        assert "You are not allowed to do that." in response.text
    assert _api_member(server, "projects", project["id"], stranger["id"]) is None
    kept = _api_member(server, "projects", project["id"], colleague["id"])
    assert kept is not None
    assert kept["access_level"] == REPORTER


def test_a_maintainer_cannot_grant_owner(server: LiveServer, page: Page, factory: Factory) -> None:
    _group, project = _project_in_group(factory)
    maintainer = factory.user()
    owner = factory.user()
    developer = factory.user()
    newcomer = factory.user()
    factory.member("projects", project["id"], maintainer["id"], MAINTAINER)
    factory.member("projects", project["id"], owner["id"], OWNER)
    factory.member("projects", project["id"], developer["id"], DEVELOPER)
    signed_in(page, maintainer["username"], PASSWORD)
    page.goto(_members_url(project))
    role = page.get_by_label("Role", exact=True)
    expect(role.locator("option")).to_have_text(["Guest", "Planner", "Reporter", "Developer", "Maintainer"])
    options = _row(page, developer["username"]).get_by_role("combobox").locator("option")
    expect(options).to_have_text(["Guest", "Planner", "Reporter", "Developer", "Maintainer"])
    # An Owner of the project is changed by Owners only.
    owner_row = _row(page, owner["username"])
    expect(owner_row).to_contain_text("Owner")
    expect(owner_row.get_by_role("combobox")).to_have_count(0)
    expect(owner_row.get_by_role("button")).to_have_count(0)

    # The form works within the maintainer's own level.
    page.get_by_label("Username or e-mail").fill(newcomer["username"])
    role.select_option(label="Maintainer")
    page.get_by_role("button", name="Add to project").click()
    expect(page.get_by_role("status")).to_have_text(f"@{newcomer['username']} was added as Maintainer.")
    added = _api_member(server, "projects", project["id"], newcomer["id"])
    assert added is not None
    assert added["access_level"] == MAINTAINER

    # Forged posts for Owner are refused and change nothing.
    http = session_for(server, maintainer["username"], PASSWORD)
    url = f"{server.url}{_members_url(project)}"
    stranger = factory.user()
    forged = [
        ("", {"username": stranger["username"], "access_level": str(OWNER)}),
        (f"/{developer['id']}", {"access_level": str(OWNER)}),
        (f"/{owner['id']}", {"access_level": str(DEVELOPER)}),
        (f"/{owner['id']}/remove", {}),
    ]
    for action, data in forged:
        response = http.post(
            url + action,
            data=data | {"authenticity_token": _csrf(http, url)},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code in (400, 403), response.text
        assert 'role="alert"' in response.text
    assert _api_member(server, "projects", project["id"], stranger["id"]) is None
    members = _all_members(server, "projects", project["id"])
    assert members[developer["id"]]["access_level"] == DEVELOPER
    assert members[owner["id"]]["access_level"] == OWNER


def test_forms_without_csrf_are_refused_and_strangers_get_404(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    group, project = _project_in_group(factory)
    person = factory.user()
    factory.member("projects", project["id"], person["id"], DEVELOPER)
    url = f"{server.url}{_members_url(project)}"
    http = session_for(server, "root", ROOT_PASSWORD)
    newcomer = factory.user()
    for action, data in (
        ("", {"username": newcomer["username"], "access_level": str(GUEST)}),
        (f"/{person['id']}", {"access_level": str(GUEST)}),
        (f"/{person['id']}/remove", {}),
    ):
        for token in ({}, {"authenticity_token": "forged"}):
            response = http.post(url + action, data=data | token, timeout=30, allow_redirects=False)
            assert response.status_code == 403
            assert "The form could not be verified" in response.text
    assert _api_member(server, "projects", project["id"], newcomer["id"]) is None
    kept = _api_member(server, "projects", project["id"], person["id"])
    assert kept is not None
    assert kept["access_level"] == DEVELOPER

    # Someone who is not a member of the private project and group does not learn they exist.
    stranger = factory.user()
    outsider = session_for(server, stranger["username"], PASSWORD)
    group_url = f"{server.url}/groups/{group['full_path']}/-/group_members"
    for address in (url, group_url):
        assert outsider.get(address, timeout=30).status_code == 404
    token = csrf_of(outsider.get(f"{server.url}/", timeout=30).text)
    response = outsider.post(
        f"{url}/{person['id']}/remove", data={"authenticity_token": token}, timeout=30, allow_redirects=False
    )
    assert response.status_code == 404
    assert _api_member(server, "projects", project["id"], person["id"]) is not None
    # Anonymous visitors are sent to sign in.
    response = requests.get(url, timeout=30, allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/users/sign_in")
    signed_in(page, stranger["username"], PASSWORD)
    response_page = page.goto(_members_url(project))
    assert response_page is not None
    assert response_page.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


def test_the_group_members_page_works_the_same_way(server: LiveServer, page: Page, factory: Factory) -> None:
    parent = factory.group()
    group = factory.group(parent_id=parent["id"])
    inherited = factory.user()
    factory.member("groups", parent["id"], inherited["id"], REPORTER)
    token = server.root(
        "POST", f"/groups/{group['id']}/access_tokens", json={"name": "group-deployer", "scopes": ["api"]}
    )
    assert token.status_code == 201, token.text
    bot = server.root("GET", f"/users/{token.json()['user_id']}").json()
    newcomer = factory.user()
    url = f"/groups/{group['full_path']}/-/group_members"

    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(url)
    expect(page.get_by_role("heading", name="Members", exact=True)).to_be_visible()
    bot_row = _row(page, bot["username"])
    expect(bot_row.locator(".badge-bot")).to_have_text("Bot")
    expect(bot_row).to_contain_text("Managed by its access token")
    expect(bot_row.get_by_role("combobox")).to_have_count(0)
    expect(bot_row.get_by_role("button")).to_have_count(0)
    inherited_row = _row(page, inherited["username"])
    expect(inherited_row).to_contain_text(f"Inherited from {parent['full_name']}")
    expect(inherited_row.get_by_role("link", name="Manage in group")).to_have_attribute(
        "href", f"/groups/{parent['full_path']}/-/group_members"
    )
    # Groups offer Minimal access as well; root, an admin, may grant Owner.
    expect(page.get_by_label("Role", exact=True).locator("option")).to_have_text(
        ["Minimal Access", "Guest", "Planner", "Reporter", "Developer", "Maintainer", "Owner"]
    )

    page.get_by_label("Username or e-mail").fill(newcomer["username"])
    page.get_by_label("Role", exact=True).select_option(label="Developer")
    page.get_by_role("button", name="Add to group").click()
    expect(page.get_by_role("status")).to_have_text(f"@{newcomer['username']} was added as Developer.")
    added = _api_member(server, "groups", group["id"], newcomer["id"])
    assert added is not None
    assert added["access_level"] == DEVELOPER

    # A role below the one inherited from the parent group is refused, with the domain's reason.
    page.get_by_label("Username or e-mail").fill(inherited["username"])
    page.get_by_label("Role", exact=True).select_option(label="Guest")
    page.get_by_role("button", name="Add to group").click()
    expect(page.get_by_role("alert")).to_have_text(
        f"Role should be greater than or equal to Reporter inherited membership from group {parent['name']}."
    )
    assert _api_member(server, "groups", group["id"], inherited["id"]) is None

    row = _row(page, newcomer["username"])
    row.get_by_role("combobox").select_option(label="Owner")
    row.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text(f"@{newcomer['username']} is now Owner")
    changed = _api_member(server, "groups", group["id"], newcomer["id"])
    assert changed is not None
    assert changed["access_level"] == OWNER

    _row(page, newcomer["username"]).get_by_role("button", name="Remove").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove member").click()
    expect(page.get_by_role("status")).to_have_text(
        f"@{newcomer['username']} was removed from {group['name']}."
    )
    assert _api_member(server, "groups", group["id"], newcomer["id"]) is None


def test_the_last_owner_of_a_group_keeps_the_role(server: LiveServer, page: Page, factory: Factory) -> None:
    owner, owner_token = factory.user_with_token()
    group = factory.group(token=owner_token)
    helper = factory.user()
    factory.member("groups", group["id"], helper["id"], MAINTAINER)
    url = f"/groups/{group['full_path']}/-/group_members"
    signed_in(page, owner["username"], PASSWORD)
    page.goto(url)
    owner_row = _row(page, owner["username"])
    expect(owner_row).to_contain_text("The last Owner")
    expect(owner_row.get_by_role("combobox")).to_have_count(0)
    expect(owner_row.get_by_role("button", name="Remove")).to_have_count(0)
    # The expiry may still change: the role goes along unchanged.
    expiry = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=90)).isoformat()
    owner_row.get_by_label(f"Expiration date of @{owner['username']}").fill(expiry)
    owner_row.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text(f"@{owner['username']} is now Owner, until")
    kept = _api_member(server, "groups", group["id"], owner["id"])
    assert kept is not None
    assert (kept["access_level"], kept["expires_at"]) == (OWNER, expiry)

    http = session_for(server, owner["username"], PASSWORD)
    full = f"{server.url}{url}"
    for action, data in (
        (f"/{owner['id']}", {"access_level": str(MAINTAINER)}),
        (f"/{owner['id']}/remove", {}),
    ):
        response = http.post(
            full + action,
            data=data | {"authenticity_token": _csrf(http, full)},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 403, response.text
        assert "The last Owner" in response.text
    kept = _api_member(server, "groups", group["id"], owner["id"])
    assert kept is not None
    assert kept["access_level"] == OWNER
    # Once there is another Owner, the first one's controls appear.
    server.root("PUT", f"/groups/{group['id']}/members/{helper['id']}", json={"access_level": OWNER})
    page.reload()
    expect(_row(page, owner["username"]).get_by_role("button", name="Remove")).to_be_visible()


def test_the_holder_of_a_personal_namespace_stays_owner(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    holder, holder_token = factory.user_with_token()
    project = factory.project(token=holder_token)
    signed_in(page, holder["username"], PASSWORD)
    page.goto(_members_url(project))
    row = _row(page, holder["username"])
    expect(row).to_contain_text("Owner")
    expect(row).to_contain_text("Holds the personal namespace")
    expect(row.get_by_role("combobox")).to_have_count(0)
    expect(row.get_by_role("button")).to_have_count(0)
    # The holder still manages everyone else, up to Owner.
    expect(page.get_by_label("Role", exact=True).locator("option").last).to_have_text("Owner")
    http = session_for(server, holder["username"], PASSWORD)
    url = f"{server.url}{_members_url(project)}"
    response = http.post(
        f"{url}/{holder['id']}/remove",
        data={"authenticity_token": _csrf(http, url)},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 403
    assert "Holds the personal namespace" in response.text
    kept = _api_member(server, "projects", project["id"], holder["id"])
    assert kept is not None
    assert kept["access_level"] == OWNER
