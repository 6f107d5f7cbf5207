"""Rotating a token from the web UI asks for the new expiry, in Chromium, checked against the API.

The rotate dialog offers the API's default (a week ahead, as POST .../rotate without expires_at)
and the token's current expiry; the dialog and the flash message state the new date, which the API
then reports; a refused date is shown next to its field. The inactive tables tell a rotated token
("Rotated — replaced by …") from a revoked one. A non-admin service account's token form offers no
admin-only scope, and a forged POST with one is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from playwright.sync_api import Locator, Page, expect

from keycrew.web.templating import date
from tests.browser.pages import csrf_of, session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
URL = "/-/user_settings/personal_access_tokens"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _tokens_of(server: LiveServer, user_id: int) -> list[dict[str, Any]]:
    response = server.root("GET", "/personal_access_tokens", params={"user_id": user_id, "per_page": 100})
    assert response.status_code == 200, response.text
    return sorted(response.json(), key=lambda t: t["id"])


def _fits_a_phone(page: Page, part: Locator) -> None:
    """At 390 px, what this piece adds (the rotate dialog or form, the inactive table's wrapper)
    fits without horizontal scrolling. The page as a whole is the phone layout's concern: its top
    bar does not collapse yet, so ``document.documentElement.scrollWidth`` is not asserted here."""
    page.set_viewport_size({"width": 390, "height": 844})
    box = part.bounding_box()
    assert box is not None
    assert box["x"] >= 0, box
    assert box["x"] + box["width"] <= 390, box
    assert part.evaluate("e => e.scrollWidth <= e.clientWidth")
    page.set_viewport_size({"width": 1280, "height": 800})


def _row(table: Locator, name: str) -> Locator:
    return table.get_by_role("row").filter(has_text=name)


def test_a_personal_token_rotates_with_the_default_date_shown_and_applied(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user = factory.user()
    name = uid("deploy-")
    current = _today() + dt.timedelta(days=60)
    made = server.root(
        "POST",
        f"/users/{user['id']}/personal_access_tokens",
        json={"name": name, "scopes": ["read_api"], "expires_at": current.isoformat()},
    )
    assert made.status_code == 201, made.text
    other = uid("spare-")
    server.root(
        "POST", f"/users/{user['id']}/personal_access_tokens", json={"name": other, "scopes": ["read_api"]}
    )
    signed_in(page, user["username"], PASSWORD)
    page.goto(URL)
    active = page.get_by_role("table", name=re.compile(r"^Active personal access tokens"))

    default = _today() + dt.timedelta(days=7)
    _row(active, name).get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog", name=f"Rotate the token {name}?")
    expect(dialog).to_be_visible()
    field = dialog.get_by_label("New token expires on")
    expect(field).to_have_value(default.isoformat())
    expect(dialog).to_contain_text(f"The new token expires on {date(default)}.")
    expect(dialog.get_by_role("button", name=f"Keep current expiry {date(current)}")).to_be_visible()
    assert page.evaluate(AUDIT) == []
    _fits_a_phone(page, dialog)

    dialog.get_by_role("button", name="Rotate token").click()
    expect(
        page.get_by_role("heading", name=re.compile(f"The new token expires on {re.escape(date(default))}"))
    ).to_be_visible()
    tokens = _tokens_of(server, user["id"])
    old = next(t for t in tokens if t["id"] == made.json()["id"])
    new = next(t for t in tokens if t["name"] == name and t["active"])
    assert old["revoked"] is True
    assert new["expires_at"] == default.isoformat()

    # Revoke the other: the inactive table tells a rotated token from a revoked one.
    page.reload()
    _row(active, other).get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog", name=f"Revoke the token {other}?").get_by_role(
        "button", name="Revoke token"
    ).click()
    inactive = page.get_by_role("table", name=re.compile(r"^Inactive personal access tokens"))
    rotated = _row(inactive, name)
    expect(rotated).to_contain_text("Rotated")
    expect(rotated).to_contain_text(f"replaced by “{name}” (#{new['id']})")
    expect(rotated).not_to_contain_text("Revoked")
    revoked = _row(inactive, other)
    expect(revoked).to_contain_text("Revoked")
    expect(revoked).not_to_contain_text("Rotated")
    assert page.evaluate(AUDIT) == []


def test_a_past_date_is_refused_next_to_its_field(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    name = uid("ci-")
    server.root("POST", f"/users/{user['id']}/personal_access_tokens", json={"name": name, "scopes": ["api"]})
    signed_in(page, user["username"], PASSWORD)
    page.goto(URL)
    active = page.get_by_role("table", name=re.compile(r"^Active personal access tokens"))
    _row(active, name).get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog", name=f"Rotate the token {name}?")
    yesterday = _today() - dt.timedelta(days=1)
    dialog.get_by_label("New token expires on").fill(yesterday.isoformat())
    with page.expect_response(re.compile(r"/rotate$")) as answer:
        dialog.get_by_role("button", name="Rotate token").click()
    assert answer.value.status == 400
    retry = page.get_by_role("region", name=f"Rotate “{name}”")
    field = retry.get_by_label("New token expires on")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile("Expiration date can't be in the past"))
    assert page.evaluate(AUDIT) == []
    _fits_a_phone(page, retry)
    (still,) = _tokens_of(server, user["id"])
    assert still["active"] is True  # nothing rotated

    # The same form, a good date: rotated.
    chosen = _today() + dt.timedelta(days=20)
    field.fill(chosen.isoformat())
    retry.get_by_role("button", name="Rotate token").click()
    expect(page.get_by_role("heading", name=re.compile(re.escape(date(chosen))))).to_be_visible()
    new = next(t for t in _tokens_of(server, user["id"]) if t["active"])
    assert new["expires_at"] == chosen.isoformat()


def test_a_project_token_rotates_with_a_chosen_date_or_its_current_one(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner, token = factory.user_with_token()
    project = factory.project(token=token)
    current = _today() + dt.timedelta(days=45)
    name = uid("bot-")
    made = server.request(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        token=token,
        json={"name": name, "scopes": ["read_api"], "expires_at": current.isoformat(), "access_level": 30},
    )
    assert made.status_code == 201, made.text
    signed_in(page, owner["username"], PASSWORD)
    base = f"/{project['path_with_namespace']}/-/settings/access_tokens"
    page.goto(base)
    _row(page.get_by_role("table", name="Active project access tokens"), name).get_by_role(
        "button", name="Rotate"
    ).click()
    dialog = page.get_by_role("dialog", name=f"Rotate “{name}”?")
    _fits_a_phone(page, dialog)
    dialog.get_by_role("button", name=f"Keep current expiry {date(current)}").click()
    expect(dialog.get_by_label("New token expires on")).to_have_value(current.isoformat())
    expect(dialog).to_contain_text(f"The new token expires on {date(current)}.")
    dialog.get_by_role("button", name="Rotate token").click()
    expect(page.get_by_role("heading", name=re.compile(re.escape(date(current))))).to_be_visible()
    listed = server.request("GET", f"/projects/{project['id']}/access_tokens", token=token).json()
    (live,) = [t for t in listed if t["active"]]
    assert live["expires_at"] == current.isoformat()

    # And a date of one's own.
    chosen = _today() + dt.timedelta(days=10)
    page.goto(base)
    _row(page.get_by_role("table", name="Active project access tokens"), name).get_by_role(
        "button", name="Rotate"
    ).click()
    dialog = page.get_by_role("dialog", name=f"Rotate “{name}”?")
    dialog.get_by_label("New token expires on").fill(chosen.isoformat())
    expect(dialog).to_contain_text(f"The new token expires on {date(chosen)}.")
    dialog.get_by_role("button", name="Rotate token").click()
    expect(page.get_by_role("heading", name=re.compile(re.escape(date(chosen))))).to_be_visible()
    listed = server.request("GET", f"/projects/{project['id']}/access_tokens", token=token).json()
    (live,) = [t for t in listed if t["active"]]
    assert live["expires_at"] == chosen.isoformat()
    inactive = page.get_by_role("table", name="Inactive project access tokens", exact=True)
    expect(inactive.get_by_role("row").filter(has_text="Rotated")).to_have_count(2)
    assert page.evaluate(AUDIT) == []


def test_a_service_account_token_gets_no_admin_scope_and_no_date_beyond_the_maximum(
    server: LiveServer, page: Page
) -> None:
    account: dict[str, Any] = server.root("POST", "/service_accounts", json={}).json()
    signed_in(page, "root", ROOT_PASSWORD)
    url = f"/admin/service_accounts/{account['id']}"
    page.goto(url)
    page.get_by_role("button", name="Add new token").click()
    for scope in ("sudo", "admin_mode", "read_service_ping"):
        expect(page.get_by_label(scope, exact=True)).to_have_count(0)
    expect(page.get_by_label("api", exact=True)).to_be_visible()

    # A forged form with sudo is refused, as the API refuses it: no token is made.
    session = session_for(server, "root", ROOT_PASSWORD)
    csrf = csrf_of(session.get(f"{server.url}{url}").text)
    forged = session.post(
        f"{server.url}{url}/personal_access_tokens",
        data={"authenticity_token": csrf, "name": "forged", "scopes": ["api", "sudo"], "expires_at": ""},
        allow_redirects=False,
    )
    assert forged.status_code in (400, 403), forged.status_code
    assert _tokens_of(server, account["id"]) == []

    # Rotation beyond the instance's maximum lifetime: refused with the API's message, by the field.
    made = server.root(
        "POST", f"/users/{account['id']}/personal_access_tokens", json={"name": "robot", "scopes": ["api"]}
    )
    assert made.status_code == 201, made.text
    page.goto(url)
    page.get_by_role("table", name=re.compile("^Active tokens")).get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog", name="Rotate “robot”?")
    too_late = _today() + dt.timedelta(days=400)
    dialog.get_by_label("New token expires on").fill(too_late.isoformat())
    dialog.get_by_role("button", name="Rotate token").click()
    retry = page.get_by_role("region", name="Rotate “robot”")
    latest = _today() + dt.timedelta(days=365)
    expect(retry.get_by_label("New token expires on")).to_have_accessible_description(
        re.compile(re.escape(f"Expiration date can't be later than {date(latest)}"))
    )
    assert page.evaluate(AUDIT) == []
    _fits_a_phone(page, retry)
    (still,) = _tokens_of(server, account["id"])
    assert still["active"] is True
    retry.get_by_label("New token expires on").fill("")
    retry.get_by_role("button", name="Rotate token").click()  # empty: the API's default
    default = _today() + dt.timedelta(days=7)
    expect(page.get_by_role("heading", name=re.compile(re.escape(date(default))))).to_be_visible()
