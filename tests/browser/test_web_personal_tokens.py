"""The signed-in person's Personal access tokens page, in Chromium, checked against the API.

Create a token through the form and read it once, use it, rotate it and revoke it from the table
(through the confirmation dialogs); bad input re-renders the form and creates nothing; forms
without their CSRF token are refused; people only ever see and touch their own tokens.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from keycrew.context import Actor
from keycrew.errors import Forbidden
from keycrew.identity.models import User
from keycrew.tokens import personal
from keycrew.web.templating import date
from tests.browser.pages import csrf_of, session_for, signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
URL = "/-/user_settings/personal_access_tokens"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _tokens_of(server: LiveServer, user_id: int) -> list[dict[str, Any]]:
    """The API's view, as root: every personal token of ``user_id``."""
    response = server.root("GET", "/personal_access_tokens", params={"user_id": user_id, "per_page": 100})
    assert response.status_code == 200, response.text
    return list(response.json())


def _active_table(page: Page) -> Locator:
    return page.get_by_role("table", name=re.compile(r"^Active personal access tokens"))


def _inactive_table(page: Page) -> Locator:
    return page.get_by_role("table", name=re.compile(r"^Inactive personal access tokens"))


def _secret(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Your new personal access token")


def _whoami(server: LiveServer, value: str) -> requests.Response:
    return server.request("GET", "/user", token=value)


def _open_form(page: Page) -> None:
    """The form sits behind "Add new token" (open already when shown again with its errors)."""
    button = page.get_by_role("button", name="Add new token")
    if button.get_attribute("aria-expanded") != "true":
        button.click()
    expect(page.get_by_label("Token name")).to_be_visible()


def _fill_form(page: Page, name: str, scopes: list[str], expires_at: str | None = None) -> None:
    _open_form(page)
    page.get_by_label("Token name").fill(name)
    if expires_at is not None:
        page.get_by_label("Expiration date").fill(expires_at)
    for scope in scopes:
        page.get_by_label(scope, exact=True).check()


def _submit(page: Page) -> int:
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Create personal access token").click()
    page.wait_for_load_state()
    return posted.value.status


@pytest.fixture
def settings_restored(server: LiveServer) -> Iterator[None]:
    before = server.root("GET", "/application/settings").json()
    yield
    server.root(
        "PUT",
        "/application/settings",
        json={
            "require_personal_access_token_expiry": before["require_personal_access_token_expiry"],
            "max_personal_access_token_lifetime": before["max_personal_access_token_lifetime"],
        },
    )


def test_create_read_once_use_rotate_and_revoke(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    signed_in(page, user["username"], PASSWORD)
    page.get_by_role("link", name="Access tokens").click()
    expect(page).to_have_url(f"{server.url}{URL}")
    expect(page.get_by_role("heading", name="Personal access tokens", level=1)).to_be_visible()
    _open_form(page)
    today = _today()
    expires = page.get_by_label("Expiration date")
    expect(expires).to_have_value((today + dt.timedelta(days=30)).isoformat())
    expect(expires).to_have_attribute("min", today.isoformat())  # today is accepted, as on GitLab
    expect(expires).to_have_attribute("max", (today + dt.timedelta(days=365)).isoformat())
    # Every non-admin scope is offered, with its description; the admin ones are not.
    expect(page.get_by_label("read_repository", exact=True)).to_have_accessible_description(
        "Clone and fetch repositories over Git HTTP."
    )
    expect(page.get_by_label("sudo", exact=True)).to_have_count(0)

    name = uid("release-script-")
    _fill_form(page, name, ["api", "read_user"])
    page.get_by_label("Description (optional)").fill("Tags releases")
    assert _submit(page) == 303
    expect(page).to_have_url(f"{server.url}{URL}")
    secret = _secret(page)
    value = secret.input_value()
    assert value.startswith("glpat-")
    expect(page.get_by_role("button", name="Copy personal access token")).to_be_visible()
    expect(page.get_by_text("you won't be able to access it again")).to_be_visible()
    row = _active_table(page).get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text("Tags releases")
    expect(row).to_contain_text("api")
    expect(row).to_contain_text("read_user")

    # The token is real: the API knows its owner, and sees the scopes and expiry the form chose.
    me = _whoami(server, value)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == user["username"]
    (made,) = _tokens_of(server, user["id"])
    assert made["name"] == name
    assert made["description"] == "Tags releases"
    assert made["scopes"] == ["api", "read_user"]
    assert made["expires_at"] == (today + dt.timedelta(days=30)).isoformat()

    # Shown once: a reload no longer has it, the table keeps its row.
    page.reload()
    expect(_secret(page)).to_have_count(0)
    assert value not in page.content()
    expect(row).to_be_visible()

    # Rotate from the table, through its dialog.
    row.get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Rotate the token {name}?")
    dialog.get_by_role("button", name="Rotate token").click()
    expect(
        page.get_by_role("heading", name=f"The personal access token {name} has been rotated.")
    ).to_be_visible()
    rotated = _secret(page).input_value()
    assert rotated.startswith("glpat-")
    assert rotated != value
    assert _whoami(server, value).status_code == 401
    assert _whoami(server, rotated).status_code == 200
    old, new = sorted(_tokens_of(server, user["id"]), key=lambda t: t["id"])
    assert old["revoked"] is True
    assert (new["name"], new["scopes"], new["active"]) == (name, ["api", "read_user"], True)
    expect(_inactive_table(page).get_by_role("row").filter(has_text=name)).to_contain_text("Rotated")
    page.reload()
    expect(_secret(page)).to_have_count(0)
    assert rotated not in page.content()

    # Revoke it, through its dialog.
    _active_table(page).get_by_role("row").filter(has_text=name).get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("This cannot be undone.")
    dialog.get_by_role("button", name="Revoke token").click()
    expect(page.get_by_role("status")).to_have_text(f"Revoked the personal access token {name}.")
    assert _whoami(server, rotated).status_code == 401
    assert all(t["revoked"] for t in _tokens_of(server, user["id"]))
    expect(_active_table(page)).to_contain_text("You have no active personal access tokens.")
    expect(_inactive_table(page).get_by_role("row").filter(has_text=name)).to_have_count(2)


def test_cancelling_a_dialog_changes_nothing(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    value = factory.token(user["id"], ["read_api"], expires_at=(_today() + dt.timedelta(days=9)).isoformat())
    signed_in(page, user["username"], PASSWORD)
    page.goto(URL)
    row = _active_table(page).get_by_role("row").filter(has_text="read_api")
    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    row.get_by_role("button", name="Rotate").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert _whoami(server, value).status_code == 200


def test_bad_input_re_renders_the_form_and_creates_nothing(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user = factory.user()
    signed_in(page, user["username"], PASSWORD)
    today = _today()
    latest = today + dt.timedelta(days=365)
    cases = [
        ("", ["api"], None, "Token name can't be blank"),
        (uid("n"), [], None, "Select at least one scope"),
        (
            uid("n"),
            ["api"],
            (today - dt.timedelta(days=1)).isoformat(),
            "Expiration date can't be in the past",
        ),
        (
            uid("n"),
            ["api"],
            (latest + dt.timedelta(days=1)).isoformat(),
            f"Expiration date can't be later than {date(latest)}",
        ),
        (uid("n"), ["api"], "", "Expiration date can't be blank"),
    ]
    for name, scopes, expires_at, message in cases:
        page.goto(URL)
        _fill_form(page, name, scopes, expires_at)
        assert _submit(page) == 400
        expect(page.get_by_role("alert").get_by_role("listitem")).to_have_text([message])
        # The form keeps what was typed, and still offers no secret.
        expect(page.get_by_label("Token name")).to_have_value(name)
        for scope in scopes:
            expect(page.get_by_label(scope, exact=True)).to_be_checked()
        expect(_secret(page)).to_have_count(0)
    assert _tokens_of(server, user["id"]) == []
    # A good submission after all that works.
    page.goto(URL)
    _fill_form(page, uid("good"), ["read_api"])
    assert _submit(page) == 303
    assert len(_tokens_of(server, user["id"])) == 1


def test_forms_without_their_csrf_token_are_refused(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    value = factory.token(user["id"], ["api"])
    (existing,) = _tokens_of(server, user["id"])
    http = session_for(server, user["username"], PASSWORD)
    csrf = csrf_of(http.get(f"{server.url}{URL}", timeout=30).text)
    form = {"name": uid("forged"), "scopes": ["api"], "expires_at": ""}
    for data, headers in (
        (form, {}),
        (form | {"authenticity_token": "forged"}, {}),
        (form | {"authenticity_token": csrf}, {"Origin": "https://evil.example"}),
    ):
        for path in (URL, f"{URL}/{existing['id']}/revoke", f"{URL}/{existing['id']}/rotate"):
            response = http.post(
                f"{server.url}{path}", data=data, headers=headers, timeout=30, allow_redirects=False
            )
            assert response.status_code == 403, path
            assert "The form could not be verified" in response.text
    assert [t["id"] for t in _tokens_of(server, user["id"])] == [existing["id"]]
    assert _whoami(server, value).status_code == 200
    # The same form with its token goes through.
    response = http.post(
        f"{server.url}{URL}",
        data=form | {"authenticity_token": csrf, "expires_at": (_today() + dt.timedelta(days=3)).isoformat()},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 303
    assert len(_tokens_of(server, user["id"])) == 2


def test_people_see_and_touch_only_their_own_tokens(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    theirs_name = uid("theirs")
    theirs = factory.token(user["id"], ["read_api"], name=theirs_name)
    (their_token,) = _tokens_of(server, user["id"])
    root_name = uid("roots")
    factory.token(1, ["api"], name=root_name)
    root_token = next(t for t in _tokens_of(server, 1) if t["name"] == root_name)

    # An admin's page lists the admin's own tokens only, and offers the admin scopes.
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(URL)
    expect(_active_table(page)).to_contain_text(root_name)
    expect(_active_table(page)).not_to_contain_text(theirs_name)
    _open_form(page)
    expect(page.get_by_label("sudo", exact=True)).to_be_visible()
    expect(page.get_by_label("admin_mode", exact=True)).to_be_visible()

    # Not even an admin revokes or rotates someone else's token here.
    root_http = session_for(server, "root", ROOT_PASSWORD)
    csrf = csrf_of(root_http.get(f"{server.url}{URL}", timeout=30).text)
    for action in ("revoke", "rotate"):
        response = root_http.post(
            f"{server.url}{URL}/{their_token['id']}/{action}", data={"authenticity_token": csrf}, timeout=30
        )
        assert response.status_code == 404
        assert "Page not found" in response.text
    assert _whoami(server, theirs).status_code == 200

    http = session_for(server, user["username"], PASSWORD)
    html = http.get(f"{server.url}{URL}", timeout=30).text
    assert theirs_name in html
    assert root_name not in html
    csrf = csrf_of(html)
    for target in (str(root_token["id"]), "not-a-number", "99999999999"):
        response = http.post(
            f"{server.url}{URL}/{target}/revoke", data={"authenticity_token": csrf}, timeout=30
        )
        assert response.status_code == 404
    assert next(t for t in _tokens_of(server, 1) if t["id"] == root_token["id"])["active"] is True
    # Admin scopes are refused to a non-admin even when posted by hand.
    response = http.post(
        f"{server.url}{URL}",
        data={
            "authenticity_token": csrf,
            "name": uid("n"),
            "scopes": ["sudo"],
            "expires_at": (_today() + dt.timedelta(days=3)).isoformat(),
        },
        timeout=30,
    )
    assert response.status_code == 400
    assert "Scopes: one of them can&#39;t be given to this token" in response.text
    assert len(_tokens_of(server, user["id"])) == 1


def test_tokens_may_never_expire_when_the_instance_allows_it(
    server: LiveServer, page: Page, factory: Factory, settings_restored: None
) -> None:
    server.root(
        "PUT",
        "/application/settings",
        json={"require_personal_access_token_expiry": False, "max_personal_access_token_lifetime": 90},
    )
    user = factory.user()
    signed_in(page, user["username"], PASSWORD)
    page.goto(URL)
    _open_form(page)
    today = _today()
    expires = page.get_by_label("Expiration date (optional)")
    expect(expires).to_have_attribute("max", (today + dt.timedelta(days=90)).isoformat())
    expect(page.get_by_text("Leave empty for a token that never expires.")).to_be_visible()
    name = uid("forever")
    _fill_form(page, name, ["read_api"], "")
    assert _submit(page) == 303
    row = _active_table(page).get_by_role("row").filter(has_text=name)
    expect(row.get_by_role("cell").nth(4)).to_have_text("Never")
    (made,) = _tokens_of(server, user["id"])
    assert made["expires_at"] is None
    # The lower maximum holds.
    page.goto(URL)
    _fill_form(page, uid("n"), ["read_api"], (today + dt.timedelta(days=91)).isoformat())
    assert _submit(page) == 400
    expect(page.get_by_role("alert")).to_contain_text(
        f"Expiration date can't be later than {date(today + dt.timedelta(days=90))}"
    )


def test_only_a_signed_in_person_creates_tokens_this_way(
    server: LiveServer, factory: Factory, gl: Any
) -> None:
    """The use case behind the form refuses machines and token-authenticated callers."""
    user = factory.user()
    account = gl.service_accounts.create({})
    expires = _today() + dt.timedelta(days=5)
    with server.runtime.sessions() as db:
        person = db.get(User, user["id"])
        machine = db.get(User, account.id)
        assert person is not None
        assert machine is not None
        for actor in (
            Actor(user=machine, via="web"),
            Actor(user=person, token_id=1, scopes=frozenset({"api"}), via="api"),
        ):
            ctx = server.runtime.ctx(db, actor)
            with pytest.raises(Forbidden):
                personal.create_signed_in_personal_access_token(
                    ctx, name="n", scopes=["api"], expires_at=expires
                )
        db.rollback()
    assert _tokens_of(server, user["id"]) == []
    assert _tokens_of(server, account.id) == []


def test_anonymous_visitors_are_sent_to_sign_in(server: LiveServer) -> None:
    response = requests.get(f"{server.url}{URL}", timeout=30, allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/users/sign_in?redirect_to={URL}"


def test_inactive_tokens_are_listed_for_thirty_days(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    soon = uid("soon")
    factory.token(
        user["id"], ["read_api"], name=soon, expires_at=(_today() + dt.timedelta(days=2)).isoformat()
    )
    gone = uid("gone")
    factory.token(user["id"], ["read_api"], name=gone)
    (revoked,) = [t for t in _tokens_of(server, user["id"]) if t["name"] == gone]
    assert server.root("DELETE", f"/personal_access_tokens/{revoked['id']}").status_code == 204

    def sections(days: int) -> tuple[str, str]:
        server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(days=days))
        http = session_for(server, user["username"], PASSWORD)
        html = http.get(f"{server.url}{URL}", timeout=30).text
        active, inactive = html.split('id="inactive-personal-tokens-heading"')
        return active, inactive

    active, inactive = sections(0)
    assert soon in active
    assert gone in inactive
    active, inactive = sections(3)
    assert soon not in active
    assert soon in inactive
    assert "Expired" in inactive
    active, inactive = sections(40)
    assert soon not in active + inactive
    assert gone not in active + inactive
