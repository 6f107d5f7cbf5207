"""The profile page and "Forgot password" in Chromium: a person edits their name and e-mail (errors
next to the field), changes their password (which signs out their other session), and recovers a
forgotten one by e-mail through a real SMTP sink: the link works once, not after an hour, and an
unknown address gets the same answer and no e-mail."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, expect

from tests.browser.pages import sign_in, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import Factory, LiveServer, uid
from tests.support.mail import MailSink

PASSWORD = "a-long-password-1"
NEW_PASSWORD = "another-long-password-2"
PROFILE = "/-/user_settings/profile"
# What in the page's main content reaches past a 390 px viewport.
FITS = """() => [document.querySelector('main'), ...document.querySelectorAll('main *')]
    .filter(e => e.getBoundingClientRect().right > 390 || e.scrollWidth > e.clientWidth + 1
                 && getComputedStyle(e).overflowX === 'visible')
    .map(e => e.tagName + (e.id ? '#' + e.id : ''))"""
NEUTRAL = (
    "If your email address exists in our database, you will receive a password recovery link at your "
    "email address in a few minutes."
)


def _events(server: LiveServer, user_id: int, name: str) -> list[dict[str, Any]]:
    response = server.root("GET", f"/audit_events?entity_type=User&entity_id={user_id}&per_page=100")
    assert response.status_code == 200, response.text
    return [e for e in response.json() if e["event_name"] == name]


def _request_reset(page: Page, email: str) -> None:
    page.goto("/users/sign_in")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page.get_by_role("heading", name="Forgot your password?")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Reset password").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_have_text(NEUTRAL)


def _reset_link(smtp_sink: MailSink, email: str, count: int = 1) -> str:
    received = smtp_sink.wait_for(to=email, count=count)
    message = received[-1]
    assert message.subject == "Reset password instructions"
    match = re.search(r"(http\S+/users/password/edit\?reset_password_token=\S+)", message.body())
    assert match, message.body()
    assert match.group(1) in message.body("html").replace("&amp;", "&")
    parts = urlsplit(match.group(1))
    return f"{parts.path}?{parts.query}"


def test_a_person_edits_their_name_and_email(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user(password=PASSWORD)
    other = factory.user()
    signed_in(page, user["username"], PASSWORD)
    page.get_by_role("link", name="Profile", exact=True).click()
    expect(page).to_have_url(f"{server.url}{PROFILE}")
    expect(page.get_by_role("heading", name="Profile", level=1)).to_be_visible()
    expect(page.get_by_label("Full name")).to_have_value(user["name"])
    expect(page.get_by_label("Email")).to_have_value(user["email"])

    # Another person's address and a blank name: both errors at once, each next to its field.
    page.get_by_label("Full name").fill("")
    page.get_by_label("Email").fill(other["email"])
    page.get_by_role("button", name="Update profile settings").click()
    page.wait_for_load_state()
    expect(page.locator("#profile-email-error")).to_have_text("Email has already been taken.")
    expect(page.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#profile-name-error")).to_contain_text("Name")
    assert page.evaluate(AUDIT) == []

    page.get_by_label("Email").fill("not-an-address")
    page.get_by_label("Full name").fill("Renamed Person")
    page.get_by_role("button", name="Update profile settings").click()
    page.wait_for_load_state()
    expect(page.locator("#profile-email-error")).to_have_text("Email is invalid.")
    expect(page.locator("#profile-name-error")).to_have_count(0)

    address = f"{uid('new')}@example.com"
    page.get_by_label("Email").fill(address.upper())
    page.get_by_role("button", name="Update profile settings").click()
    page.wait_for_load_state()
    expect(page.get_by_role("status")).to_have_text("Profile was successfully updated.")
    shown = server.root("GET", f"/users/{user['id']}").json()
    assert (shown["name"], shown["email"]) == ("Renamed Person", address)
    expect(page.get_by_label("Signed in as")).to_contain_text("Renamed Person")
    (updated,) = _events(server, user["id"], "user.updated")
    assert updated["details"]["changes"]["email"] == {"from": user["email"], "to": address}


def test_a_password_change_ends_every_other_session(
    server: LiveServer, page: Page, browser: Browser, factory: Factory
) -> None:
    user = factory.user(password=PASSWORD)
    other_context = browser.new_context(base_url=server.url)
    try:
        other = signed_in(other_context.new_page(), user["username"], PASSWORD)
        signed_in(page, user["username"], PASSWORD)
        page.goto(PROFILE)

        # A wrong current password, a short new one: each error next to its field.
        page.get_by_label("Current password").fill("not-my-password")
        page.get_by_label("New password").fill("short")
        page.get_by_label("Password confirmation").fill("short")
        page.get_by_role("button", name="Save password").click()
        page.wait_for_load_state()
        expect(page.locator("#current-password-error")).to_have_text("Current password is invalid.")
        expect(page.locator("#new-password-error")).to_have_text(
            "Password is too short (minimum is 8 characters)."
        )
        assert page.evaluate(AUDIT) == []

        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_label("Password confirmation").fill(NEW_PASSWORD + "x")
        page.get_by_role("button", name="Save password").click()
        page.wait_for_load_state()
        expect(page.locator("#password-confirmation-error")).to_have_text(
            "Password confirmation doesn't match Password."
        )

        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_label("Password confirmation").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Save password").click()
        page.wait_for_load_state()
        expect(page.get_by_role("status")).to_have_text(
            "Password was successfully updated. 1 other session signed out."
        )
        # This session goes on; the other one is signed out.
        page.goto("/")
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        other.goto(PROFILE)
        expect(other).to_have_url(re.compile(r"/users/sign_in"))
        sign_in(other, user["username"], PASSWORD)
        expect(other.get_by_role("alert")).to_be_visible()
        signed_in(other, user["username"], NEW_PASSWORD)
    finally:
        other_context.close()
    events = _events(server, user["id"], "user.updated")
    assert [e["details"].get("sessions_ended") for e in events] == [1]
    assert events[0]["details"]["changes"] == {"password": "changed"}


def test_a_forgotten_password_is_reset_by_email_once(
    server: LiveServer, page: Page, browser: Browser, factory: Factory, smtp_sink: MailSink
) -> None:
    user = factory.user(password=PASSWORD)
    signed_elsewhere = browser.new_context(base_url=server.url)
    try:
        elsewhere = signed_in(signed_elsewhere.new_page(), user["username"], PASSWORD)
        _request_reset(page, user["email"])
        assert page.evaluate(AUDIT) == []
        link = _reset_link(smtp_sink, user["email"])
        assert len(_events(server, user["id"], "user.password_reset_requested")) == 1

        page.goto(link)
        expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
        assert page.evaluate(AUDIT) == []
        page.get_by_label("New password").fill("short")
        page.get_by_label("Password confirmation").fill("short")
        page.get_by_role("button", name="Change your password").click()
        page.wait_for_load_state()
        expect(page.locator("#new-password-error")).to_have_text(
            "Password is too short (minimum is 8 characters)."
        )
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_label("Password confirmation").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change your password").click()
        page.wait_for_load_state()
        expect(page.get_by_role("status")).to_contain_text("Your password has been changed.")

        # Every session of the person ended; the old password no longer works, the new one does.
        elsewhere.goto(PROFILE)
        expect(elsewhere).to_have_url(re.compile(r"/users/sign_in"))
        sign_in(page, user["username"], PASSWORD)
        expect(page.get_by_role("alert")).to_be_visible()
        signed_in(page, user["username"], NEW_PASSWORD)
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_load_state()

        # The link works once.
        page.goto(link)
        expect(page).to_have_url(f"{server.url}/users/password/new")
        expect(page.get_by_role("alert")).to_contain_text("Reset password token is invalid or has expired")
    finally:
        signed_elsewhere.close()
    (reset,) = _events(server, user["id"], "user.password_reset")
    assert reset["details"]["author_name"] == user["username"]
    assert reset["details"]["sessions_ended"] == 1


def test_a_reset_link_expires_after_an_hour(
    server: LiveServer, page: Page, factory: Factory, smtp_sink: MailSink
) -> None:
    user = factory.user(password=PASSWORD)
    _request_reset(page, user["email"])
    link = _reset_link(smtp_sink, user["email"])
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=59))
    page.goto(link)
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=61))
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_label("Password confirmation").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change your password").click()
    page.wait_for_load_state()
    expect(page).to_have_url(f"{server.url}/users/password/new")
    expect(page.get_by_role("alert")).to_contain_text("Reset password token is invalid or has expired")
    signed_in(page, user["username"], PASSWORD)  # the password did not change


def test_an_unknown_address_gets_the_same_answer_and_no_email(
    server: LiveServer, page: Page, factory: Factory, smtp_sink: MailSink
) -> None:
    unknown = f"{uid('nobody')}@example.com"
    _request_reset(page, unknown)
    # A known address asked for twice within a minute: one e-mail (the same answer both times).
    user = factory.user(password=PASSWORD)
    _request_reset(page, user["email"])
    _request_reset(page, user["email"])
    smtp_sink.wait_for(to=user["email"], count=1)
    time.sleep(1.5)  # the unknown address's request came first: anything for it would be here
    assert smtp_sink.messages(to=unknown) == []
    assert len(smtp_sink.messages(to=user["email"])) == 1


def test_the_new_pages_fit_a_phone(
    server: LiveServer, page: Page, factory: Factory, smtp_sink: MailSink
) -> None:
    user = factory.user(password=PASSWORD)
    page.set_viewport_size({"width": 390, "height": 844})
    _request_reset(page, user["email"])
    link = _reset_link(smtp_sink, user["email"])
    paths = ["/users/sign_in", "/users/password/new", link]
    for path in paths:
        page.goto(path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
        assert page.evaluate(AUDIT) == [], path
    page.set_viewport_size({"width": 1280, "height": 900})
    signed_in(page, user["username"], PASSWORD)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(PROFILE)
    # The page's own content: the signed-in top bar's collapsing menu is the phone layout's concern.
    assert page.evaluate(FITS) == [], PROFILE
    assert page.evaluate(AUDIT) == [], PROFILE
