"""The `gitlab` CLI (python-gitlab 8.6.0) against groups, projects, members and namespaces.

The CLI sends every value as a string and URL-encodes ids once more (``ns%252Fp``); these tests
run it as a subprocess, as a user would.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.support.live import Factory, LiveServer, uid


def cli(
    server: LiveServer, *args: str, token: str | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    done = server.gitlab_cli(*args, token=token)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


def cli_json(server: LiveServer, *args: str, token: str | None = None) -> Any:
    return json.loads(cli(server, "-o", "json", *args, token=token).stdout)


def test_group_project_member_lifecycle(server: LiveServer, factory: Factory) -> None:
    path = uid("cli")
    group = cli_json(server, "group", "create", "--name", path, "--path", path)
    assert group["full_path"] == path
    project = cli_json(
        server, "project", "create", "--name", "Cli Project", "--namespace-id", str(group["id"])
    )
    assert project["path_with_namespace"] == f"{path}/cli-project"

    # `--id ns/p` goes out encoded twice and still names the project.
    got = cli_json(server, "project", "get", "--id", f"{path}/cli-project")
    assert got["id"] == project["id"]
    assert cli_json(server, "group", "get", "--id", path)["id"] == group["id"]

    user = factory.user()
    member = cli_json(
        server,
        "project-member",
        "create",
        "--project-id",
        str(project["id"]),
        "--user-id",
        str(user["id"]),
        "--access-level",
        "30",
    )
    assert (member["id"], member["access_level"]) == (user["id"], 30)
    listed = cli_json(server, "project-member", "list", "--project-id", f"{path}/cli-project")
    assert [m["id"] for m in listed] == [user["id"]]

    cli(
        server,
        "project-member",
        "update",
        "--project-id",
        str(project["id"]),
        "--id",
        str(user["id"]),
        "--access-level",
        "40",
    )
    every = cli_json(server, "project-member-all", "list", "--project-id", str(project["id"]))
    levels = {m["id"]: m["access_level"] for m in every}
    assert levels[user["id"]] == 40
    assert levels[1] == 50, "root inherits Owner from the group it created"

    cli(server, "project-member", "delete", "--project-id", str(project["id"]), "--id", str(user["id"]))
    assert server.root("GET", f"/projects/{project['id']}/members/{user['id']}").status_code == 404

    subgroup = cli_json(
        server, "group", "create", "--name", "sub", "--path", "sub", "--parent-id", str(group["id"])
    )
    subgroups = cli_json(server, "group-subgroup", "list", "--group-id", path)
    assert [g["id"] for g in subgroups] == [subgroup["id"]]

    cli(server, "project", "delete", "--id", str(project["id"]))
    assert server.root("GET", f"/projects/{project['id']}").status_code == 404
    cli(server, "group", "delete", "--id", str(group["id"]))
    assert server.root("GET", f"/groups/{group['id']}").status_code == 404
    assert server.root("GET", f"/groups/{subgroup['id']}").status_code == 404


def test_group_member_and_namespace_commands_as_a_user(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    path = uid("clin")
    group = cli_json(server, "group", "create", "--name", path, "--path", path, token=token)
    other = factory.user()
    cli_json(
        server,
        "group-member",
        "create",
        "--group-id",
        str(group["id"]),
        "--user-id",
        str(other["id"]),
        "--access-level",
        "20",
        token=token,
    )
    members = cli_json(server, "group-member", "list", "--group-id", path, token=token)
    assert sorted(m["id"] for m in members) == sorted([user["id"], other["id"]])
    namespaces = {n["full_path"] for n in cli_json(server, "namespace", "list", token=token)}
    assert namespaces == {user["username"], path}


def test_cli_errors_exit_non_zero_with_gitlab_messages(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token()
    project = factory.project(visibility="private")
    missing = cli(server, "project", "get", "--id", str(project["id"]), token=token, ok=False)
    assert missing.returncode == 1
    assert "404 Project Not Found" in missing.stderr
    bad = cli(server, "group", "create", "--name", "x", "--path", "../x", ok=False)
    assert bad.returncode == 1
    assert "400" in bad.stderr
    duplicate_owner = cli(
        server,
        "project-member",
        "create",
        "--project-id",
        str(project["id"]),
        "--user-id",
        "1",
        "--access-level",
        "30",
        ok=False,
    )
    assert duplicate_owner.returncode == 1
    assert "409" in duplicate_owner.stderr
