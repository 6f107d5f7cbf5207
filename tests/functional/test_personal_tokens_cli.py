"""Personal and impersonation tokens through the `gitlab` CLI (python-gitlab 8.6.0), as a subprocess."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from typing import Any

from tests.support.live import Factory, LiveServer, uid


def run_cli(server: LiveServer, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return server.gitlab_cli(*args, token=token)


def ok(server: LiveServer, token: str, *args: str) -> str:
    result = run_cli(server, token, *args)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def cli_json(server: LiveServer, token: str, *args: str) -> Any:
    return json.loads(ok(server, token, "-o", "json", *args))


def _in(days: int) -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


def test_personal_access_token_cli(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    uid_ = str(user["id"])
    created = cli_json(
        server,
        server.root_token,
        "user-personal-access-token",
        "create",
        "--user-id",
        uid_,
        "--name",
        "pat",
        "--scopes",
        "api,read_user",
        "--expires-at",
        _in(90),
    )
    assert (created["scopes"], created["expires_at"]) == (["api", "read_user"], _in(90))
    token, tid = created["token"], str(created["id"])
    extra = factory.token(user["id"], ["api"], name="extra")

    # list: the admin filters by user; the user sees their own.
    listed = cli_json(server, server.root_token, "personal-access-token", "list", "--user-id", uid_)
    assert {t["name"] for t in listed} == {"pat", "extra"}
    assert all(t["user_id"] == user["id"] for t in listed)
    mine = cli_json(server, token, "personal-access-token", "list")
    assert {t["name"] for t in mine} == {"pat", "extra"}

    # get: by id, and the token of the request with "self".
    got = cli_json(server, server.root_token, "personal-access-token", "get", "--id", tid)
    assert (got["id"], got["name"], got["active"]) == (created["id"], "pat", True)
    assert "token" not in got
    me = cli_json(server, token, "personal-access-token", "get", "--id", "self")
    assert me["id"] == created["id"]

    # rotate: prints every key, the new value included; the old value dies.
    rotated = ok(
        server, server.root_token, "personal-access-token", "rotate", "--id", tid, "--expires-at", _in(30)
    )
    new_id = re.search(r"^id: (\d+)$", rotated, re.M)
    new_token = re.search(r"^token: (glpat-\S+)$", rotated, re.M)
    assert new_id is not None
    assert new_token is not None
    assert f"expires-at: {_in(30)}" in rotated.splitlines()
    assert "name: pat" in rotated.splitlines()
    assert server.request("GET", "/user", token=token).status_code == 401
    assert server.request("GET", "/user", token=new_token.group(1)).json()["id"] == user["id"]

    # delete: by id as the admin, and the user's own.
    ok(server, server.root_token, "personal-access-token", "delete", "--id", new_id.group(1))
    assert server.request("GET", "/user", token=new_token.group(1)).status_code == 401
    extra_id = str(server.request("GET", "/personal_access_tokens/self", token=extra).json()["id"])
    ok(server, extra, "personal-access-token", "delete", "--id", extra_id)
    assert server.request("GET", "/user", token=extra).status_code == 401

    # Failures are the CLI's error line and exit 1.
    again = run_cli(server, server.root_token, "personal-access-token", "delete", "--id", extra_id)
    assert again.returncode == 1
    assert "400" in again.stderr
    unknown = run_cli(server, server.root_token, "personal-access-token", "get", "--id", "999999999")
    assert unknown.returncode == 1
    assert "404" in unknown.stderr


def test_user_impersonation_token_cli(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    uid_ = str(user["id"])
    name = uid("imp")
    created = cli_json(
        server,
        server.root_token,
        "user-impersonation-token",
        "create",
        "--user-id",
        uid_,
        "--name",
        name,
        "--scopes",
        "api,read_user",
        "--expires-at",
        _in(10),
    )
    assert (created["impersonation"], created["scopes"], created["expires_at"]) == (
        True,
        ["api", "read_user"],
        _in(10),
    )
    token, tid = created["token"], str(created["id"])
    assert server.request("GET", "/user", token=token).json()["id"] == user["id"]

    listed = cli_json(server, server.root_token, "user-impersonation-token", "list", "--user-id", uid_)
    assert [t["id"] for t in listed] == [created["id"]]
    assert listed[0]["impersonation"] is True
    got = cli_json(
        server, server.root_token, "user-impersonation-token", "get", "--user-id", uid_, "--id", tid
    )
    assert (got["name"], got["active"], got["revoked"]) == (name, True, False)
    assert "token" not in got

    ok(server, server.root_token, "user-impersonation-token", "delete", "--user-id", uid_, "--id", tid)
    assert server.request("GET", "/user", token=token).status_code == 401
    inactive = cli_json(
        server,
        server.root_token,
        "user-impersonation-token",
        "list",
        "--user-id",
        uid_,
        "--state",
        "inactive",
    )
    assert [(t["id"], t["revoked"]) for t in inactive] == [(created["id"], True)]
    assert (
        cli_json(
            server,
            server.root_token,
            "user-impersonation-token",
            "list",
            "--user-id",
            uid_,
            "--state",
            "active",
        )
        == []
    )

    # Only admins make or see impersonation tokens.
    _other, other_token = factory.user_with_token(["api"])
    refused = run_cli(server, other_token, "user-impersonation-token", "list", "--user-id", uid_)
    assert refused.returncode == 1
    assert "403" in refused.stderr
    unknown = run_cli(
        server, server.root_token, "user-impersonation-token", "get", "--user-id", uid_, "--id", "999999999"
    )
    assert unknown.returncode == 1
    assert "404" in unknown.stderr
