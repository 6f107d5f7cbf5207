"""Admin area, Users: New user, Edit, Reset password, and no self-harm actions on one's own account.

Each flow is driven in Chromium as root and checked through the API; forged posts and a
non-admin's 404s use requests against the same live server.
"""

from __future__ import annotations

from typing import Any

import requests
from playwright.sync_api import Page, expect

from tests.browser.pages import csrf_of, session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
# What in the page's main content reaches past a 390 px viewport.
FITS = """() => [document.querySelector('main'), ...document.querySelectorAll('main *')]
    .filter(e => e.getBoundingClientRect().right > 390 || e.scrollWidth > e.clientWidth + 1
                 && getComputedStyle(e).overflowX === 'visible')
    .map(e => e.tagName + (e.id ? '#' + e.id : ''))"""


def _as_root(page: Page) -> Page:
    return signed_in(page, "root", ROOT_PASSWORD)


def _find(server: LiveServer, username: str) -> dict[str, Any]:
    response = server.root("GET", "/users", params={"username": username})
    assert response.status_code == 200, response.text
    found = response.json()
    assert len(found) == 1, found
    return dict(found[0])


def _signs_in(server: LiveServer, login: str, password: str) -> bool:
    http = requests.Session()
    form = http.get(f"{server.url}/users/sign_in", timeout=30)
    response = http.post(
        f"{server.url}/users/sign_in",
        data={"login": login, "password": password, "authenticity_token": csrf_of(form.text)},
        timeout=30,
        allow_redirects=False,
    )
    return response.status_code == 303


def test_an_admin_creates_users_with_and_without_a_password(server: LiveServer, page: Page) -> None:
    _as_root(page)
    page.goto("/admin/users")
    page.get_by_role("link", name="New user").click()
    expect(page.get_by_role("heading", name="New user", level=1)).to_be_visible()
    assert page.evaluate(AUDIT) == []

    name = uid("nu")
    page.get_by_label("Name", exact=True).fill(name.title())
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(f"{name}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Administrator").check()
    page.get_by_label("Skip e-mail confirmation").check()
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_have_text(f"@{name} has been created.")
    expect(page.get_by_role("heading", level=1)).to_contain_text(name.title())
    user = _find(server, name)
    assert user["is_admin"] is True
    assert user["email"] == f"{name}@example.com"
    assert user["confirmed_at"] is not None
    assert _signs_in(server, name, PASSWORD)

    # Without a password: created, with a password nobody knows (Forgot password sets one).
    other = uid("nu")
    page.goto("/admin/users/new")
    page.get_by_label("Name", exact=True).fill(other.title())
    page.get_by_label("Username").fill(other)
    page.get_by_label("Email").fill(f"{other}@example.com")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_contain_text(f"@{other} has been created.")
    expect(page.get_by_role("status")).to_contain_text("Forgot password")
    assert _find(server, other)["is_admin"] is False
    assert not _signs_in(server, other, "")


def test_new_user_errors_sit_next_to_their_fields(server: LiveServer, page: Page, factory: Factory) -> None:
    taken = factory.user()
    _as_root(page)
    page.goto("/admin/users/new")
    name = uid("nu")

    # Nothing filled in: the API's "is missing" in people's words, next to each field.
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#user-name-error")).to_have_text("Name is required.")
    expect(page.locator("#user-username-error")).to_have_text("Username is required.")
    expect(page.locator("#user-email-error")).to_have_text("Email is required.")
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    assert page.evaluate(AUDIT) == []

    # An e-mail of another user: the API's 409 message, next to the e-mail; the rest kept.
    page.get_by_label("Name", exact=True).fill(name.title())
    page.get_by_label("Username").fill(name)
    page.get_by_label("Email").fill(taken["email"])
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#user-email-error")).to_have_text("Email has already been taken.")
    expect(page.get_by_label("Username")).to_have_value(name)
    expect(page.locator("#user-name-error")).to_have_count(0)

    # A short password.
    page.get_by_label("Email").fill(f"{name}@example.com")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#user-password-error")).to_have_text(
        "Password is too short (minimum is 8 characters)."
    )
    expect(page.get_by_label("Password")).to_have_value("")
    assert server.root("GET", "/users", params={"username": name}).json() == []


def test_an_admin_edits_a_user_and_resets_their_password(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user = factory.user()
    _as_root(page)
    page.goto(f"/admin/users/{user['username']}")
    page.get_by_role("link", name=f"Edit @{user['username']}").click()
    expect(page.get_by_role("heading", name=f"Edit {user['name']}")).to_be_visible()
    assert page.evaluate(AUDIT) == []

    page.get_by_label("Name", exact=True).fill("Renamed Person")
    page.get_by_label("Email").fill(f"renamed-{user['username']}@example.com")
    page.get_by_label("Administrator").check()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text(f"@{user['username']} has been updated.")
    found = server.root("GET", f"/users/{user['id']}").json()
    assert found["name"] == "Renamed Person"
    assert found["email"] == f"renamed-{user['username']}@example.com"
    assert found["is_admin"] is True

    # A bad e-mail: the use case's message next to the field, nothing saved.
    page.goto(f"/admin/users/{user['username']}/edit")
    page.get_by_label("Email").fill("not-an-address")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#user-email-error")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value("not-an-address")
    assert server.root("GET", f"/users/{user['id']}").json()["email"].startswith("renamed-")

    # Reset password: confirmation must match; then the old password stops working.
    victim = session_for(server, user["username"], PASSWORD)
    page.get_by_label("New password", exact=True).fill("another-long-password")
    page.get_by_label("Confirm new password").fill("something-else-entirely")
    page.get_by_role("button", name="Reset password").click()
    expect(page.locator("#user-password-error")).to_have_text("Password confirmation doesn't match.")
    page.get_by_label("New password", exact=True).fill("short")
    page.get_by_label("Confirm new password").fill("short")
    page.get_by_role("button", name="Reset password").click()
    expect(page.locator("#user-password-error")).to_contain_text("is too short")
    page.get_by_label("New password", exact=True).fill("another-long-password")
    page.get_by_label("Confirm new password").fill("another-long-password")
    page.get_by_role("button", name="Reset password").click()
    expect(page.get_by_role("status")).to_contain_text(f"@{user['username']} has a new password")
    assert _signs_in(server, user["username"], "another-long-password")
    assert not _signs_in(server, user["username"], PASSWORD)
    # Their session ended with the old password.
    response = victim.get(f"{server.url}/", timeout=30, allow_redirects=False)
    assert response.status_code == 303


def test_an_admin_is_offered_no_self_harm_on_their_own_account(server: LiveServer, page: Page) -> None:
    _as_root(page)
    page.goto("/admin/users/root")
    expect(page.get_by_role("link", name="Edit @root")).to_be_visible()
    for label in ("Block", "Deactivate", "Delete user", "Delete user and contributions", "Ban"):
        expect(page.get_by_role("button", name=label, exact=True)).to_have_count(0)
    page.goto("/admin/users/root/edit")
    expect(page.get_by_role("button", name="Reset password")).to_have_count(0)
    expect(page.get_by_role("link", name="your profile")).to_be_visible()

    # Forged posts are refused, with the use case's own message where the API has one.
    http = session_for(server, "root", ROOT_PASSWORD)
    token = csrf_of(http.get(f"{server.url}/admin/users/root", timeout=30).text)
    # (Deactivate: refused as the last administrator, or as one active in the last 90 days.)
    for action, statuses, messages in (
        ("block", (403,), ("The API initiating user cannot be blocked by the API.",)),
        ("deactivate", (400, 403), ("has been active in the past", "The last administrator cannot be")),
        ("delete", (403,), ("You cannot delete your own account from the Admin area.",)),
    ):
        response = http.post(
            f"{server.url}/admin/users/root/{action}",
            data={"authenticity_token": token},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code in statuses, (
            action,
            response.text[response.text.find('role="alert"') :][:300],
        )
        assert any(m in response.text for m in messages), action
    assert server.root("GET", "/users/1").json()["state"] == "active"


def test_the_user_forms_fit_a_phone(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    _as_root(page)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/admin/users/new", f"/admin/users/{user['username']}/edit"):
        page.goto(path)
        # The page's own content fits (the shared top bar is the header's business).
        assert page.evaluate(FITS) == [], path
        assert page.evaluate(AUDIT) == [], path


def test_non_admins_get_no_user_forms(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    victim = factory.user()
    http = session_for(server, user["username"], PASSWORD)
    for path in ("/admin/users/new", f"/admin/users/{victim['username']}/edit"):
        response = http.get(f"{server.url}{path}", timeout=30, allow_redirects=False)
        assert response.status_code == 404, path
    token = csrf_of(http.get(f"{server.url}/", timeout=30).text)
    for path, data in (
        ("/admin/users/new", {"name": "X", "username": uid("x"), "email": "x@example.com"}),
        (f"/admin/users/{victim['username']}/edit", {"name": "Hacked", "email": victim["email"]}),
        (
            f"/admin/users/{victim['username']}/password",
            {"password": "p" * 12, "password_confirmation": "p" * 12},
        ),
    ):
        response = http.post(
            f"{server.url}{path}",
            data={"authenticity_token": token, **data},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 404, path
    assert server.root("GET", f"/users/{victim['id']}").json()["name"] == victim["name"]
    assert _signs_in(server, victim["username"], PASSWORD)
