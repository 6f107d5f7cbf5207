"""A top-level group's Members > Placeholders page in Chromium: its Owner reassigns a placeholder to
a person, who gets the e-mail (received by the real SMTP sink), follows its link and approves; the
``placeholder-reassignment`` job then moves the contributions and the row shows "Success" under
"Reassigned". Also: keeping a placeholder, canceling, refusals next to the field (a bot, an unknown
username), an admin's reassignment without approval, search and pages, a phone's width, and nobody
but the top-level group's Owners seeing the page (a Maintainer, a subgroup, another group's source
user: 404).

Source users are made as the importer makes them, with the domain's use case on the server's own
database (tests/functional/test_placeholder_reassignment.py); every change made in the browser is
checked against the database, so a page that only looks right cannot pass."""

from __future__ import annotations

import re
from typing import Any

import requests
from playwright.sync_api import Browser, Locator, Page, expect

from keycrew.records.models import Issue
from tests.browser.pages import csrf_of, session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.functional.test_ghost_migration import add_records
from tests.functional.test_placeholder_reassignment import (
    add_member,
    authors,
    memberships,
    row_of,
    run_job,
    source_user,
)
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer
from tests.support.mail import MailSink

PASSWORD = "a-long-password-1"
DEVELOPER, MAINTAINER = 30, 40


def _url(group: dict[str, Any]) -> str:
    return f"/groups/{group['full_path']}/-/group_members/placeholders"


def _row(page: Page, source_user_id: int) -> Locator:
    return page.locator(f'tr[data-source-user="{source_user_id}"]')


def _owned_group(factory: Factory) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new top-level group and its Owner (a regular user)."""
    owner, token = factory.user_with_token()
    return factory.group(token=token, visibility="private"), owner


def test_the_owner_reassigns_and_the_chosen_person_approves_from_the_email(
    server: LiveServer, page: Page, browser: Browser, factory: Factory, smtp_sink: MailSink
) -> None:
    group, owner = _owned_group(factory)
    project = factory.project(namespace_id=group["id"])
    su, placeholder, _ = source_user(server, group["id"], "Ann Source")
    other, _, _ = source_user(server, group["id"], "Ben Source")
    records = add_records(server, project["id"], placeholder, issues=3, notes=2, events=1)
    add_member(server, "Namespace", group["id"], placeholder, DEVELOPER)
    chosen = factory.user()

    # From the group's Members page, its Placeholders tab.
    signed_in(page, owner["username"], PASSWORD)
    page.goto(f"/groups/{group['full_path']}/-/group_members")
    sections = page.get_by_role("navigation", name="Members sections")
    sections.get_by_role("link", name="Placeholders").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Placeholders")
    assert page.url.endswith(_url(group))
    tabs = page.get_by_role("navigation", name="Placeholders by status")
    expect(tabs.get_by_role("link", name="Awaiting reassignment 2")).to_have_attribute("aria-current", "page")
    expect(tabs.get_by_role("link", name="Reassigned 0")).to_be_visible()
    row = _row(page, su)
    expect(row).to_contain_text("Ann Source")
    expect(row).to_contain_text("source.example.com")
    expect(row.locator("[data-status]")).to_have_text("Not started")
    assert page.evaluate(AUDIT) == []

    row.get_by_label("Username to reassign Ann Source to").fill(chosen["username"])
    row.get_by_role("button", name="Reassign Ann Source", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(f"@{chosen['username']} is asked by e-mail")
    row = _row(page, su)
    expect(row.locator("[data-status]")).to_have_text("Pending approval")
    expect(row).to_contain_text(f"@{chosen['username']}")
    expect(row.get_by_role("button", name="Cancel reassignment of Ann Source")).to_be_visible()
    assert row_of(server, su).status == "awaiting_approval"
    assert row_of(server, su).reassign_to_user_id == chosen["id"]
    expect(_row(page, other).locator("[data-status]")).to_have_text("Not started")

    # The e-mail reaches the chosen person, who follows its link and approves.
    mail = smtp_sink.wait_for(to=chosen["email"])[0]
    link = re.search(r"https?://[^\s\"<>]+/import/source_users/\d+", mail.body())
    assert link, mail.body()
    path = "/" + link.group(0).split("/", 3)[3]
    theirs = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    try:
        their_page = signed_in(theirs.new_page(), chosen["username"], PASSWORD)
        their_page.goto(path)
        their_page.get_by_role("button", name="Approve reassignment").click()
        expect(their_page.get_by_role("status")).to_contain_text("Reassignment accepted")
    finally:
        theirs.close()
    page.reload()
    expect(_row(page, su).locator("[data-status]")).to_have_text("Reassigning")

    # The job moves everything; the row is under "Reassigned" with "Success".
    run_job(server)
    assert authors(server, Issue, records["issues"]) == {chosen["id"]}
    assert memberships(server, chosen["id"]) == {("Namespace", group["id"]): DEVELOPER}
    assert row_of(server, su).status == "completed"
    page.reload()
    expect(_row(page, su)).to_have_count(0)
    tabs.get_by_role("link", name="Reassigned 1").click()
    expect(tabs.get_by_role("link", name="Reassigned 1")).to_have_attribute("aria-current", "page")
    done = _row(page, su)
    expect(done.locator("[data-status]")).to_have_text("Success")
    expect(done).to_contain_text(f"@{chosen['username']}")
    expect(done).to_contain_text("Placeholder deleted")
    assert page.evaluate(AUDIT) == []


def test_keep_cancel_and_refusals_next_to_the_field(
    server: LiveServer, page: Page, factory: Factory, smtp_sink: MailSink
) -> None:
    group, owner = _owned_group(factory)
    kept, _, _ = source_user(server, group["id"], "Kim Source")
    su, _, _ = source_user(server, group["id"], "Lou Source")
    bot_token = server.root(
        "POST", f"/groups/{group['id']}/access_tokens", json={"name": "deployer", "scopes": ["api"]}
    )
    assert bot_token.status_code == 201, bot_token.text
    bot = server.root("GET", f"/users/{bot_token.json()['user_id']}").json()
    person = factory.user()

    page.set_viewport_size({"width": 390, "height": 844})
    signed_in(page, owner["username"], PASSWORD)
    page.goto(_url(group))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # Don't reassign: the placeholder stays, the row moves to "Reassigned".
    _row(page, kept).get_by_role("button", name="Don't reassign Kim Source").click()
    expect(page.get_by_role("status")).to_contain_text("Kim Source is kept as a placeholder")
    expect(_row(page, kept)).to_have_count(0)
    assert row_of(server, kept).status == "keep_as_placeholder"
    tabs = page.get_by_role("navigation", name="Placeholders by status")
    expect(tabs.get_by_role("link", name="Reassigned 1")).to_be_visible()

    # A bot is refused, in words, next to the field; nothing changes.
    field = _row(page, su).get_by_label("Username to reassign Lou Source to")
    field.fill(bot["username"])
    _row(page, su).get_by_role("button", name="Reassign Lou Source", exact=True).click()
    error = page.locator(f"#placeholder-{su}-error")
    expect(error).to_contain_text("Choose an active person: not a bot")
    summary = page.get_by_role("alert").get_by_role("link")
    expect(summary).to_have_attribute("href", f"#placeholder-{su}-username")
    field = _row(page, su).get_by_label("Username to reassign Lou Source to")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", f"placeholder-{su}-error")
    expect(field).to_have_value(bot["username"])
    assert row_of(server, su).status == "pending_reassignment"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # So is a username nobody has.
    field.fill("@nobody-by-this-name")
    _row(page, su).get_by_role("button", name="Reassign Lou Source", exact=True).click()
    expect(page.locator(f"#placeholder-{su}-error")).to_have_text("No user is called @nobody-by-this-name.")
    assert row_of(server, su).status == "pending_reassignment"

    # Reassigning, then canceling: back to "Not started", the person's token of approval gone.
    _row(page, su).get_by_label("Username to reassign Lou Source to").fill(f"@{person['username']}")
    _row(page, su).get_by_role("button", name="Reassign Lou Source", exact=True).click()
    expect(_row(page, su).locator("[data-status]")).to_have_text("Pending approval")
    smtp_sink.wait_for(to=person["email"])
    _row(page, su).get_by_role("button", name="Cancel reassignment of Lou Source").click()
    expect(page.get_by_role("status")).to_contain_text("Reassignment of Lou Source canceled")
    expect(_row(page, su).locator("[data-status]")).to_have_text("Not started")
    canceled = row_of(server, su)
    assert (canceled.status, canceled.reassign_to_user_id, canceled.reassignment_token) == (
        "pending_reassignment",
        None,
        None,
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate(AUDIT) == []


def test_an_admin_with_the_bypass_setting_reassigns_at_once(
    server: LiveServer, page: Page, factory: Factory, smtp_sink: MailSink
) -> None:
    group = factory.group()
    su, _, _ = source_user(server, group["id"], "Oz Source")
    target = factory.user()
    changed = server.root(
        "PUT", "/application/settings", json={"allow_bypass_placeholder_confirmation": True}
    )
    assert changed.status_code == 200, changed.text
    try:
        signed_in(page, "root", ROOT_PASSWORD)
        page.goto(_url(group))
        _row(page, su).get_by_label("Username to reassign Oz Source to").fill(target["username"])
        _row(page, su).get_by_role("button", name="Reassign Oz Source", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text(f"being moved to @{target['username']}")
    finally:
        server.root("PUT", "/application/settings", json={"allow_bypass_placeholder_confirmation": False})
    expect(_row(page, su).locator("[data-status]")).to_have_text("Reassigning")
    assert row_of(server, su).status == "reassignment_in_progress"
    assert not [m for m in smtp_sink.messages(target["email"]) if "waiting for review" in m.subject]


def test_search_and_pages_of_twenty(server: LiveServer, page: Page, factory: Factory) -> None:
    group, owner = _owned_group(factory)
    ids = [source_user(server, group["id"], f"Person {n:02d}")[0] for n in range(22)]
    signed_in(page, owner["username"], PASSWORD)
    page.goto(_url(group))
    expect(page.locator("tr[data-source-user]")).to_have_count(20)
    expect(page.get_by_role("navigation", name="Placeholders pages")).to_contain_text(
        re.compile(r"Showing 1\W20 of 22")
    )
    page.get_by_role("link", name="Next page").click()
    expect(page.locator("tr[data-source-user]")).to_have_count(2)
    expect(_row(page, ids[21])).to_be_visible()

    page.get_by_label("Search by name or username").fill("person 07")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tr[data-source-user]")).to_have_count(1)
    expect(_row(page, ids[7])).to_be_visible()
    tabs = page.get_by_role("navigation", name="Placeholders by status")
    expect(tabs.get_by_role("link", name="Awaiting reassignment 1")).to_be_visible()
    page.get_by_label("Search by name or username").fill("nobody%")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("td.empty")).to_have_text("No placeholder matches “nobody%”.")


def test_only_owners_of_the_top_level_group_see_it(server: LiveServer, factory: Factory) -> None:
    group, owner = _owned_group(factory)
    su, _, _ = source_user(server, group["id"], "Max Source")
    maintainer = factory.user()
    factory.member("groups", group["id"], maintainer["id"], MAINTAINER)
    url = server.url + _url(group)

    # A Maintainer: no tab on the Members page, 404 for the page and its forms.
    http = session_for(server, maintainer["username"], PASSWORD)
    members = http.get(f"{server.url}/groups/{group['full_path']}/-/group_members", timeout=30)
    assert members.status_code == 200
    assert "/-/group_members/placeholders" not in members.text
    assert http.get(url, timeout=30).status_code == 404
    token = csrf_of(members.text)
    kept = http.post(f"{url}/{su}/keep", data={"authenticity_token": token}, timeout=30)
    assert kept.status_code == 404
    assert row_of(server, su).status == "pending_reassignment"

    # The Owner: the tab, and the page; not for a subgroup, nor another group's source user.
    owner_http = session_for(server, owner["username"], PASSWORD)
    members = owner_http.get(f"{server.url}/groups/{group['full_path']}/-/group_members", timeout=30)
    assert f'href="{_url(group)}"' in members.text
    assert owner_http.get(url, timeout=30).status_code == 200
    sub = factory.group(parent_id=group["id"])
    assert owner_http.get(server.url + _url(sub), timeout=30).status_code == 404
    elsewhere, _other_owner = _owned_group(factory)
    foreign, _, _ = source_user(server, elsewhere["id"], "Ned Source")
    token = csrf_of(members.text)
    crossed = owner_http.post(f"{url}/{foreign}/keep", data={"authenticity_token": token}, timeout=30)
    assert crossed.status_code == 404
    assert row_of(server, foreign).status == "pending_reassignment"
    # Without the CSRF token, nothing happens either.
    assert owner_http.post(f"{url}/{su}/keep", data={}, timeout=30).status_code == 403
    assert row_of(server, su).status == "pending_reassignment"

    # Anonymous: to the sign-in form.
    anonymous = requests.get(url, timeout=30, allow_redirects=False)
    assert anonymous.status_code in (302, 303)
    assert "/users/sign_in" in anonymous.headers["location"]
