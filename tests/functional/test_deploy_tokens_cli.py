"""Deploy tokens through the `gitlab` CLI (python-gitlab 8.6.0), as a subprocess."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from typing import Any

from keycrew.tokens.secrets import has_valid_checksum
from tests.support.live import Factory, LiveServer, uid


def run_cli(server: LiveServer, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return server.gitlab_cli(*args, token=token)


def fields(output: str) -> dict[str, str]:
    """The `key: value` lines `gitlab -v` prints for one object."""
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def blocks(output: str) -> list[dict[str, str]]:
    """The objects `gitlab -v ... list` prints, one block of `key: value` lines each."""
    return [fields(block) for block in output.strip().split("\n\n") if block.strip()]


def cli_json(server: LiveServer, token: str, *args: str) -> Any:
    result = run_cli(server, token, "-o", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_project_deploy_tokens_with_the_cli(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = str(project["id"])
    root = server.root_token
    created = run_cli(
        server,
        root,
        "-v",
        "project-deploy-token",
        "create",
        "--project-id",
        pid,
        "--name",
        "d1",
        "--scopes",
        "read_registry",
        "--username",
        "dep",
        "--expires-at",
        "2030-01-01",
    )
    assert created.returncode == 0, created.stderr
    made = fields(created.stdout)
    assert (made["name"], made["username"], made["expires-at"]) == ("d1", "dep", "2030-01-01T00:00:00.000Z")
    assert made["scopes"] == "['read_registry']"
    assert made["token"].startswith("gldt-")
    assert has_valid_checksum(made["token"])
    token_id = made["id"]

    # Two scopes as one comma string; no username: GitLab's default one.
    second = cli_json(
        server,
        root,
        "project-deploy-token",
        "create",
        "--project-id",
        pid,
        "--name",
        "d2",
        "--scopes",
        "read_repository,read_package_registry",
    )
    assert second["scopes"] == ["read_repository", "read_package_registry"]
    assert second["username"] == f"gitlab+deploy-token-{second['id']}"
    assert second["expires_at"] is None

    listed = run_cli(server, root, "-v", "project-deploy-token", "list", "--project-id", pid)
    assert listed.returncode == 0, listed.stderr
    rows = blocks(listed.stdout)
    assert [(r["id"], r["name"]) for r in rows] == [(token_id, "d1"), (str(second["id"]), "d2")]
    assert all("token" not in r for r in rows)

    everything = run_cli(server, root, "-v", "deploy-token", "list", "--get-all")
    assert everything.returncode == 0, everything.stderr
    assert {token_id, str(second["id"])} <= {r["id"] for r in blocks(everything.stdout)}

    deleted = run_cli(server, root, "project-deploy-token", "delete", "--project-id", pid, "--id", token_id)
    assert deleted.returncode == 0, deleted.stderr
    after = cli_json(server, root, "project-deploy-token", "list", "--project-id", pid)
    assert [t["id"] for t in after] == [second["id"]]
    again = run_cli(server, root, "project-deploy-token", "delete", "--project-id", pid, "--id", token_id)
    assert again.returncode != 0
    assert "404" in again.stderr


def test_group_deploy_tokens_with_the_cli(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    gid = str(group["id"])
    root = server.root_token
    expires = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=90)).isoformat()
    created = run_cli(
        server,
        root,
        "-v",
        "group-deploy-token",
        "create",
        "--group-id",
        gid,
        "--name",
        "g1",
        "--scopes",
        "read_registry,write_registry",
        "--expires-at",
        expires,
    )
    assert created.returncode == 0, created.stderr
    made = fields(created.stdout)
    assert made["username"] == f"gitlab+deploy-token-{made['id']}"
    assert made["expires-at"] == f"{expires}T00:00:00.000Z"
    assert made["scopes"] == "['read_registry', 'write_registry']"

    listed = run_cli(server, root, "-v", "group-deploy-token", "list", "--group-id", gid)
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in blocks(listed.stdout)] == [made["id"]]

    deleted = run_cli(server, root, "group-deploy-token", "delete", "--group-id", gid, "--id", made["id"])
    assert deleted.returncode == 0, deleted.stderr
    assert cli_json(server, root, "group-deploy-token", "list", "--group-id", gid) == []


def test_cli_errors_for_bad_scopes_and_missing_rights(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = str(project["id"])
    bad = run_cli(
        server,
        server.root_token,
        "project-deploy-token",
        "create",
        "--project-id",
        pid,
        "--name",
        uid("d"),
        "--scopes",
        "api",
    )
    assert bad.returncode != 0
    assert "scopes does not have a valid value" in bad.stderr

    user, token = factory.user_with_token(["api"])
    factory.member("projects", project["id"], user["id"], 30)
    refused = run_cli(server, token, "project-deploy-token", "list", "--project-id", pid)
    assert refused.returncode != 0
    assert re.search(r"403", refused.stderr)
    admin_only = run_cli(server, token, "deploy-token", "list")
    assert admin_only.returncode != 0
    assert "403" in admin_only.stderr
    assert cli_json(server, server.root_token, "project-deploy-token", "list", "--project-id", pid) == []
