"""Service accounts through the `gitlab` CLI (python-gitlab 8.6.0), as a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.support.live import Factory, LiveServer, uid


def run_cli(server: LiveServer, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return server.gitlab_cli(*args, token=token)


def ok(server: LiveServer, token: str, *args: str) -> str:
    result = run_cli(server, token, *args)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def cli_json(server: LiveServer, token: str, *args: str) -> Any:
    return json.loads(ok(server, token, "-o", "json", *args))


@pytest.mark.usefixtures("group_owners_create_service_accounts")
def test_group_service_account_cli(server: LiveServer, factory: Factory) -> None:
    owner, token = factory.user_with_token(["api"])
    gid = str(factory.group(token=token)["id"])
    username = uid("bot")
    created = cli_json(
        server,
        token,
        "group-service-account",
        "create",
        "--group-id",
        gid,
        "--name",
        "bot1",
        "--username",
        username,
    )
    assert (created["name"], created["username"]) == ("bot1", username)
    said = str(created["id"])
    listed = cli_json(server, token, "group-service-account", "list", "--group-id", gid)
    assert [a["id"] for a in listed] == [created["id"]]

    pat = cli_json(
        server,
        token,
        "group-service-account-access-token",
        "create",
        "--group-id",
        gid,
        "--user-id",
        said,
        "--name",
        "t",
        "--scopes",
        "api,read_repository",
    )
    assert pat["token"].startswith("glpat-")
    assert pat["scopes"] == ["api", "read_repository"]
    assert server.request("GET", "/user", token=pat["token"]).json()["username"] == username
    tokens = cli_json(
        server, token, "group-service-account-access-token", "list", "--group-id", gid, "--user-id", said
    )
    assert [t["id"] for t in tokens] == [pat["id"]]

    # rotate prints every key of the new token, the value included.
    rotated = ok(
        server,
        token,
        "group-service-account-access-token",
        "rotate",
        "--group-id",
        gid,
        "--user-id",
        said,
        "--id",
        str(pat["id"]),
    )
    new_value = re.search(r"^token: (\S+)$", rotated, re.MULTILINE)
    new_id = re.search(r"^id: (\d+)$", rotated, re.MULTILINE)
    assert new_value is not None, rotated
    assert new_id is not None, rotated
    assert int(new_id.group(1)) != pat["id"]
    assert server.request("GET", "/user", token=pat["token"]).status_code == 401
    assert server.request("GET", "/user", token=new_value.group(1)).status_code == 200

    ok(
        server,
        token,
        "group-service-account-access-token",
        "delete",
        "--group-id",
        gid,
        "--user-id",
        said,
        "--id",
        new_id.group(1),
    )
    assert server.request("GET", "/user", token=new_value.group(1)).status_code == 401

    updated = ok(
        server, token, "group-service-account", "update", "--group-id", gid, "--id", said, "--name", "renamed"
    )
    assert "renamed" in updated
    ok(server, token, "group-service-account", "delete", "--group-id", gid, "--id", said)
    assert cli_json(server, token, "group-service-account", "list", "--group-id", gid) == []
    assert server.root("GET", f"/users/{said}").status_code == 404
    # A developer of the group is refused, and the CLI says so.
    developer, dev_token = factory.user_with_token(["api"])
    factory.member("groups", int(gid), developer["id"], 30)
    refused = run_cli(server, dev_token, "group-service-account", "create", "--group-id", gid)
    assert refused.returncode == 1
    assert "403" in refused.stderr
    assert owner["id"]


def test_instance_service_account_cli(server: LiveServer) -> None:
    root = server.root_token
    created = cli_json(server, root, "service-account", "create")
    assert created["username"].startswith("service_account_")
    assert created["name"] == "Service account user"
    named = cli_json(server, root, "service-account", "create", "--name", "ci", "--username", uid("sa"))
    listed = cli_json(
        server, root, "service-account", "list", "--order-by", "username", "--sort", "asc", "--get-all"
    )
    usernames = [a["username"] for a in listed]
    assert {created["username"], named["username"]} <= set(usernames)
    assert [u.lower() for u in usernames] == sorted(u.lower() for u in usernames)
    ok(server, root, "service-account", "update", "--id", str(named["id"]), "--name", "ci-renamed")
    assert server.root("GET", f"/users/{named['id']}").json()["name"] == "ci-renamed"
    # Tokens of instance accounts come from the users API.
    pat = cli_json(
        server,
        root,
        "user-personal-access-token",
        "create",
        "--user-id",
        str(created["id"]),
        "--name",
        "t",
        "--scopes",
        "read_api",
    )
    assert server.request("GET", "/user", token=pat["token"]).json()["id"] == created["id"]


def test_project_service_account_cli(server: LiveServer, factory: Factory) -> None:
    maintainer, token = factory.user_with_token(["api"])
    project = factory.project()
    factory.member("projects", project["id"], maintainer["id"], 40)
    pid = str(project["id"])
    created = cli_json(server, token, "project-service-account", "create", "--project-id", pid)
    assert created["username"].startswith(f"service_account_project_{pid}_")
    said = str(created["id"])
    assert [
        a["id"] for a in cli_json(server, token, "project-service-account", "list", "--project-id", pid)
    ] == [created["id"]]
    # Beyond the maximum lifetime: refused, nothing written.
    too_late = run_cli(
        server,
        token,
        "project-service-account-access-token",
        "create",
        "--project-id",
        pid,
        "--user-id",
        said,
        "--name",
        "t",
        "--scopes",
        "api",
        "--expires-at",
        "2099-01-01",
    )
    assert too_late.returncode == 1
    assert "400" in too_late.stderr
    pat = cli_json(
        server,
        token,
        "project-service-account-access-token",
        "create",
        "--project-id",
        pid,
        "--user-id",
        said,
        "--name",
        "t",
        "--scopes",
        "api",
    )
    rotated = ok(
        server,
        token,
        "project-service-account-access-token",
        "rotate",
        "--project-id",
        pid,
        "--user-id",
        said,
        "--id",
        str(pat["id"]),
    )
    assert "token: glpat-" in rotated
    tokens = cli_json(
        server, token, "project-service-account-access-token", "list", "--project-id", pid, "--user-id", said
    )
    assert sorted(t["active"] for t in tokens) == [False, True]
    assert len(tokens) == 2  # the refused create wrote nothing
    ok(server, token, "project-service-account", "delete", "--project-id", pid, "--id", said)
    assert server.root("GET", f"/users/{said}").status_code == 404
