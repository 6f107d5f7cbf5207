"""A token may be created with ``expires_at`` equal to today, as on GitLab: it is then already
expired (a token dies at 00:00 UTC on its date). Earlier dates stay refused."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from tests.support.live import Factory, LiveServer, uid

PAST = {"message": {"expires_at": ["can't be before today"]}}


def _today(server: LiveServer) -> dt.date:
    """The server's today (its clock may be moved by other tests)."""
    return server.clock.now().date()


def _creation_paths(server: LiveServer, factory: Factory) -> list[tuple[str, str, dict[str, object]]]:
    """(path, caller token, extra body) for every REST route that creates an expiring token."""
    user, user_token = factory.user_with_token(["api"])
    project = factory.project()
    group = factory.group()
    group_account = server.root("POST", f"/groups/{group['id']}/service_accounts", json={}).json()
    project_account = server.root("POST", f"/projects/{project['id']}/service_accounts", json={}).json()
    instance_account = server.root("POST", "/service_accounts", json={}).json()
    root = server.root_token
    return [
        (f"/users/{user['id']}/personal_access_tokens", root, {"scopes": ["api"]}),
        ("/user/personal_access_tokens", user_token, {"scopes": ["k8s_proxy"]}),
        (f"/users/{user['id']}/impersonation_tokens", root, {"scopes": ["api"]}),
        (f"/projects/{project['id']}/access_tokens", root, {"scopes": ["api"], "access_level": 30}),
        (f"/groups/{group['id']}/access_tokens", root, {"scopes": ["api"], "access_level": 30}),
        (
            f"/groups/{group['id']}/service_accounts/{group_account['id']}/personal_access_tokens",
            root,
            {"scopes": ["api"]},
        ),
        (
            f"/projects/{project['id']}/service_accounts/{project_account['id']}/personal_access_tokens",
            root,
            {"scopes": ["api"]},
        ),
        (f"/users/{instance_account['id']}/personal_access_tokens", root, {"scopes": ["api"]}),
    ]


def test_today_is_accepted_and_the_token_is_born_expired(server: LiveServer, factory: Factory) -> None:
    today = _today(server).isoformat()
    for path, caller, extra in _creation_paths(server, factory):
        body = {"name": uid("today"), "expires_at": today} | extra
        response = server.request("POST", path, token=caller, json=body)
        assert response.status_code == 201, (path, response.text)
        created = response.json()
        assert created["expires_at"] == today, path
        assert created["active"] is False, path
        # Already expired: it authenticates nothing.
        assert server.request("GET", "/user", token=created["token"]).status_code == 401, path


def test_yesterday_stays_refused_everywhere(server: LiveServer, factory: Factory) -> None:
    yesterday = (_today(server) - dt.timedelta(days=1)).isoformat()
    for path, caller, extra in _creation_paths(server, factory):
        body = {"name": uid("late"), "expires_at": yesterday} | extra
        response = server.request("POST", path, token=caller, json=body)
        assert (response.status_code, response.json()) == (400, PAST), path


def test_python_gitlab_library_creates_tokens_expiring_today(server: LiveServer, factory: Factory) -> None:
    today = _today(server).isoformat()
    gl = server.gl()
    user = gl.users.get(factory.user()["id"])
    project = gl.projects.get(factory.project()["id"])
    group = gl.groups.get(factory.group()["id"])
    creations: list[Callable[[], object]] = [
        lambda: user.personal_access_tokens.create({"name": "p", "scopes": ["api"], "expires_at": today}),
        lambda: user.impersonationtokens.create({"name": "i", "scopes": ["api"], "expires_at": today}),
        lambda: project.access_tokens.create(
            {"name": "pr", "scopes": ["api"], "access_level": 30, "expires_at": today}
        ),
        lambda: group.access_tokens.create(
            {"name": "gr", "scopes": ["api"], "access_level": 30, "expires_at": today}
        ),
    ]
    for create in creations:
        token = create()
        assert getattr(token, "expires_at") == today  # noqa: B009
        assert getattr(token, "active") is False  # noqa: B009


def test_gitlab_cli_expires_at_today(server: LiveServer, factory: Factory) -> None:
    today = _today(server).isoformat()
    user_id = str(factory.user()["id"])
    project_id = str(factory.project()["id"])
    group_id = str(factory.group()["id"])
    commands = [
        ("user-personal-access-token", "create", "--user-id", user_id, "--scopes", "api"),
        ("user-impersonation-token", "create", "--user-id", user_id, "--scopes", "api"),
        ("project-access-token", "create", "--project-id", project_id, "--scopes", "api"),
        ("group-access-token", "create", "--group-id", group_id, "--scopes", "api"),
    ]
    for command in commands:
        result = server.gitlab_cli(
            "-o", "json", *command, "--name", uid("cli"), "--expires-at", today, token=server.root_token
        )
        assert result.returncode == 0, (command, result.stderr)
        assert json.loads(result.stdout)["expires_at"] == today, command
    yesterday = (_today(server) - dt.timedelta(days=1)).isoformat()
    refused = server.gitlab_cli(
        "user-personal-access-token",
        "create",
        "--user-id",
        user_id,
        "--scopes",
        "api",
        "--name",
        "late",
        "--expires-at",
        yesterday,
        token=server.root_token,
    )
    assert refused.returncode != 0
    assert "can't be before today" in refused.stderr
