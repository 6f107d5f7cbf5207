"""The Admin area of the web UI: users, service accounts, seats, audit events, settings.

Browser tests drive Debian's headless Chromium as root and check each result through the API; the
checks a browser cannot make (a non-admin's 404s, a post without its CSRF token, values a number
field would not let through) use requests against the same live server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from playwright.sync_api import Locator, Page, expect

from keycrew.context import Actor
from keycrew.instance.settings import instance_settings, set_license
from tests.browser.pages import csrf_of, session_for, signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
ADMIN_PAGES = (
    "/admin",
    "/admin/users",
    "/admin/users/root",
    "/admin/service_accounts",
    "/admin/service_accounts/1",
    "/admin/seats",
    "/admin/audit_events",
    "/admin/application_settings",
)


def _as_root(page: Page) -> Page:
    return signed_in(page, "root", ROOT_PASSWORD)


def _state(server: LiveServer, user_id: int) -> str:
    response = server.root("GET", f"/users/{user_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["state"])


@contextmanager
def license_as(server: LiveServer, plan: str, seats: int | None) -> Iterator[None]:
    """Run the block under another license, then restore the one before (tests share a server)."""
    with server.runtime.sessions() as db, db.begin():
        settings = instance_settings(server.runtime.ctx(db, Actor.system()))
        before = (settings.plan, settings.seats)
        set_license(server.runtime.ctx(db, Actor.system()), plan, seats)
    try:
        yield
    finally:
        with server.runtime.sessions() as db, db.begin():
            set_license(server.runtime.ctx(db, Actor.system()), *before)


def _issue_by(server: LiveServer, factory: Factory, project: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A new user who opened an issue in ``project`` (root's, so it outlives the user)."""
    user, token = factory.user_with_token()
    factory.member("projects", project["id"], user["id"], 30)
    response = server.request(
        "POST", f"/projects/{project['id']}/issues", token=token, json={"title": uid("issue")}
    )
    assert response.status_code == 201, response.text
    return user, int(response.json()["iid"])


def _tab(page: Page, label: str) -> None:
    page.get_by_role("navigation", name="Kinds of user").get_by_role(
        "link", name=re.compile(rf"^{label} \d+$")
    ).click()
    expect(page.get_by_role("link", name=re.compile(rf"^{label} \d+$"))).to_have_attribute(
        "aria-current", "page"
    )


def _search(page: Page, term: str) -> None:
    page.get_by_label("Search by name, username or email").fill(term)
    page.get_by_role("button", name="Search").click()


def test_the_users_tabs_tell_humans_bots_service_accounts_and_internal_users_apart(
    server: LiveServer, page: Page, factory: Factory, gl: Any
) -> None:
    project = factory.project()
    bot_token = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": uid("deployer"), "scopes": ["api"]}
    ).json()
    bot = server.root("GET", f"/users/{bot_token['user_id']}").json()
    account = gl.service_accounts.create({"name": uid("Robot")})
    human = factory.user()
    gl.users.delete(factory.user()["id"])  # the Ghost User exists from now on

    _as_root(page)
    page.goto("/admin")
    expect(page).to_have_url(f"{server.url}/admin/users")
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    table = page.get_by_role("table")

    _tab(page, "Bots")
    _search(page, bot["username"])
    row = table.get_by_role("row").filter(has_text="@" + bot["username"])
    expect(row).to_have_count(1)
    expect(row.locator(".badge-bot")).to_have_text("Bot")
    expect(page.get_by_role("link", name="Bots 1")).to_be_visible()
    expect(page.get_by_role("link", name="Humans 0")).to_be_visible()

    _tab(page, "Service accounts")
    _search(page, account.username)
    row = table.get_by_role("row").filter(has_text="@" + account.username)
    expect(row).to_have_count(1)
    expect(row.locator(".badge-service")).to_have_text("Service account")
    expect(page.get_by_role("link", name="All 1")).to_be_visible()

    _tab(page, "Internal")
    _search(page, "ghost")
    row = table.get_by_role("row").filter(has_text="Ghost User")
    expect(row).to_have_count(1)
    expect(row.locator(".badge-internal")).to_have_text("Internal")

    _tab(page, "Humans")
    _search(page, human["username"])
    expect(table.get_by_role("row").filter(has_text="@" + human["username"])).to_have_count(1)
    # A tab shows its kind only: the bot is no human, the human no bot.
    _search(page, bot["username"])
    expect(table.get_by_role("row").filter(has_text="@" + bot["username"])).to_have_count(0)
    expect(page.get_by_text("No users match")).to_be_visible()
    _tab(page, "Bots")
    _search(page, human["username"])
    expect(table.get_by_role("row").filter(has_text="@" + human["username"])).to_have_count(0)

    # The Ghost User's page shows what it is, and no actions (nobody can change it).
    page.goto("/admin/users/ghost")
    expect(page.get_by_text("Internal user (Ghost)")).to_be_visible()
    expect(page.get_by_text("Nobody can change or delete them.")).to_be_visible()
    expect(page.get_by_role("button", name="Block")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete user")).to_have_count(0)


def _showing(first: int, last: int, total: int) -> str:
    return f"Showing {first}\N{EN DASH}{last} of {total}"


def test_the_users_list_is_paginated(server: LiveServer, page: Page, factory: Factory) -> None:
    prefix = uid("pg")
    names = [
        factory.user(
            username=f"{prefix}{n:02d}", email=f"{prefix}{n:02d}@example.com", name=f"Pager {n:02d}"
        )["username"]
        for n in range(52)
    ]
    _as_root(page)
    page.goto(f"/admin/users?search={prefix}")
    expect(page.get_by_text(_showing(1, 50, 52))).to_be_visible()
    # A search lists by name: the first 50 here, the last two on the next page.
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows.filter(has_text="@" + names[0])).to_have_count(1)
    expect(rows.filter(has_text="@" + names[-1])).to_have_count(0)
    page.get_by_role("link", name="Next page").click()
    expect(page.get_by_text(_showing(51, 52, 52))).to_be_visible()
    expect(rows).to_have_count(3)
    expect(rows.filter(has_text="@" + names[-1])).to_have_count(1)
    expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    page.get_by_role("link", name="Previous page").click()
    expect(page.get_by_text(_showing(1, 50, 52))).to_be_visible()


def test_block_unblock_and_a_refused_deactivation(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    _as_root(page)
    page.goto(f"/admin/users/{user['username']}")
    expect(page.get_by_role("heading", name=user["name"])).to_be_visible()
    seat = server.root("GET", f"/users/{user['id']}").json()["using_license_seat"]
    expect(page.get_by_text("Billable: takes a seat" if seat else "Not billable")).to_be_visible()

    page.get_by_role("button", name="Block", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Block @{user['username']}?")
    dialog.get_by_role("button", name="Block user").click()
    expect(page.get_by_role("status")).to_have_text(f"@{user['username']} has been blocked.")
    assert _state(server, user["id"]) == "blocked"
    expect(page.locator("h1 .badge-state")).to_have_text("Blocked")

    page.get_by_role("button", name="Unblock").click()
    expect(page.get_by_role("status")).to_have_text(f"@{user['username']} has been unblocked.")
    assert _state(server, user["id"]) == "active"

    # Someone who signed in lately cannot be deactivated: the domain's refusal, readable, no 500.
    session_for(server, user["username"], PASSWORD)
    page.reload()
    page.get_by_role("button", name="Deactivate").click()
    page.get_by_role("dialog").get_by_role("button", name="Deactivate user").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "The user you are trying to deactivate has been active in the past 90 days"
    )
    assert _state(server, user["id"]) == "active"


def test_delete_a_user_keeping_or_removing_their_contributions(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    project = factory.project()
    keeper, kept_iid = _issue_by(server, factory, project)
    remover, removed_iid = _issue_by(server, factory, project)
    _as_root(page)

    page.goto(f"/admin/users/{keeper['username']}")
    page.get_by_role("button", name="Delete user", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete user", exact=True).click()
    expect(page).to_have_url(f"{server.url}/admin/users")
    expect(page.get_by_role("status")).to_contain_text(f"@{keeper['username']} has been deleted.")
    assert server.root("GET", f"/users/{keeper['id']}").status_code == 404
    issue = server.root("GET", f"/projects/{project['id']}/issues/{kept_iid}")
    assert issue.status_code == 200, issue.text
    assert issue.json()["author"]["username"].startswith("ghost")

    page.goto(f"/admin/users/{remover['username']}")
    page.get_by_role("button", name="Delete user and contributions").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete user and contributions").click()
    expect(page.get_by_role("status")).to_contain_text("with everything they authored")
    assert server.root("GET", f"/users/{remover['id']}").status_code == 404
    assert server.root("GET", f"/projects/{project['id']}/issues/{removed_iid}").status_code == 404


def test_the_sole_owner_of_a_group_is_not_deleted_softly(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    _as_root(page)
    page.goto(f"/admin/users/{owner['username']}")
    page.get_by_role("button", name="Delete user", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete user", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(
        "User cannot be removed while is the sole-owner of a group."
    )
    assert server.root("GET", f"/users/{owner['id']}").status_code == 200
    assert server.root("GET", f"/groups/{group['id']}").status_code == 200


def test_unlock_a_locked_account(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    for attempt in range(10):
        http = requests.Session()
        form = http.get(f"{server.url}/users/sign_in", timeout=30)
        http.post(
            f"{server.url}/users/sign_in",
            data={
                "login": user["username"],
                "password": f"wrong-{attempt}",
                "authenticity_token": csrf_of(form.text),
            },
            timeout=30,
        )
    _as_root(page)
    page.goto(f"/admin/users?search={user['username']}")
    expect(
        page.get_by_role("row").filter(has_text="@" + user["username"]).locator(".badge-locked")
    ).to_have_text("Locked")
    page.goto(f"/admin/users/{user['username']}")
    expect(page.get_by_text("locked until")).to_be_visible()
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_role("status")).to_have_text(f"@{user['username']} has been unlocked.")
    expect(page.get_by_role("button", name="Unlock")).to_have_count(0)
    expect(page.locator(".badge-locked")).to_have_count(0)
    # The right password works again at once, without waiting for the lock to open.
    session_for(server, user["username"], PASSWORD)
    events = server.root(
        "GET", "/audit_events", params={"entity_type": "User", "entity_id": user["id"], "per_page": 100}
    ).json()
    unlocked = [e for e in events if e["event_name"] == "user.unlocked"]
    assert [e["details"]["author_name"] for e in unlocked] == ["root"]


def test_service_account_and_its_token_from_creation_to_revocation(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    username = uid("robot")
    _as_root(page)
    page.goto("/admin/service_accounts")
    page.get_by_label("Name (optional)", exact=True).fill("Release robot")
    page.get_by_label("Username (optional)").fill(username)
    page.get_by_role("button", name="Create service account").click()
    expect(page.get_by_role("status")).to_have_text(f"The service account @{username} has been created.")
    expect(page.get_by_role("heading", name="Release robot")).to_be_visible()
    account = server.root("GET", "/users", params={"username": username}).json()[0]
    assert account["user_type"] == "service_account"

    # A token, with every personal scope on offer (each described) but the admin-only ones (the
    # account is no administrator), shown once.
    page.get_by_role("button", name="Add new token").click()
    for scope in ("api", "read_user", "self_rotate"):
        expect(page.get_by_label(scope, exact=True)).to_be_visible()
    for scope in ("sudo", "admin_mode", "read_service_ping"):
        expect(page.get_by_label(scope, exact=True)).to_have_count(0)
    expect(page.get_by_text("Read-only access to the API (GET and HEAD requests only).")).to_be_visible()
    page.get_by_label("Token name").fill("release")
    page.get_by_label("api", exact=True).check()
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name=re.compile("“release” has been created"))).to_be_visible()
    value = page.get_by_label("Your new token").input_value()
    assert value.startswith("glpat-")
    me = server.request("GET", "/user", token=value)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == username
    page.reload()
    expect(page.get_by_label("Your new token")).to_have_count(0)
    assert value not in page.content()
    active = page.get_by_role("table", name=re.compile("^Active tokens"))
    expect(active.get_by_role("row").filter(has_text="release")).to_have_count(1)

    # Rotate: a new value, the old one dead at once.
    active.get_by_role("button", name="Rotate").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate token").click()
    expect(page.get_by_role("heading", name=re.compile("has been rotated"))).to_be_visible()
    rotated = page.get_by_label("Your new token").input_value()
    assert rotated != value
    assert server.request("GET", "/user", token=value).status_code == 401
    assert server.request("GET", "/user", token=rotated).status_code == 200

    # Revoke: the token dies, and moves to the inactive table.
    page.reload()
    page.get_by_role("table", name=re.compile("^Active tokens")).get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke token").click()
    expect(page.get_by_role("status")).to_have_text("The token “release” has been revoked.")
    assert server.request("GET", "/user", token=rotated).status_code == 401
    inactive = page.get_by_role("table", name=re.compile("^Inactive tokens"))
    expect(inactive.get_by_role("row").filter(has_text="Revoked")).to_have_count(1)
    expect(inactive.get_by_role("row").filter(has_text="Rotated")).to_have_count(1)
    expect(page.get_by_text("This service account has no active tokens.")).to_be_visible()


def test_the_plan_limit_on_service_accounts_is_shown_readably(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    username = uid("robot")
    _as_root(page)
    with license_as(server, "free", None):
        page.goto("/admin/service_accounts")
        expect(page.get_by_text("Your Free plan allows no service accounts")).to_be_visible()
        page.get_by_label("Username (optional)").fill(username)
        page.get_by_role("button", name="Create service account").click()
        expect(page.get_by_role("alert")).to_have_text(
            "No more seats are available to create Service Account User."
        )
        expect(page.get_by_label("Username (optional)")).to_have_value(username)
    assert server.root("GET", "/users", params={"username": username}).json() == []


def _stat(page: Page, label: str) -> str:
    return page.get_by_role("group", name=label, exact=True).locator(".value").inner_text()


def _legend(page: Page, kind: str) -> Locator:
    return page.get_by_role("list", name="Legend").locator(f'li[data-kind="{kind}"]')


def _segment(page: Page, kind: str) -> int:
    """The count a chart segment stands for (0 when the kind has no segment)."""
    segment = page.locator(f'svg.seats-stack rect[data-kind="{kind}"]')
    return int(segment.get_attribute("data-count") or 0) if segment.count() else 0


def test_seats_show_the_license_count_in_numbers_and_a_chart(
    server: LiveServer, page: Page, factory: Factory, gl: Any
) -> None:
    person = factory.user()
    account = gl.service_accounts.create({})
    project = factory.project()
    bot = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "ci", "scopes": ["api"]}
    )
    assert bot.status_code == 201, bot.text
    _as_root(page)
    with license_as(server, "premium", 5000):
        page.goto("/admin/seats")
        license = server.root("GET", "/license").json()
        assert _stat(page, "Plan") == "Premium"
        assert _stat(page, "Paid seats") == "5000"
        assert _stat(page, "Billable users") == str(license["active_users"])
        assert _stat(page, "Seats available") == str(5000 - license["active_users"])
        chart = page.get_by_role("img", name=re.compile(rf"^{license['active_users']} billable and "))
        expect(chart).to_be_visible()
        expect(chart).to_have_attribute("aria-label", re.compile("Service accounts: [1-9]"))
        # Below Ultimate, people whose only roles are Minimal Access are free and counted apart.
        expect(chart).to_have_attribute("aria-label", re.compile("Minimal Access only: [0-9]"))
        # The chart's numbers are the API's: billable users, service accounts, bots, and all users.
        assert _segment(page, "billable") == license["active_users"]
        service_accounts = server.root("GET", "/service_accounts", params={"per_page": 1})
        assert _segment(page, "service") == int(service_accounts.headers["X-Total"])
        expect(_legend(page, "billable").locator(".legend-count")).to_have_text(str(license["active_users"]))
        non_billable = sum(
            _segment(page, kind) for kind in ("bots", "service", "internal", "inactive", "minimal")
        )
        assert non_billable == int(_stat(page, "Non-billable users"))
        assert _segment(page, "bots") >= 1
        # The legend says which count is which, and why.
        services = _segment(page, "service")
        expect(_legend(page, "service")).to_have_text(
            re.compile(
                rf"^\s*Service accounts\s+{services}\s+Non-billable: service accounts don't take a seat\.\s*$"
            )
        )
        expect(_legend(page, "bots")).to_contain_text("Non-billable: bots don't take a seat.")
        expect(_legend(page, "billable")).to_contain_text("Billable: active people each take a paid seat.")
        expect(_legend(page, "guests")).to_have_count(0)
        # The table lists who takes a seat (not the chart's numbers again).
        table = page.get_by_role("table", name="Users taking a seat")
        expect(table.locator(f'tr[data-username="{person["username"]}"]')).to_have_count(1)
        expect(table.locator(f'tr[data-username="{account.username}"]')).to_have_count(0)
        expect(table).not_to_contain_text("Service accounts")
        table.get_by_role("link", name=person["name"]).click()
        expect(page).to_have_url(re.compile(rf"/admin/users/{person['username']}$"))
    with license_as(server, "ultimate", None):
        page.goto("/admin/seats")
        license = server.root("GET", "/license").json()
        assert _stat(page, "Paid seats") == "Unlimited"
        assert _stat(page, "Billable users") == str(license["active_users"])
        assert _segment(page, "billable") == license["active_users"]
        expect(_legend(page, "guests")).to_contain_text("Non-billable: Guests are free on Ultimate.")
        expect(_legend(page, "minimal")).to_have_count(0)
        # On Ultimate the new person, who has no role above Guest, takes no seat.
        table = page.get_by_role("table", name="Users taking a seat")
        expect(table.locator(f'tr[data-username="{person["username"]}"]')).to_have_count(0)


def test_the_audit_log_filters_by_action_and_actor(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    server.root("POST", f"/users/{user['id']}/block")
    server.root("POST", f"/users/{user['id']}/unblock")
    _as_root(page)
    page.goto("/admin/audit_events")
    page.get_by_label("Action").select_option("user.blocked")
    page.get_by_label("Target").fill(user["username"])
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(2)  # the header and one event
    expect(rows.nth(1)).to_contain_text("user.blocked")
    expect(rows.nth(1)).to_contain_text("@root")
    expect(rows.nth(1)).to_contain_text(user["username"])

    # The user's own sign-in is theirs; root did not sign in as them.
    session_for(server, user["username"], PASSWORD)
    page.get_by_label("Action").select_option("user.signed_in")
    page.get_by_label("Actor", exact=True).fill(user["username"])
    page.get_by_label("Target").fill("")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text(f"@{user['username']}")
    page.get_by_label("Action").select_option("user.blocked")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No events match these filters.")).to_be_visible()
    # A date range before anything happened finds nothing; a bad date is an error, not a 500.
    page.goto(
        f"/admin/audit_events?actor={user['username']}&created_after=2001-01-01&created_before=2001-12-31"
    )
    expect(page.get_by_text("No events match these filters.")).to_be_visible()
    page.goto("/admin/audit_events?created_after=someday")
    expect(page.get_by_role("alert")).to_have_text("From is not a date.")


def test_changing_a_setting_in_the_form_changes_the_api(server: LiveServer, page: Page) -> None:
    before = server.root("GET", "/application/settings").json()
    _as_root(page)
    page.goto("/admin/application_settings")
    field = page.get_by_label("Maximum lifetime of access tokens (days)")
    expect(field).to_have_value(str(before["max_personal_access_token_lifetime"]))
    try:
        field.fill("200")
        page.get_by_label("Require an expiration date on access tokens").uncheck()
        page.get_by_role("button", name="Save changes").click()
        expect(page.get_by_role("status")).to_have_text("The settings have been saved.")
        after = server.root("GET", "/application/settings").json()
        assert after["max_personal_access_token_lifetime"] == 200
        assert after["require_personal_access_token_expiry"] is False
        assert after["max_login_attempts"] == before["max_login_attempts"]
        expect(page.get_by_label("Maximum lifetime of access tokens (days)")).to_have_value("200")

        # Out of bounds (which the number field would not even send): re-rendered with the error.
        http = session_for(server, "root", ROOT_PASSWORD)
        form = http.get(f"{server.url}/admin/application_settings", timeout=30).text
        for value, message in (("0", "must be between 1 and 100"), ("many", "must be a whole number")):
            response = http.post(
                f"{server.url}/admin/application_settings",
                data={"authenticity_token": csrf_of(form), "max_login_attempts": value},
                timeout=30,
                allow_redirects=False,
            )
            assert response.status_code == 400, response.text
            assert message in response.text
            assert f'value="{value}"' in response.text
        assert server.root("GET", "/application/settings").json()["max_login_attempts"] == 10
    finally:
        server.root(
            "PUT",
            "/application/settings",
            json={
                "max_personal_access_token_lifetime": before["max_personal_access_token_lifetime"],
                "require_personal_access_token_expiry": before["require_personal_access_token_expiry"],
            },
        )


def test_non_admins_get_404_on_every_admin_page(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    http = session_for(server, user["username"], PASSWORD)
    for path in ADMIN_PAGES:
        response = http.get(f"{server.url}{path}", timeout=30, allow_redirects=False)
        assert response.status_code == 404, path
        assert "Page not found" in response.text
    token = csrf_of(http.get(f"{server.url}/", timeout=30).text)
    victim = factory.user()
    for path in (
        f"/admin/users/{victim['username']}/block",
        f"/admin/users/{victim['username']}/delete",
        "/admin/service_accounts",
        "/admin/application_settings",
    ):
        response = http.post(
            f"{server.url}{path}", data={"authenticity_token": token}, timeout=30, allow_redirects=False
        )
        assert response.status_code == 404, path
    assert _state(server, victim["id"]) == "active"
    # Anonymous visitors are sent to sign in.
    response = requests.get(f"{server.url}/admin/users", timeout=30, allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/users/sign_in?redirect_to=/admin/users"


def test_an_admin_post_without_its_csrf_token_is_refused(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    http = session_for(server, "root", ROOT_PASSWORD)
    for data in ({}, {"authenticity_token": "forged"}):
        response = http.post(
            f"{server.url}/admin/users/{user['username']}/block", data=data, timeout=30, allow_redirects=False
        )
        assert response.status_code == 403
        assert "The form could not be verified" in response.text
    assert _state(server, user["id"]) == "active"
    token = csrf_of(http.get(f"{server.url}/admin/users/{user['username']}", timeout=30).text)
    response = http.post(
        f"{server.url}/admin/users/{user['username']}/block",
        data={"authenticity_token": token},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 303
    assert _state(server, user["id"]) == "blocked"
