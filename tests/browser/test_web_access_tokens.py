"""Settings > Access tokens of projects and groups, in Chromium: create once-shown tokens, use them,
rotate and revoke them from the table, and the rules the form enforces."""

from __future__ import annotations

from typing import Any

import requests
from playwright.sync_api import Page, expect

from tests.browser.pages import csrf_of, session_for, signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

MAINTAINER, DEVELOPER, OWNER = 40, 30, 50
PASSWORD = "a-long-password-1"


def _api(server: LiveServer, token: str, path: str) -> requests.Response:
    return requests.get(server.api(path), headers={"PRIVATE-TOKEN": token}, timeout=30)


def _open_form(page: Page) -> None:
    """The form sits behind "Add new token"."""
    page.get_by_role("button", name="Add new token").click()
    expect(page.get_by_label("Token name")).to_be_visible()


def _create_through_form(page: Page, name: str, scopes: list[str], role: str | None = None) -> str:
    _open_form(page)
    page.get_by_label("Token name").fill(name)
    if role is not None:
        page.get_by_role("group", name="Role").get_by_role("radio", name=role, exact=True).check()
    for scope in scopes:
        page.get_by_role("checkbox", name=scope, exact=True).check()
    page.get_by_role("button", name="Create project access token").or_(
        page.get_by_role("button", name="Create group access token")
    ).click()
    secret = page.get_by_label("Your new token")
    expect(secret).to_be_visible()
    value = secret.input_value()
    assert value.startswith("glpat-")
    return value


def _row(page: Page, name: str) -> Any:
    return page.get_by_role("row").filter(has_text=name)


def test_create_read_once_use_rotate_and_revoke(server: LiveServer, page: Page, factory: Factory) -> None:
    project = factory.project()
    url = f"/{project['path_with_namespace']}/-/settings/access_tokens"
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(url)
    expect(page.get_by_role("heading", name="Project access tokens", exact=True)).to_be_visible()
    name = uid("deployer")
    value = _create_through_form(page, name, ["api", "read_repository"], role="Developer")
    expect(page.get_by_text("you won't be able to access it again")).to_be_visible()
    active = page.get_by_role("table", name="Active project access tokens", exact=True)
    expect(active.get_by_role("row").filter(has_text=name)).to_contain_text("Developer")

    # The value is in no page but that one: a reload shows the row, not the token.
    page.reload()
    expect(page.get_by_label("Your new token")).to_have_count(0)
    assert value not in page.content()
    expect(_row(page, name)).to_be_visible()

    # It is a real credential for exactly this project, held by the token's bot.
    response = _api(server, value, f"/projects/{project['id']}")
    assert response.status_code == 200
    me = _api(server, value, "/user").json()
    assert me["username"].startswith(f"project_{project['id']}_bot_")
    assert me["name"] == name
    (listed,) = [
        t for t in server.root("GET", f"/projects/{project['id']}/access_tokens").json() if t["name"] == name
    ]
    assert listed["scopes"] == ["api", "read_repository"]
    assert listed["access_level"] == DEVELOPER

    # Rotate from the table, behind its confirmation.
    _row(page, name).get_by_role("button", name="Rotate").click()
    dialog = page.get_by_role("dialog", name=f"Rotate “{name}”?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Rotate token").click()
    rotated = page.get_by_label("Your new token").input_value()
    assert rotated != value
    assert _api(server, value, "/user").status_code == 401
    assert _api(server, rotated, "/user").status_code == 200

    # Revoke it: the dialog can be cancelled first, and nothing happens.
    page.reload()
    _row(page, name).get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    assert _api(server, rotated, "/user").status_code == 200
    _row(page, name).get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog", name=f"Revoke “{name}”?").get_by_role("button", name="Revoke token").click()
    expect(page.get_by_role("status")).to_have_text(f"The token “{name}” has been revoked.")
    assert _api(server, rotated, "/user").status_code == 401
    inactive = page.get_by_role("table", name="Inactive project access tokens", exact=True)
    expect(inactive.get_by_role("row").filter(has_text=name)).to_have_count(2)  # rotated, then revoked
    expect(
        page.get_by_role("table", name="Active project access tokens", exact=True).get_by_text(name)
    ).to_have_count(0)


def test_group_token_reaches_the_groups_projects(server: LiveServer, page: Page, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/groups/{group['full_path']}/-/settings/access_tokens")
    value = _create_through_form(page, uid("ci"), ["read_api"], role="Reporter")
    assert _api(server, value, f"/projects/{project['id']}").status_code == 200
    # read_api allows reads only.
    response = requests.post(
        server.api(f"/projects/{project['id']}/issues"),
        headers={"PRIVATE-TOKEN": value},
        json={"title": "x"},
        timeout=30,
    )
    assert response.status_code == 403


def test_roles_offered_stop_at_the_viewers_own(server: LiveServer, page: Page, factory: Factory) -> None:
    maintainer = factory.user(password=PASSWORD)
    project = factory.project()
    factory.member("projects", project["id"], maintainer["id"], MAINTAINER)
    signed_in(page, maintainer["username"], PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/settings/access_tokens")
    _open_form(page)
    roles = page.get_by_role("group", name="Role").get_by_role("radio")
    labels = roles.evaluate_all("els => els.map((e) => e.labels[0].textContent.trim())")
    assert labels == ["Guest", "Planner", "Reporter", "Developer", "Maintainer"]
    expect(page.get_by_role("radio", name="Maintainer")).to_be_checked()
    # A forged form asking for Owner is refused by the domain, and leaves no bot behind.
    http = session_for(server, maintainer["username"], PASSWORD)
    url = f"{server.url}/{project['path_with_namespace']}/-/settings/access_tokens"
    before = server.root("GET", "/users", params={"exclude_humans": True, "per_page": 100}).headers["X-Total"]
    response = http.post(
        url,
        data={
            "authenticity_token": csrf_of(http.get(url, timeout=30).text),
            "name": "too-strong",
            "access_level": str(OWNER),
            "scopes": "api",
        },
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 400
    assert "Role can&#39;t be higher than your own role here" in response.text
    after = server.root("GET", "/users", params={"exclude_humans": True, "per_page": 100}).headers["X-Total"]
    assert before == after
    assert server.root("GET", f"/projects/{project['id']}/access_tokens").json() == []


def test_bad_input_re_renders_the_form_and_creates_nothing(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    project = factory.project()
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/settings/access_tokens")
    _open_form(page)
    page.get_by_label("Token name").fill("no-scopes")
    page.get_by_role("button", name="Create project access token").click()
    expect(page.get_by_role("alert").get_by_role("listitem")).to_have_text(["Select at least one scope"])
    expect(page.get_by_label("Token name")).to_have_value("no-scopes")  # what was typed stays
    http = session_for(server, "root", ROOT_PASSWORD)
    url = f"{server.url}/{project['path_with_namespace']}/-/settings/access_tokens"
    csrf = csrf_of(http.get(url, timeout=30).text)
    for data, message in (
        (
            {"name": "x", "scopes": "api", "expires_at": "2001-01-01"},
            "Expiration date can&#39;t be in the past",
        ),
        (
            {"name": "x", "scopes": "api", "expires_at": "9999-01-01"},
            "Expiration date can&#39;t be later than",
        ),
        ({"name": "x", "scopes": "api", "expires_at": "soon"}, "Expiration date isn&#39;t a valid date"),
        ({"name": "x", "scopes": "sudo"}, "Scopes: one of them can&#39;t be given to this token"),
        ({"name": "x", "scopes": "read_user"}, "Scopes: one of them can&#39;t be given to this token"),
        ({"name": "x", "scopes": "api", "access_level": "41"}, "Role: choose one of the roles listed"),
        ({"name": "x", "scopes": "api", "access_level": "owner"}, "Role: choose one of the roles listed"),
        ({"name": "", "scopes": "api"}, "Token name can&#39;t be blank"),
        ({"name": "x" * 300, "scopes": "api"}, "Token name is too long"),
    ):
        response = http.post(
            url, data={"authenticity_token": csrf, **data}, timeout=30, allow_redirects=False
        )
        assert response.status_code == 400, (data, response.status_code)
        assert message in response.text, (data, response.text[-2000:])
    assert server.root("GET", f"/projects/{project['id']}/access_tokens").json() == []


def test_only_those_who_manage_tokens_see_the_page(server: LiveServer, factory: Factory) -> None:
    developer = factory.user(password=PASSWORD)
    project = factory.project()
    group = factory.group()
    factory.member("projects", project["id"], developer["id"], DEVELOPER)
    factory.member("groups", group["id"], developer["id"], MAINTAINER)  # groups need an Owner
    http = session_for(server, developer["username"], PASSWORD)
    for path in (
        f"/{project['path_with_namespace']}/-/settings/access_tokens",
        f"/groups/{group['full_path']}/-/settings/access_tokens",
        "/no/such/-/settings/access_tokens",
    ):
        response = http.get(f"{server.url}{path}", timeout=30)
        assert response.status_code == 404, path
    # And the project page does not offer the Settings links to a Developer.
    response = http.get(f"{server.url}/{project['path_with_namespace']}", timeout=30)
    assert response.status_code == 200
    assert "/-/settings/access_tokens" not in response.text


def test_rotating_or_revoking_someone_elses_token_id_is_not_found(
    server: LiveServer, factory: Factory
) -> None:
    mine, theirs = factory.project(), factory.project()
    token = server.root(
        "POST", f"/projects/{theirs['id']}/access_tokens", json={"name": "theirs", "scopes": ["api"]}
    ).json()
    http = session_for(server, "root", ROOT_PASSWORD)
    url = f"{server.url}/{mine['path_with_namespace']}/-/settings/access_tokens"
    csrf = csrf_of(http.get(url, timeout=30).text)
    for action in ("rotate", "revoke"):
        response = http.post(f"{url}/{token['id']}/{action}", data={"authenticity_token": csrf}, timeout=30)
        assert response.status_code == 404
        assert "project Access Token not found." in response.text
    assert _api(server, token["token"], "/user").status_code == 200
