"""Admin Mode (the application setting ``admin_mode``): with it on, an admin's API token acts with
admin powers only if it has the ``admin_mode`` scope; without it the admin is treated as any other
user (admin-only routes 403, admin-only fields gone, others' private things 404, no Sudo). Git is
not gated. With the setting off everything is as before."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import gitlab
import pytest

from tests.support.live import Factory, LiveServer, start_server


@pytest.fixture
def admin_mode(server: LiveServer) -> Iterator[None]:
    """Admin Mode on for the test (root's token has the admin_mode scope), off again afterwards."""
    response = server.root("PUT", "/application/settings", json={"admin_mode": True})
    assert response.status_code == 200, response.text
    assert response.json()["admin_mode"] is True
    yield
    response = server.root("PUT", "/application/settings", json={"admin_mode": False})
    assert response.status_code == 200, response.text


@pytest.fixture
def admin(factory: Factory) -> dict[str, Any]:
    user = factory.user(admin=True)
    return {
        "user": user,
        "plain": factory.token(user["id"], scopes=["api", "sudo"]),
        "elevated": factory.token(user["id"], scopes=["api", "sudo", "admin_mode"]),
    }


def _private_project_of_someone(factory: Factory) -> dict[str, Any]:
    _, token = factory.user_with_token()
    return factory.project(token=token, visibility="private")


def test_off_by_default_admin_tokens_act_as_admins(
    server: LiveServer, factory: Factory, admin: dict[str, Any]
) -> None:
    assert server.gl().settings.get().admin_mode is False
    project = _private_project_of_someone(factory)
    assert server.request("GET", "/application/settings", token=admin["plain"]).status_code == 200
    assert server.request("GET", f"/projects/{project['id']}", token=admin["plain"]).status_code == 200


def test_without_the_scope_an_admin_has_no_admin_powers(
    server: LiveServer, factory: Factory, admin: dict[str, Any], admin_mode: None
) -> None:
    plain = admin["plain"]
    project = _private_project_of_someone(factory)
    forbidden = server.request("GET", "/application/settings", token=plain)
    assert forbidden.status_code == 403
    assert forbidden.json() == {"message": "403 Forbidden"}
    assert server.request("POST", "/users", token=plain, json={"username": "x"}).status_code == 403
    assert server.request("GET", "/license", token=plain).status_code == 403
    # Others' private things are not there, as for anyone else.
    assert server.request("GET", f"/projects/{project['id']}", token=plain).status_code == 404
    # Admin-only fields disappear.
    users = server.request("GET", f"/users?username={admin['user']['username']}", token=plain).json()
    assert users
    assert "is_admin" not in users[0]
    assert "email" not in users[0]
    # Sudo needs admin powers too.
    sudo = server.request("GET", "/user", token=plain, headers={"Sudo": "root"})
    assert sudo.status_code == 403
    assert sudo.json() == {"message": "403 Forbidden - Must be admin to use sudo"}
    # The user is still an admin: their own token may be asked about.
    assert server.request("GET", "/user", token=plain).json()["id"] == admin["user"]["id"]


def test_an_admin_mode_token_keeps_every_power(
    server: LiveServer, factory: Factory, admin: dict[str, Any], admin_mode: None
) -> None:
    elevated = admin["elevated"]
    project = _private_project_of_someone(factory)
    assert server.request("GET", "/application/settings", token=elevated).status_code == 200
    assert server.request("GET", f"/projects/{project['id']}", token=elevated).status_code == 200
    users = server.request("GET", f"/users?username={admin['user']['username']}", token=elevated).json()
    assert users[0]["is_admin"] is True
    assert server.request("GET", "/user", token=elevated, headers={"Sudo": "root"}).json()["id"] == 1
    gl = server.gl(elevated)
    gl.auth()
    assert gl.settings.get().admin_mode is True


def test_git_is_not_gated(
    server: LiveServer, factory: Factory, admin: dict[str, Any], admin_mode: None
) -> None:
    project = _private_project_of_someone(factory)
    url = project["http_url_to_repo"].replace("://", f"://anyone:{admin['plain']}@")
    listed = subprocess.run(
        ["git", "ls-remote", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin", "HOME": str(server.data_dir)},
    )
    assert listed.returncode == 0, listed.stderr


def test_turning_it_off_restores_everything(server: LiveServer, admin: dict[str, Any]) -> None:
    plain = admin["plain"]
    assert server.root("PUT", "/application/settings", json={"admin_mode": True}).status_code == 200
    try:
        assert server.request("GET", "/application/settings", token=plain).status_code == 403
        # Through python-gitlab, as GitLab's docs tell: the admin_mode token turns it off.
        settings = server.gl().settings.get()
        settings.admin_mode = False
        settings.save()
        assert server.request("GET", "/application/settings", token=plain).status_code == 200
    finally:
        server.root("PUT", "/application/settings", json={"admin_mode": False})


def test_a_plain_admin_token_may_switch_it_on_but_then_not_off(
    server: LiveServer, admin: dict[str, Any]
) -> None:
    plain = admin["plain"]
    try:
        gl = server.gl(plain)
        settings = gl.settings.get()
        settings.admin_mode = True
        settings.save()
        with pytest.raises(gitlab.GitlabGetError) as refused:
            gl.settings.get()
        assert refused.value.response_code == 403
    finally:
        server.root("PUT", "/application/settings", json={"admin_mode": False})


@pytest.fixture
def second_node(server: LiveServer) -> Iterator[LiveServer]:
    yield from start_server(server.backend, server.data_dir, url=server.runtime.settings.sqlalchemy_url)


def test_the_other_node_follows_within_a_second(
    server: LiveServer, second_node: LiveServer, admin: dict[str, Any]
) -> None:
    plain = admin["plain"]

    def status() -> int:
        return second_node.request("GET", "/application/settings", token=plain).status_code

    def wait_for(expected: int) -> float:
        start = time.monotonic()
        while time.monotonic() - start < 1.5:
            if status() == expected:
                return time.monotonic() - start
            time.sleep(0.02)
        raise AssertionError(f"the second node still answers {status()}")

    assert status() == 200
    try:
        assert server.root("PUT", "/application/settings", json={"admin_mode": True}).status_code == 200
        assert server.request("GET", "/application/settings", token=plain).status_code == 403  # at once here
        assert wait_for(403) <= 1.0
    finally:
        server.root("PUT", "/application/settings", json={"admin_mode": False})
    assert wait_for(200) <= 1.0
