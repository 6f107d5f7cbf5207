"""Admin Mode in the web UI, in Chromium: with the setting on, an admin's session starts without
admin powers; entering Admin Mode asks for the password again (a wrong one counts toward the
lock), lasts six hours, and ends when the admin leaves it. And the admin Settings page shows and
saves the settings that govern accounts, bots and tokens."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from keycrew.identity.models import User
from tests.browser.pages import csrf_of, session_for, signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer

PASSWORD = "a-long-password-1"


@pytest.fixture
def admin_mode(server: LiveServer) -> Iterator[None]:
    assert server.root("PUT", "/application/settings", json={"admin_mode": True}).status_code == 200
    yield
    assert server.root("PUT", "/application/settings", json={"admin_mode": False}).status_code == 200


def _failed_attempts(server: LiveServer, user_id: int) -> int:
    with server.runtime.sessions() as db:
        user = db.get(User, user_id)
        assert user is not None
        return user.failed_attempts


def test_enter_and_leave_admin_mode(
    page: Page, server: LiveServer, factory: Factory, admin_mode: None
) -> None:
    admin = factory.user(admin=True)
    signed_in(page, admin["username"], PASSWORD)
    main = page.get_by_role("navigation", name="Main")
    expect(main.get_by_role("link", name="Admin area")).to_have_count(0)
    expect(main.get_by_role("link", name="Enter Admin Mode")).to_be_visible()

    # An admin page sends the admin to enter Admin Mode first.
    page.goto("/admin/users")
    expect(page).to_have_url(re.compile(r"/admin/session/new\?redirect_to=/admin/users$"))
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Enter Admin Mode").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid login or password")
    assert _failed_attempts(server, admin["id"]) == 1

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Enter Admin Mode").click()
    expect(page).to_have_url(re.compile(r"/admin/users$"))
    expect(page.get_by_role("status")).to_have_text("Admin mode enabled")
    expect(main.get_by_role("link", name="Admin area")).to_be_visible()
    assert _failed_attempts(server, admin["id"]) == 0

    # Leaving it takes the powers away again.
    page.get_by_role("button", name="Leave Admin Mode").click()
    expect(page.get_by_role("status")).to_have_text("Admin mode disabled")
    page.goto("/admin/application_settings")
    expect(page).to_have_url(re.compile(r"/admin/session/new"))


def test_admin_mode_lasts_six_hours(
    page: Page, server: LiveServer, factory: Factory, admin_mode: None
) -> None:
    admin = factory.user(admin=True)
    signed_in(page, admin["username"], PASSWORD)
    page.goto("/admin/session/new")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Enter Admin Mode").click()
    expect(page).to_have_url(re.compile(r"/admin/users$"))
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(hours=5, minutes=50))
    page.goto("/admin/seats")
    expect(page).to_have_url(re.compile(r"/admin/seats$"))
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(hours=6, minutes=10))
    page.goto("/admin/seats")
    expect(page).to_have_url(re.compile(r"/admin/session/new"))


def test_without_the_setting_admins_need_no_admin_mode(
    page: Page, server: LiveServer, factory: Factory
) -> None:
    admin = factory.user(admin=True)
    signed_in(page, admin["username"], PASSWORD)
    page.goto("/admin/users")
    expect(page).to_have_url(re.compile(r"/admin/users$"))
    expect(page.get_by_role("button", name="Leave Admin Mode")).to_have_count(0)
    # Non-admins still get 404 for the re-authentication page.
    user = factory.user()
    http = session_for(server, user["username"], PASSWORD)
    assert http.get(f"{server.url}/admin/session/new", timeout=30).status_code == 404


@pytest.fixture
def settings_back(server: LiveServer) -> Iterator[dict[str, Any]]:
    before = server.root("GET", "/application/settings").json()
    yield before
    names = (
        "default_projects_limit",
        "deactivate_dormant_users",
        "deactivate_dormant_users_period",
        "delete_inactive_projects",
        "inactive_projects_delete_after_months",
        "inactive_projects_send_warning_email_after_months",
        "allow_top_level_group_owners_to_create_service_accounts",
        "admin_mode",
    )
    back = {name: before[name] for name in names} | {"personal_access_token_prefix": ""}
    assert server.root("PUT", "/application/settings", json=back).status_code == 200


def test_settings_page_shows_and_saves_the_new_settings(
    page: Page, server: LiveServer, settings_back: dict[str, Any]
) -> None:
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto("/admin/application_settings")
    for heading in (
        "Account and limit",
        "Sign-in restrictions",
        "Dormant and unconfirmed users",
        "Inactive projects",
        "Service accounts and tokens",
        "Rate limits: authenticated API",
    ):
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
    expect(page.get_by_label("Default projects limit")).to_have_value("100000")

    page.get_by_label("Default projects limit").fill("40")
    page.get_by_label("Deactivate dormant users").check()
    page.get_by_label("Days of inactivity before deactivation").fill("120")
    page.get_by_label("Delete inactive projects", exact=True).check()
    page.get_by_label("Delete inactive projects after (months)").fill("4")
    page.get_by_label("Allow top-level group Owners to create service accounts").check()
    page.get_by_label("Token prefix").fill("corp-")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("The settings have been saved.")
    after = server.root("GET", "/application/settings").json()
    assert after["default_projects_limit"] == 40
    assert after["deactivate_dormant_users"] is True
    assert after["deactivate_dormant_users_period"] == 120
    assert after["delete_inactive_projects"] is True
    assert after["inactive_projects_delete_after_months"] == 4
    assert after["allow_top_level_group_owners_to_create_service_accounts"] is True
    assert after["personal_access_token_prefix"] == "corp-glpat-"
    assert after["admin_mode"] is False
    expect(page.get_by_label("Token prefix")).to_have_value("corp-")

    # GitLab's validation, shown under the form; nothing is saved.
    http = session_for(server, "root", ROOT_PASSWORD)
    form = http.get(f"{server.url}/admin/application_settings", timeout=30).text
    response = http.post(
        f"{server.url}/admin/application_settings",
        data={
            "authenticity_token": csrf_of(form),
            "deactivate_dormant_users": "true",
            "deactivate_dormant_users_period": "30",
        },
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 400, response.text
    assert "days of inactivity must be greater than or equal to 90" in response.text
    assert server.root("GET", "/application/settings").json()["deactivate_dormant_users_period"] == 120


def test_the_token_page_says_why_its_form_is_gone(page: Page, server: LiveServer, factory: Factory) -> None:
    owner, owner_token = factory.user_with_token()
    group = factory.group(token=owner_token)
    sub = factory.group(token=owner_token, parent_id=group["id"])
    project = factory.project(token=owner_token, namespace_id=sub["id"])
    changed = server.request(
        "PUT",
        f"/groups/{group['id']}",
        token=owner_token,
        json={"resource_access_token_creation_allowed": False},
    )
    assert changed.status_code == 200, changed.text
    signed_in(page, owner["username"], PASSWORD)
    for url in (
        f"/{project['path_with_namespace']}/-/settings/access_tokens",
        f"/groups/{sub['full_path']}/-/settings/access_tokens",
    ):
        page.goto(url)
        expect(page.locator("#token-creation-disabled")).to_contain_text(
            "Project access token and group access token creation is disabled in this group."
        )
        expect(page.get_by_role("button", name=re.compile("Create .* access token"))).to_have_count(0)
    # The form itself is refused too, by the same rule.
    http = session_for(server, owner["username"], PASSWORD)
    url = f"{server.url}/{project['path_with_namespace']}/-/settings/access_tokens"
    response = http.post(
        url,
        data={
            "authenticity_token": csrf_of(http.get(url, timeout=30).text),
            "name": "bot",
            "scopes": "read_api",
            "access_level": "30",
        },
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code in (400, 403), response.text
    assert "User does not have permission to create project access token" in response.text

    server.request(
        "PUT",
        f"/groups/{group['id']}",
        token=owner_token,
        json={"resource_access_token_creation_allowed": True},
    )
    page.goto(f"/{project['path_with_namespace']}/-/settings/access_tokens")
    expect(page.locator("#token-creation-disabled")).to_have_count(0)
    page.get_by_role("button", name="Add new token").click()
    expect(page.get_by_role("button", name="Create project access token")).to_be_visible()
