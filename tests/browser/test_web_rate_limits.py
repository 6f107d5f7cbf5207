"""An admin gives one user a rate limit of their own on the user's admin page, and takes it back;
each change is checked through the API and the audit log. A non-admin cannot post the form."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.pages import csrf_of, session_for, signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer

PASSWORD = "a-long-password-1"


def _events(server: LiveServer, user_id: int) -> list[str]:
    events = server.root("GET", "/audit_events", params={"entity_type": "User", "entity_id": user_id}).json()
    return [e["event_name"] for e in events]


def test_admin_sets_and_removes_a_users_own_rate_limit(
    page: Page, server: LiveServer, factory: Factory
) -> None:
    bot = factory.user()
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/admin/users/{bot['username']}")
    section = page.get_by_role("region", name="Rate limit")
    expect(section).to_contain_text("The instance's limits apply")
    section.get_by_label("Requests").fill("50000")
    section.get_by_label("per (seconds)").fill("60")
    section.get_by_role("button", name="Set own limit").click()
    expect(page.get_by_role("status")).to_have_text(f"@{bot['username']} has a rate limit of their own now.")
    expect(page.get_by_role("region", name="Rate limit")).to_contain_text(
        re.compile(r"Own limit: 50000 requests per 60 seconds")
    )
    override = server.root("GET", f"/users/{bot['id']}/rate_limit").json()
    assert (override["requests_per_period"], override["period_in_seconds"]) == (50000, 60)
    assert "user.rate_limit_set" in _events(server, bot["id"])

    page.get_by_role("region", name="Rate limit").get_by_role(
        "button", name="Use the instance's limits"
    ).click()
    expect(page.get_by_role("status")).to_have_text(
        f"@{bot['username']} has the instance's rate limits again."
    )
    assert server.root("GET", f"/users/{bot['id']}/rate_limit").status_code == 404
    assert "user.rate_limit_removed" in _events(server, bot["id"])


def test_bad_values_and_non_admins_are_refused(server: LiveServer, factory: Factory) -> None:
    bot = factory.user()
    admin = session_for(server, "root", ROOT_PASSWORD)
    form = admin.get(f"{server.url}/admin/users/{bot['username']}", timeout=30)
    for values in (
        {"requests_per_period": "0", "period_in_seconds": "60"},
        {"requests_per_period": "x", "period_in_seconds": "60"},
    ):
        response = admin.post(
            f"{server.url}/admin/users/{bot['username']}/rate_limit",
            data={**values, "authenticity_token": csrf_of(form.text)},
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 400, response.text
    assert server.root("GET", f"/users/{bot['id']}/rate_limit").status_code == 404
    someone = factory.user()
    other = session_for(server, someone["username"], PASSWORD)
    page = other.get(f"{server.url}/", timeout=30)
    response = other.post(
        f"{server.url}/admin/users/{bot['username']}/rate_limit",
        data={
            "requests_per_period": "5",
            "period_in_seconds": "60",
            "authenticity_token": csrf_of(page.text),
        },
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 404
    assert server.root("GET", f"/users/{bot['id']}/rate_limit").status_code == 404
