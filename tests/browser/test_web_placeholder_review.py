"""The page a reassignment e-mail links to, in Chromium: the chosen person follows the link from the
e-mail (received by the SMTP sink), sees whose contributions they are offered, and approves or
rejects; nobody else can see the page."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import Page, expect

from tests.browser.pages import csrf_of, session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.functional.test_placeholder_reassignment import HEADER, SOURCE, row_of, source_user, upload
from tests.support.live import Factory, LiveServer
from tests.support.mail import MailSink

PASSWORD = "a-long-password-1"


def _offer(server: LiveServer, factory: Factory, smtp_sink: MailSink, name: str) -> tuple[int, dict, str]:
    """A placeholder of a new group offered to a new user by the group's Owner through the CSV:
    (source user id, the chosen user, the review link's path from the e-mail)."""
    _owner, token = factory.user_with_token()
    group = factory.group(token=token)
    source_id, _placeholder, identifier = source_user(server, group["id"], name)
    chosen = factory.user()
    sheet = f"{HEADER}\n{SOURCE},gitlab_migration,{identifier},{name},u{identifier},{chosen['username']},\n"
    assert upload(server, group["id"], token, sheet).status_code == 201
    mail = smtp_sink.wait_for(to=chosen["email"])[0]
    link = re.search(r"https?://[^\s\"<>]+/import/source_users/\d+", mail.body())
    assert link, mail.body()
    path = "/" + link.group(0).split("/", 3)[3]
    assert path == f"/import/source_users/{source_id}"
    return source_id, chosen, path


def test_the_chosen_person_approves_from_the_email_link(
    server: LiveServer, page: Page, factory: Factory, smtp_sink: MailSink
) -> None:
    source_id, chosen, path = _offer(server, factory, smtp_sink, "Dana Source")
    signed_in(page, chosen["username"], PASSWORD)
    page.goto(path)
    expect(page.get_by_role("heading", level=1)).to_have_text("Reassignment of contributions")
    expect(page.locator(".lead")).to_contain_text("Dana Source")
    expect(page.locator(".lead")).to_contain_text("source.example.com")
    expect(page.locator("#reassignment-status")).to_have_text("Awaiting approval")
    assert page.evaluate(AUDIT) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280

    page.get_by_role("button", name="Approve reassignment").click()
    expect(page.get_by_role("status")).to_contain_text("Reassignment accepted")
    expect(page.locator("#reassignment-status")).to_have_text("Reassignment in progress")
    expect(page.get_by_role("button", name="Approve reassignment")).to_have_count(0)
    assert row_of(server, source_id).status == "reassignment_in_progress"


def test_rejecting_and_nobody_else_sees_the_page(
    server: LiveServer, page: Page, factory: Factory, smtp_sink: MailSink
) -> None:
    source_id, chosen, path = _offer(server, factory, smtp_sink, "Eli Source")
    other = factory.user()
    stranger = session_for(server, other["username"], PASSWORD)
    assert stranger.get(server.url + path, timeout=30).status_code == 404
    anonymous = requests.get(server.url + path, timeout=30, allow_redirects=False)
    assert anonymous.status_code in (302, 303)
    assert "/users/sign_in" in anonymous.headers["location"]

    page.set_viewport_size({"width": 390, "height": 844})
    signed_in(page, chosen["username"], PASSWORD)
    page.goto(path)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_role("status")).to_contain_text("Reassignment rejected")
    expect(page.locator("#reassignment-status")).to_have_text("Rejected")
    assert row_of(server, source_id).status == "rejected"
    # Deciding again is refused in the page's words, not a 500.
    http = session_for(server, chosen["username"], PASSWORD)
    token = csrf_of(http.get(server.url + path, timeout=30).text)
    again = http.post(f"{server.url}{path}/accept", data={"authenticity_token": token}, timeout=30)
    assert again.status_code == 200
    assert 'role="alert"' in again.text
    assert row_of(server, source_id).status == "rejected"
