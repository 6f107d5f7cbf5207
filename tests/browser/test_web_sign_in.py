"""Signing in to the web UI: who may, the lock after ten wrong passwords, sessions and CSRF.

Browser tests drive Debian's headless Chromium; the checks a browser cannot make (raw posts
without a CSRF token, cookie attributes) use requests against the same live server.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests
from playwright.sync_api import Page, expect
from sqlalchemy import select

from keycrew.identity.models import User, UserSession
from keycrew.identity.passwords import hash_password
from keycrew.identity.sign_in import NEUTRAL_REFUSAL
from tests.browser.pages import csrf_of, session_for, sign_in, signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"


def _events(server: LiveServer, user_id: int, name: str) -> list[dict[str, Any]]:
    response = server.root(
        "GET", "/audit_events", params={"entity_type": "User", "entity_id": user_id, "per_page": 100}
    )
    assert response.status_code == 200, response.text
    return [e for e in response.json() if e["event_name"] == name]


def _give_password(server: LiveServer, user_id: int, password: str) -> None:
    """Test set-up: give an account a real password, so that a refusal proves the type rule."""
    with server.runtime.sessions() as db, db.begin():
        user = db.get(User, user_id)
        assert user is not None
        user.password_digest = hash_password(password)


def test_root_signs_in_sees_the_dashboard_and_signs_out(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    group = factory.group()
    page.goto("/")
    expect(page).to_have_url(f"{server.url}/users/sign_in")
    signed_in(page, "root", ROOT_PASSWORD)
    expect(page).to_have_url(f"{server.url}/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # The dashboard lists the first 100 groups; the session's server holds more by now (in any
    # test order), so its own filter finds the new one.
    page.get_by_label("Filter by name").fill(group["name"])
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name=group["name"], exact=True)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You have signed out.")
    page.goto("/")
    expect(page).to_have_url(f"{server.url}/users/sign_in")


def test_sign_in_goes_back_to_the_page_asked_for(server: LiveServer, page: Page, factory: Factory) -> None:
    project = factory.project()
    page.goto(f"/{project['path_with_namespace']}")
    expect(page).to_have_url(f"{server.url}/users/sign_in?redirect_to=/{project['path_with_namespace']}")
    page.get_by_label("Username or primary email").fill("root")
    page.get_by_label("Password").fill(ROOT_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{server.url}/{project['path_with_namespace']}")
    expect(page.get_by_role("heading", name=project["name"])).to_be_visible()


def test_open_redirects_are_refused(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=PASSWORD)
    http = requests.Session()
    form = http.get(f"{server.url}/users/sign_in", timeout=30)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = http.post(
            f"{server.url}/users/sign_in",
            data={
                "login": user["username"],
                "password": PASSWORD,
                "redirect_to": target,
                "authenticity_token": csrf_of(form.text),
            },
            timeout=30,
            allow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        http = requests.Session()
        form = http.get(f"{server.url}/users/sign_in", timeout=30)


def test_machines_and_blocked_people_are_refused_like_a_wrong_password(
    server: LiveServer, page: Page, gl: Any, factory: Factory
) -> None:
    account = gl.service_accounts.create({})
    project = factory.project()
    bot_token = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "deployer", "scopes": ["api"]}
    ).json()
    blocked = factory.user(password=PASSWORD)
    server.root("POST", f"/users/{blocked['id']}/block")
    _give_password(server, account.id, PASSWORD)
    _give_password(server, bot_token["user_id"], PASSWORD)
    bot = server.root("GET", f"/users/{bot_token['user_id']}").json()
    for login in (account.username, bot["username"], blocked["username"], uid("nobody")):
        sign_in(page, login, PASSWORD)
        expect(page).to_have_url(f"{server.url}/users/sign_in")
        expect(page.get_by_role("alert")).to_have_text(NEUTRAL_REFUSAL)
    # The same words as a wrong password for a person who may sign in.
    person = factory.user(password=PASSWORD)
    sign_in(page, person["username"], "not-the-password")
    expect(page.get_by_role("alert")).to_have_text(NEUTRAL_REFUSAL)
    signed_in(page, person["username"], PASSWORD)


def test_ten_wrong_passwords_lock_the_account_for_ten_minutes(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user = factory.user(password=PASSWORD)
    for attempt in range(1, 11):
        sign_in(page, user["username"], f"wrong-password-{attempt}")
        expect(page.get_by_role("alert")).to_have_text(NEUTRAL_REFUSAL)
    assert len(_events(server, user["id"], "user.sign_in_failed")) == 10
    (locked,) = _events(server, user["id"], "user.locked")
    assert locked["details"]["author_name"] == "GitLab-Admin-Bot"
    # Now even the right password is refused, and does not tell that the account exists.
    sign_in(page, user["username"], PASSWORD)
    expect(page).to_have_url(f"{server.url}/users/sign_in")
    expect(page.get_by_role("alert")).to_have_text(NEUTRAL_REFUSAL)
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=9))
    sign_in(page, user["username"], PASSWORD)
    expect(page.get_by_role("alert")).to_have_text(NEUTRAL_REFUSAL)
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11))
    signed_in(page, user["username"], PASSWORD)
    assert len(_events(server, user["id"], "user.unlocked")) == 1
    assert len(_events(server, user["id"], "user.signed_in")) == 1


def test_a_correct_password_resets_the_count(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=PASSWORD)
    for _ in range(9):
        _post_sign_in(server, user["username"], "wrong-password")
    session_for(server, user["username"], PASSWORD)
    for _ in range(9):
        _post_sign_in(server, user["username"], "wrong-password")
    assert _events(server, user["id"], "user.locked") == []
    session_for(server, user["username"], PASSWORD)


def _post_sign_in(server: LiveServer, login: str, password: str) -> requests.Response:
    http = requests.Session()
    form = http.get(f"{server.url}/users/sign_in", timeout=30)
    return http.post(
        f"{server.url}/users/sign_in",
        data={"login": login, "password": password, "authenticity_token": csrf_of(form.text)},
        timeout=30,
        allow_redirects=False,
    )


def test_forms_without_their_csrf_token_are_refused(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=PASSWORD)
    anonymous = requests.Session()
    anonymous.get(f"{server.url}/users/sign_in", timeout=30)
    for data in (
        {"login": user["username"], "password": PASSWORD},
        {"login": user["username"], "password": PASSWORD, "authenticity_token": "forged"},
    ):
        response = anonymous.post(f"{server.url}/users/sign_in", data=data, timeout=30, allow_redirects=False)
        assert response.status_code == 403
        assert "The form could not be verified" in response.text
        assert "_keycrew_session" not in response.headers.get("set-cookie", "")
    # A token from another visitor's page does not fit this visitor's cookie.
    other = requests.Session()
    foreign = csrf_of(other.get(f"{server.url}/users/sign_in", timeout=30).text)
    response = anonymous.post(
        f"{server.url}/users/sign_in",
        data={"login": user["username"], "password": PASSWORD, "authenticity_token": foreign},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 403
    # Signed in, a form posted from another site is refused even with the right token.
    http = session_for(server, user["username"], PASSWORD)
    token = csrf_of(http.get(f"{server.url}/", timeout=30).text)
    response = http.post(f"{server.url}/users/sign_out", data={}, timeout=30, allow_redirects=False)
    assert response.status_code == 403
    response = http.post(
        f"{server.url}/users/sign_out",
        data={"authenticity_token": token},
        headers={"Origin": "https://evil.example"},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 403
    assert http.get(f"{server.url}/", timeout=30, allow_redirects=False).status_code == 200
    response = http.post(
        f"{server.url}/users/sign_out", data={"authenticity_token": token}, timeout=30, allow_redirects=False
    )
    assert response.status_code == 303


def test_session_cookie_attributes_and_what_is_stored(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=PASSWORD)
    http = requests.Session()
    form = http.get(f"{server.url}/users/sign_in", timeout=30)
    response = http.post(
        f"{server.url}/users/sign_in",
        data={"login": user["email"].upper(), "password": PASSWORD, "authenticity_token": csrf_of(form.text)},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 303
    cookie = next(c for c in response.raw.headers.getlist("set-cookie") if c.startswith("_keycrew_session="))
    attributes = cookie.lower()
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "secure" not in attributes  # plain http here
    value = http.cookies["_keycrew_session"]
    with server.runtime.sessions() as db:
        rows = db.scalars(select(UserSession).where(UserSession.user_id == user["id"])).all()
        assert len(rows) == 1
        assert value not in (rows[0].session_digest, rows[0].user_agent, rows[0].ip_address)
        assert len(rows[0].session_digest) == 64
    # Behind a TLS proxy (X-Forwarded-Proto from a trusted address) the cookie is Secure too.
    proxied = requests.Session()
    form = proxied.get(f"{server.url}/users/sign_in", headers={"X-Forwarded-Proto": "https"}, timeout=30)
    for jar_cookie in proxied.cookies:  # requests keeps Secure cookies off plain http: this is TLS
        assert jar_cookie.secure
        jar_cookie.secure = False
    response = proxied.post(
        f"{server.url}/users/sign_in",
        data={"login": user["username"], "password": PASSWORD, "authenticity_token": csrf_of(form.text)},
        headers={"X-Forwarded-Proto": "https"},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 303
    cookie = next(c for c in response.raw.headers.getlist("set-cookie") if c.startswith("_keycrew_session="))
    assert "secure" in cookie.lower()


def test_blocking_or_signing_out_ends_the_session_at_once(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=PASSWORD)
    http = session_for(server, user["username"], PASSWORD)
    assert http.get(f"{server.url}/", timeout=30, allow_redirects=False).status_code == 200
    server.root("POST", f"/users/{user['id']}/block")
    response = http.get(f"{server.url}/", timeout=30, allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/users/sign_in"
    server.root("POST", f"/users/{user['id']}/unblock")
    http = session_for(server, user["username"], PASSWORD)
    stolen = http.cookies["_keycrew_session"]
    token = csrf_of(http.get(f"{server.url}/", timeout=30).text)
    http.post(f"{server.url}/users/sign_out", data={"authenticity_token": token}, timeout=30)
    replay = requests.get(
        f"{server.url}/", cookies={"_keycrew_session": stolen}, timeout=30, allow_redirects=False
    )
    assert replay.status_code == 303


def test_a_session_expires_after_the_delay_without_use(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=PASSWORD)
    http = session_for(server, user["username"], PASSWORD)
    delay = server.runtime.instance.session_expire_minutes
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=delay - 5))
    assert http.get(f"{server.url}/", timeout=30, allow_redirects=False).status_code == 200  # use moves it
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2 * delay - 10))
    assert http.get(f"{server.url}/", timeout=30, allow_redirects=False).status_code == 200
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=3 * delay))
    assert http.get(f"{server.url}/", timeout=30, allow_redirects=False).status_code == 303


def test_ui_error_pages_are_html_and_api_errors_stay_json(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=PASSWORD)
    http = session_for(server, user["username"], PASSWORD)
    private = factory.project()  # root's: this user may not see it
    response = http.get(f"{server.url}/{private['path_with_namespace']}", timeout=30)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Page not found" in response.text
    assert private["name"] not in response.text
    for method in ("GET", "POST"):
        response = requests.request(method, server.api("/no/such/route"), timeout=30)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/json"


def test_anonymous_visitors_see_public_projects_only(server: LiveServer, factory: Factory) -> None:
    public = factory.project(visibility="public")
    private = factory.project()
    page = requests.get(f"{server.url}/{public['path_with_namespace']}", timeout=30, allow_redirects=False)
    assert page.status_code == 200
    assert public["name"] in page.text
    assert "Sign out" not in page.text
    # A private project and one that does not exist get the same answer: sign in first.
    for path in (private["path_with_namespace"], f"{uid('nobody')}/{uid('p')}"):
        response = requests.get(f"{server.url}/{path}", timeout=30, allow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/users/sign_in?redirect_to=/{path}"
