"""Settings > Deploy tokens of projects and groups, in Chromium, checked against the API and git.

Create a deploy token through the form and read its username and token once, clone with them,
revoke it through the confirmation dialog; the API agrees at every step. Only project Maintainers
and group Owners (and admins) manage them; group Maintainers may only look; others get no page.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, Page, expect

from tests.browser.pages import csrf_of, session_for, signed_in
from tests.support.git import Git, basic, info_refs, repo_url
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
SETTINGS = "/-/settings/deploy_tokens"
MAINTAINER, DEVELOPER, OWNER = 40, 30, 50


@pytest.fixture(autouse=True)
def _fresh_throttle(server: LiveServer) -> Iterator[None]:
    """Refused git credentials here must not ban 127.0.0.1 for the tests that follow."""
    server.runtime.auth_throttle.reset()
    yield
    server.runtime.auth_throttle.reset()


def _project_tokens(server: LiveServer, project_id: int) -> list[dict[str, Any]]:
    response = server.root("GET", f"/projects/{project_id}/deploy_tokens", params={"per_page": 100})
    assert response.status_code == 200, response.text
    return list(response.json())


def _group_tokens(server: LiveServer, group_id: int) -> list[dict[str, Any]]:
    response = server.root("GET", f"/groups/{group_id}/deploy_tokens", params={"per_page": 100})
    assert response.status_code == 200, response.text
    return list(response.json())


def _active_table(page: Page) -> Locator:
    return page.get_by_role("table", name=re.compile(r"^Active deploy tokens"))


def _inactive_table(page: Page) -> Locator:
    return page.get_by_role("table", name=re.compile(r"^Revoked and expired deploy tokens"))


def _new_token(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Your new deploy token")


def _new_username(page: Page) -> Locator:
    return page.get_by_role("textbox", name="Username", exact=True)


def _fill(
    page: Page, name: str, scopes: list[str], *, username: str | None = None, expires_at: str | None = None
) -> None:
    button = page.get_by_role("button", name="Add new token")  # the form sits behind it
    if button.get_attribute("aria-expanded") != "true":
        button.click()
    page.get_by_label("Name", exact=True).fill(name)
    if username is not None:
        page.get_by_label("Username (optional)").fill(username)
    if expires_at is not None:
        page.get_by_label("Expiration date (optional)").fill(expires_at)
    for scope in scopes:
        page.get_by_label(scope, exact=True).check()


def _submit(page: Page) -> int:
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Create deploy token").click()
    page.wait_for_load_state()
    return posted.value.status


def _maintained_project(
    factory: Factory, level: int = MAINTAINER, **attrs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A private project of root's and a person who holds ``level`` in it."""
    user = factory.user()
    project = factory.project(**attrs)
    factory.member("projects", project["id"], user["id"], level)
    return user, project


def test_project_token_is_shown_once_clones_and_is_revoked(
    server: LiveServer, page: Page, factory: Factory, tmp_path: Path
) -> None:
    user, project = _maintained_project(factory, initialize_with_readme=True)
    full_path = project["path_with_namespace"]
    signed_in(page, user["username"], PASSWORD)
    page.goto(f"/{full_path}")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Deploy tokens").click()
    expect(page).to_have_url(f"{server.url}/{full_path}{SETTINGS}")
    expect(page.get_by_role("heading", name="Deploy tokens", level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Deploy tokens")).to_have_attribute("aria-current", "page")
    page.get_by_role("button", name="Add new token").click()
    # Every deploy scope is offered with its description, and nothing else.
    boxes = page.get_by_role("group", name="Scopes").get_by_role("checkbox")
    expect(boxes).to_have_count(7)
    expect(page.get_by_label("read_repository", exact=True)).to_have_accessible_description(
        "Clone and fetch repositories over Git HTTP."
    )
    expect(page.get_by_label("api", exact=True)).to_have_count(0)

    name, username = uid("ci-"), uid("deployer-")
    expires = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=60)).isoformat()
    _fill(page, name, ["read_repository", "read_registry"], username=username, expires_at=expires)
    assert _submit(page) == 303
    expect(page).to_have_url(f"{server.url}/{full_path}{SETTINGS}")
    expect(_new_username(page)).to_have_value(username)
    value = _new_token(page).input_value()
    assert value.startswith("gldt-")
    expect(page.get_by_role("button", name="Copy deploy token")).to_be_visible()
    expect(page.get_by_role("button", name="Copy username")).to_be_visible()
    row = _active_table(page).get_by_role("row").filter(has_text=name)
    expect(row).to_contain_text(username)
    expect(row).to_contain_text("read_repository")
    expect(row).to_contain_text("read_registry")

    (listed,) = _project_tokens(server, project["id"])
    assert listed["name"] == name
    assert listed["username"] == username
    assert listed["scopes"] == ["read_repository", "read_registry"]
    assert listed["expires_at"] == f"{expires}T00:00:00.000Z"
    assert (listed["revoked"], listed["expired"]) == (False, False)
    assert "token" not in listed

    # The username and token clone the repository.
    git = Git(tmp_path)
    clone, _ = git.clone(repo_url(server, full_path, username, value))
    assert (clone / "README.md").exists()

    # Shown once: gone on reload, the row stays.
    page.reload()
    expect(_new_token(page)).to_have_count(0)
    assert value not in page.content()
    expect(row).to_be_visible()

    row.get_by_role("button", name="Revoke").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Revoke the deploy token {name}?")
    expect(dialog).to_contain_text(username)
    dialog.get_by_role("button", name="Revoke deploy token").click()
    expect(page.get_by_role("status")).to_have_text(f"Revoked the deploy token {name}.")
    expect(_active_table(page)).to_contain_text("This project has no active deploy tokens.")
    expect(_inactive_table(page).get_by_role("row").filter(has_text=name)).to_contain_text("Revoked")
    (listed,) = _project_tokens(server, project["id"])
    assert listed["revoked"] is True
    assert info_refs(server, full_path, headers=basic(username, value)).status_code == 401


def test_defaults_username_and_never_expires(server: LiveServer, page: Page, factory: Factory) -> None:
    user, project = _maintained_project(factory)
    signed_in(page, user["username"], PASSWORD)
    page.goto(f"/{project['path_with_namespace']}{SETTINGS}")
    name = uid("registry-")
    _fill(page, name, ["read_package_registry"])
    assert _submit(page) == 303
    (listed,) = _project_tokens(server, project["id"])
    assert listed["username"] == f"gitlab+deploy-token-{listed['id']}"
    assert listed["expires_at"] is None
    expect(_new_username(page)).to_have_value(listed["username"])
    row = _active_table(page).get_by_role("row").filter(has_text=name)
    expect(row.get_by_role("cell").nth(4)).to_have_text("Never")


def test_bad_input_re_renders_the_form_and_creates_nothing(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user, project = _maintained_project(factory)
    signed_in(page, user["username"], PASSWORD)
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    cases: list[tuple[str, list[str], dict[str, str], str]] = [
        ("", ["read_repository"], {}, "Name can't be blank"),
        (uid("n"), [], {}, "Select at least one scope"),
        (uid("n"), ["read_repository"], {"expires_at": yesterday}, "Expiration date can't be in the past"),
        (
            uid("n"),
            ["read_repository"],
            {"username": "no spaces allowed"},
            "Username can contain only letters, digits, '_', '-', '+', and '.'",
        ),
    ]
    for name, scopes, extra, message in cases:
        page.goto(f"/{project['path_with_namespace']}{SETTINGS}")
        _fill(page, name, scopes, **extra)
        assert _submit(page) == 400
        expect(page.get_by_role("alert").get_by_role("listitem")).to_have_text([message])
        expect(page.get_by_label("Name", exact=True)).to_have_value(name)
        for scope in scopes:
            expect(page.get_by_label(scope, exact=True)).to_be_checked()
        expect(_new_token(page)).to_have_count(0)
    assert _project_tokens(server, project["id"]) == []


def test_developers_and_strangers_get_no_page(server: LiveServer, page: Page, factory: Factory) -> None:
    developer, project = _maintained_project(factory, DEVELOPER)
    url = f"{server.url}/{project['path_with_namespace']}{SETTINGS}"
    made = server.root(
        "POST", f"/projects/{project['id']}/deploy_tokens", json={"name": "d", "scopes": ["read_repository"]}
    ).json()
    signed_in(page, developer["username"], PASSWORD)
    page.goto(f"/{project['path_with_namespace']}")
    expect(
        page.get_by_role("navigation", name="Project").get_by_role("link", name="Deploy tokens")
    ).to_have_count(0)
    response = page.goto(url)
    assert response is not None
    assert response.status == 403
    expect(page.get_by_role("heading", name="Access denied")).to_be_visible()
    expect(page.get_by_role("button", name="Create deploy token")).to_have_count(0)
    expect(page.get_by_role("button", name="Add new token")).to_have_count(0)

    http = session_for(server, developer["username"], PASSWORD)
    csrf = csrf_of(http.get(f"{server.url}/", timeout=30).text)
    response = http.post(
        url, data={"authenticity_token": csrf, "name": "x", "scopes": "read_repository"}, timeout=30
    )
    assert response.status_code == 403
    response = http.post(f"{url}/{made['id']}/revoke", data={"authenticity_token": csrf}, timeout=30)
    assert response.status_code == 403
    # Someone who cannot see the private project at all gets a 404 that tells nothing.
    stranger = factory.user()
    http = session_for(server, stranger["username"], PASSWORD)
    response = http.get(url, timeout=30)
    assert response.status_code == 404
    assert project["name"] not in response.text
    (listed,) = _project_tokens(server, project["id"])
    assert listed["revoked"] is False
    # A Maintainer of another project cannot reach this project's token through their own page.
    maintainer, other = _maintained_project(factory)
    http = session_for(server, maintainer["username"], PASSWORD)
    other_url = f"{server.url}/{other['path_with_namespace']}{SETTINGS}"
    csrf = csrf_of(http.get(other_url, timeout=30).text)
    response = http.post(f"{other_url}/{made['id']}/revoke", data={"authenticity_token": csrf}, timeout=30)
    assert response.status_code == 404
    assert _project_tokens(server, project["id"])[0]["revoked"] is False


def test_forms_without_their_csrf_token_are_refused(server: LiveServer, factory: Factory) -> None:
    user, project = _maintained_project(factory)
    url = f"{server.url}/{project['path_with_namespace']}{SETTINGS}"
    made = server.root(
        "POST", f"/projects/{project['id']}/deploy_tokens", json={"name": "d", "scopes": ["read_repository"]}
    ).json()
    http = session_for(server, user["username"], PASSWORD)
    csrf = csrf_of(http.get(url, timeout=30).text)
    form = {"name": uid("forged"), "scopes": "read_repository"}
    for data, headers in (
        (form, {}),
        (form | {"authenticity_token": "forged"}, {}),
        (form | {"authenticity_token": csrf}, {"Origin": "https://evil.example"}),
    ):
        for target in (url, f"{url}/{made['id']}/revoke"):
            response = http.post(target, data=data, headers=headers, timeout=30, allow_redirects=False)
            assert response.status_code == 403
            assert "The form could not be verified" in response.text
    (listed,) = _project_tokens(server, project["id"])
    assert listed["revoked"] is False
    response = http.post(url, data=form | {"authenticity_token": csrf}, timeout=30, allow_redirects=False)
    assert response.status_code == 303
    assert len(_project_tokens(server, project["id"])) == 2


def test_group_owner_creates_and_revokes_group_tokens(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner = factory.user()
    group = factory.group()
    factory.member("groups", group["id"], owner["id"], OWNER)
    url = f"/groups/{group['full_path']}{SETTINGS}"
    signed_in(page, owner["username"], PASSWORD)
    page.goto(f"/groups/{group['full_path']}")
    page.get_by_role("navigation", name="Group").get_by_role("link", name="Deploy tokens").click()
    expect(page).to_have_url(f"{server.url}{url}")
    name = uid("group-ci-")
    _fill(page, name, ["read_repository", "write_package_registry"])
    assert _submit(page) == 303
    value = _new_token(page).input_value()
    username = _new_username(page).input_value()
    assert value.startswith("gldt-")
    (listed,) = _group_tokens(server, group["id"])
    assert (listed["name"], listed["username"]) == (name, username)
    assert listed["scopes"] == ["read_repository", "write_package_registry"]
    page.reload()
    expect(_new_token(page)).to_have_count(0)

    # A group Maintainer sees the tokens but may not create or revoke them (an Owner's job).
    maintainer = factory.user()
    factory.member("groups", group["id"], maintainer["id"], MAINTAINER)
    http = session_for(server, maintainer["username"], PASSWORD)
    html = http.get(f"{server.url}{url}", timeout=30).text
    assert name in html
    assert "only Owners can create or revoke them" in html
    assert "Create deploy token" not in html
    assert "Revoke deploy token" not in html
    csrf = csrf_of(html)
    response = http.post(
        f"{server.url}{url}/{listed['id']}/revoke", data={"authenticity_token": csrf}, timeout=30
    )
    assert response.status_code == 403
    response = http.post(
        f"{server.url}{url}",
        data={"authenticity_token": csrf, "name": "x", "scopes": "read_repository"},
        timeout=30,
    )
    assert response.status_code == 403
    assert len(_group_tokens(server, group["id"])) == 1
    # A group Developer gets no page at all.
    developer = factory.user()
    factory.member("groups", group["id"], developer["id"], DEVELOPER)
    response = session_for(server, developer["username"], PASSWORD).get(f"{server.url}{url}", timeout=30)
    assert response.status_code == 403

    _active_table(page).get_by_role("row").filter(has_text=name).get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke deploy token").click()
    expect(page.get_by_role("status")).to_have_text(f"Revoked the deploy token {name}.")
    expect(_active_table(page)).to_contain_text("This group has no active deploy tokens.")
    (listed,) = _group_tokens(server, group["id"])
    assert listed["revoked"] is True


def test_admins_manage_any_projects_tokens(server: LiveServer, page: Page, factory: Factory) -> None:
    _owner, owner_token = factory.user_with_token()
    project = factory.project(token=owner_token)
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/{project['path_with_namespace']}{SETTINGS}")
    name = uid("admin-made-")
    _fill(page, name, ["read_registry"])
    assert _submit(page) == 303
    expect(_new_token(page)).to_have_value(re.compile(r"^gldt-"))
    (listed,) = _project_tokens(server, project["id"])
    assert listed["name"] == name


def test_anonymous_visitors_are_sent_to_sign_in(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    path = f"/{project['path_with_namespace']}{SETTINGS}"
    response = requests.get(f"{server.url}{path}", timeout=30, allow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/users/sign_in?redirect_to={path}"
