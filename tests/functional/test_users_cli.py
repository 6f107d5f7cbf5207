"""The `gitlab` CLI (python-gitlab 8.6.0) against the users API: every value goes as a string."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.support.live import Factory, LiveServer, uid


def cli(server: LiveServer, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    return server.gitlab_cli(*args, token=token)


def cli_json(server: LiveServer, *args: str, token: str | None = None) -> Any:
    result = cli(server, "-o", "json", *args, token=token)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli_user_create_list_get_update_delete(server: LiveServer) -> None:
    name = uid("c")
    created = cli(
        server,
        "user",
        "create",
        "--username",
        name,
        "--email",
        f"{name}@example.com",
        "--name",
        "Cli User",
        "--password",
        "a-long-password-1",
        "--projects-limit",
        "5",
        "--external",
        "true",
    )
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(": ", 1) for line in created.stdout.strip().splitlines())
    user_id = lines["id"]
    assert lines["username"] == name

    listed = cli(server, "user", "list", "--search", name)
    assert listed.returncode == 0, listed.stderr
    assert f"id: {user_id}" in listed.stdout
    assert f"username: {name}" in listed.stdout

    fetched = cli_json(server, "user", "get", "--id", user_id)
    assert fetched["id"] == int(user_id)
    assert fetched["projects_limit"] == 5
    assert fetched["external"] is True
    assert fetched["email"] == f"{name}@example.com"

    updated = cli(server, "user", "update", "--id", user_id, "--bio", "from the cli", "--admin", "true")
    assert updated.returncode == 0, updated.stderr
    assert "bio: from the cli" in updated.stdout
    again = server.root("GET", f"/users/{user_id}").json()
    assert again["bio"] == "from the cli"
    assert again["is_admin"] is True

    deleted = cli(server, "user", "delete", "--id", user_id)
    assert deleted.returncode == 0, deleted.stderr
    gone = cli(server, "user", "get", "--id", user_id)
    assert gone.returncode == 1
    assert "404: 404 User Not Found" in gone.stderr


def test_cli_state_actions(server: LiveServer, factory: Factory) -> None:
    user_id = str(factory.user()["id"])
    for action, state in (
        ("block", "blocked"),
        ("unblock", "active"),
        ("ban", "banned"),
        ("unban", "active"),
        ("deactivate", "deactivated"),
        ("activate", "active"),
    ):
        result = cli(server, "user", action, "--id", user_id)
        assert result.returncode == 0, (action, result.stderr)
        assert server.root("GET", f"/users/{user_id}").json()["state"] == state, action
    refused = cli(server, "user", "unban", "--id", user_id)
    assert refused.returncode == 1
    assert "403: You cannot unban active users." in refused.stderr


def test_cli_errors_are_gitlabs(server: LiveServer, factory: Factory) -> None:
    existing = factory.user()
    taken = cli(
        server,
        "user",
        "create",
        "--username",
        existing["username"],
        "--email",
        f"{uid()}@example.com",
        "--name",
        "X",
        "--password",
        "a-long-password-1",
    )
    assert taken.returncode == 1
    assert "409: Username has already been taken" in taken.stderr
    _user, token = factory.user_with_token(["api"])
    forbidden = cli(server, "user", "block", "--id", str(existing["id"]), token=token)
    assert forbidden.returncode == 1
    assert "403: 403 Forbidden" in forbidden.stderr


def test_cli_list_filters(server: LiveServer, factory: Factory) -> None:
    tag = uid("l")
    plain = factory.user(username=f"{tag}a")
    blocked = factory.user(username=f"{tag}b")
    assert server.root("POST", f"/users/{blocked['id']}/block").json() is True
    listed = cli_json(server, "user", "list", "--search", tag, "--blocked", "true")
    assert [u["id"] for u in listed] == [blocked["id"]]
    # The CLI's global --order-by goes along as order_by; GitLab's default sort is descending.
    listed = cli_json(server, "--order-by", "username", "user", "list", "--search", tag)
    assert [u["id"] for u in listed] == [blocked["id"], plain["id"]]
