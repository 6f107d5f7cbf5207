"""Project and group access tokens: bots, levels, scopes, lifecycle, cleanup, atomicity."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess

import gitlab
import pytest
from sqlalchemy import func, select

from keycrew.automation.bots import delete_inactive_bots
from keycrew.context import Actor
from keycrew.identity.models import User
from keycrew.instance.models import InstanceSettings
from tests.support.live import Factory, LiveServer, uid


def _maintainer_project(server: LiveServer, factory: Factory, level: int = 40) -> tuple[dict, str, dict]:
    user, token = factory.user_with_token(["api"])
    project = factory.project()
    factory.member("projects", project["id"], user["id"], level)
    return user, token, project


def test_create_project_token_makes_a_bot_member(server: LiveServer, factory: Factory) -> None:
    _user, token, project = _maintainer_project(server, factory)
    gl = server.gl(token)
    created = gl.projects.get(project["id"]).access_tokens.create({"name": "ci bot", "scopes": ["api"]})
    assert created.access_level == 40
    assert created.scopes == ["api"]
    assert created.token.startswith("glpat-")
    assert set(created.attributes) >= {
        "id",
        "name",
        "description",
        "scopes",
        "user_id",
        "access_level",
        "expires_at",
        "created_at",
        "last_used_at",
        "active",
        "revoked",
        "token",
    }
    bot = server.gl().users.get(created.user_id)
    assert re.fullmatch(rf"project_{project['id']}_bot_[0-9a-f]{{32}}", bot.username)
    assert bot.email == f"{bot.username}@noreply.127.0.0.1"
    assert bot.name == "ci bot"
    assert bot.bot is True
    members = {m.id: m.access_level for m in gl.projects.get(project["id"]).members.list(get_all=True)}
    assert members[bot.id] == 40
    # The token authenticates as the bot.
    assert server.request("GET", "/user", token=created.token).json()["id"] == bot.id
    # Expiry defaults to the maximum lifetime.
    assert created.expires_at == (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=365)).isoformat()


def test_level_ceiling_and_permissions(server: LiveServer, factory: Factory) -> None:
    _user, token, project = _maintainer_project(server, factory, level=40)
    too_high = server.request(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        token=token,
        json={"name": "x", "scopes": ["api"], "access_level": 50},
    )
    assert too_high.status_code == 400
    assert too_high.json()["message"] == (
        "400 Bad request - Access level of the token contains permissions not held by the creating user"
    )
    _dev, dev_token, dev_project = _maintainer_project(server, factory, level=30)
    refused = server.request(
        "POST",
        f"/projects/{dev_project['id']}/access_tokens",
        token=dev_token,
        json={"name": "x", "scopes": ["api"]},
    )
    assert refused.status_code == 400
    assert "does not have permission to create project access token" in refused.json()["message"]
    # The owner may create an Owner token; the CLI sends the level as a string.
    ok = server.root(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        json={"name": "owner bot", "scopes": "api,read_repository", "access_level": "50"},
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["access_level"] == 50
    assert ok.json()["scopes"] == ["api", "read_repository"]


@pytest.mark.parametrize("scope", ["read_user", "sudo", "admin_mode", "nonsense"])
def test_bot_scopes_refused(server: LiveServer, factory: Factory, scope: str) -> None:
    project = factory.project()
    response = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "x", "scopes": ["api", scope]}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "scopes does not have a valid value"}


def test_bot_tokens_cannot_make_tokens(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    created = server.root(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        json={"name": "b", "scopes": ["api"], "access_level": 50},
    ).json()
    bot_token = created["token"]
    again = server.request(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        token=bot_token,
        json={"name": "child", "scopes": ["api"]},
    )
    assert again.status_code == 400
    own = server.request(
        "POST", "/user/personal_access_tokens", token=bot_token, json={"name": "k", "scopes": ["k8s_proxy"]}
    )
    assert own.status_code == 403


def test_bots_cannot_be_edited_or_added_elsewhere(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    other = factory.project()
    created = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "b", "scopes": ["api"]}
    ).json()
    bot_id = created["user_id"]
    edit = server.root("PUT", f"/projects/{project['id']}/members/{bot_id}", json={"access_level": 30})
    assert edit.status_code == 403
    remove = server.root("DELETE", f"/projects/{project['id']}/members/{bot_id}")
    assert remove.status_code == 403
    add = server.root(
        "POST", f"/projects/{other['id']}/members", json={"user_id": bot_id, "access_level": 30}
    )
    assert add.status_code in (400, 403)
    members = [m["id"] for m in server.root("GET", f"/projects/{other['id']}/members").json()]
    assert bot_id not in members


def test_group_bot_reaches_group_projects(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    gl = server.gl()
    created = gl.groups.get(group["id"]).access_tokens.create(
        {"name": "gbot", "scopes": ["read_api"], "access_level": 20}
    )
    bot = gl.users.get(created.user_id)
    assert re.fullmatch(rf"group_{group['id']}_bot_[0-9a-f]{{32}}", bot.username)
    seen = server.request("GET", f"/projects/{project['id']}", token=created.token)
    assert seen.status_code == 200
    foreign = factory.project()
    assert server.request("GET", f"/projects/{foreign['id']}", token=created.token).status_code == 404


def test_list_get_self_rotate_revoke(server: LiveServer, factory: Factory) -> None:
    _user, token, project = _maintainer_project(server, factory)
    p = server.gl(token).projects.get(project["id"])
    first = p.access_tokens.create({"name": "one", "scopes": ["api"], "access_level": 30})
    second = p.access_tokens.create({"name": "two", "scopes": ["read_api"], "description": "d"})
    listed = {t.id: t for t in p.access_tokens.list(get_all=True)}
    assert set(listed) == {first.id, second.id}
    assert listed[first.id].access_level == 30
    assert "token" not in listed[first.id].attributes
    assert p.access_tokens.get(second.id).description == "d"
    selfie = server.request("GET", f"/projects/{project['id']}/access_tokens/self", token=first.token)
    assert selfie.json()["id"] == first.id
    rotated = p.access_tokens.rotate(first.id)
    assert rotated["id"] != first.id
    assert rotated["access_level"] == 30
    assert rotated["expires_at"] == (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7)).isoformat()
    assert server.request("GET", "/user", token=first.token).status_code == 401
    assert server.request("GET", "/user", token=rotated["token"]).status_code == 200
    # Self-rotation with the token's own value.
    again = server.request(
        "POST", f"/projects/{project['id']}/access_tokens/self/rotate", token=rotated["token"]
    )
    assert again.status_code == 200, again.text
    p.access_tokens.delete(second.id)
    assert server.request("GET", "/user", token=second.token).status_code == 401
    inactive = [t.id for t in p.access_tokens.list(state="inactive", get_all=True)]
    assert second.id in inactive
    # The bot stays after revocation (history keeps its author).
    assert server.gl().users.get(second.user_id).id == second.user_id


def test_rotator_needs_the_bots_level(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    created = server.root(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        json={"name": "owner-level", "scopes": ["api"], "access_level": 50},
    ).json()
    maintainer, token = factory.user_with_token(["api"])
    factory.member("projects", project["id"], maintainer["id"], 40)
    response = server.request(
        "POST", f"/projects/{project['id']}/access_tokens/{created['id']}/rotate", token=token
    )
    assert response.status_code == 400
    assert "Not eligible to rotate token with access level higher than the user" in response.json()["message"]


def test_non_managers_get_401_on_lists(server: LiveServer, factory: Factory) -> None:
    _dev, dev_token, project = _maintainer_project(server, factory, level=30)
    response = server.request("GET", f"/projects/{project['id']}/access_tokens", token=dev_token)
    assert response.status_code == 401
    with pytest.raises(gitlab.GitlabAuthenticationError):
        server.gl(dev_token).projects.get(project["id"]).access_tokens.list()


def _cli(server: LiveServer, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return server.gitlab_cli(*args, token=token)


def test_cli_create_list_rotate_delete(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = str(project["id"])
    created = _cli(
        server,
        server.root_token,
        "-o",
        "json",
        "project-access-token",
        "create",
        "--project-id",
        pid,
        "--name",
        "ci",
        "--scopes",
        "api,read_repository",
        "--access-level",
        "40",
        "--expires-at",
        (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=60)).isoformat(),
    )
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    assert data["scopes"] == ["api", "read_repository"]
    listed = _cli(
        server,
        server.root_token,
        "project-access-token",
        "list",
        "--project-id",
        project["path_with_namespace"],
    )
    assert listed.returncode == 0, listed.stderr
    assert f"id: {data['id']}" in listed.stdout
    rotated = _cli(
        server,
        server.root_token,
        "project-access-token",
        "rotate",
        "--project-id",
        pid,
        "--id",
        str(data["id"]),
    )
    assert rotated.returncode == 0, rotated.stderr
    new_id = re.search(r"^id: (\d+)$", rotated.stdout, re.M)
    assert new_id is not None
    assert "token: glpat-" in rotated.stdout
    deleted = _cli(
        server,
        server.root_token,
        "project-access-token",
        "delete",
        "--project-id",
        pid,
        "--id",
        new_id.group(1),
    )
    assert deleted.returncode == 0, deleted.stderr


def _settings(server: LiveServer, **values: object) -> dict[str, object]:
    with server.runtime.sessions() as db, db.begin():
        row = db.get(InstanceSettings, 1)
        assert row is not None
        old = {k: getattr(row, k) for k in values}
        for key, value in values.items():
            setattr(row, key, value)
    return old


def test_cleanup_deletes_bots_after_the_delay_and_ghosts_their_records(
    server: LiveServer, factory: Factory
) -> None:
    project = factory.project()
    created = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "short lived", "scopes": ["api"]}
    ).json()
    issue = server.request(
        "POST", f"/projects/{project['id']}/issues", token=created["token"], json={"title": uid("by bot")}
    )
    assert issue.status_code == 201, issue.text
    iid = issue.json()["iid"]
    keeper = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "keeper", "scopes": ["api"]}
    ).json()
    assert (
        server.root("DELETE", f"/projects/{project['id']}/access_tokens/{created['id']}").status_code == 204
    )

    def cleanup() -> list[int]:
        with server.runtime.sessions() as db, db.begin():
            ctx = server.runtime.ctx(db, Actor.system())
            return delete_inactive_bots(ctx).deleted_bot_ids

    assert created["user_id"] not in cleanup()
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(days=31))
    deleted = cleanup()
    assert created["user_id"] in deleted
    assert keeper["user_id"] not in deleted
    server.clock.reset()
    assert server.root("GET", f"/users/{created['user_id']}").status_code == 404
    author = server.root("GET", f"/projects/{project['id']}/issues/{iid}").json()["author"]
    assert author["username"].startswith("ghost")


def test_zero_delay_deletes_the_bot_on_revoke(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    old = _settings(server, inactive_resource_access_tokens_delete_after_days=0)
    try:
        created = server.root(
            "POST", f"/projects/{project['id']}/access_tokens", json={"name": "gone", "scopes": ["api"]}
        ).json()
        assert (
            server.root("DELETE", f"/projects/{project['id']}/access_tokens/{created['id']}").status_code
            == 204
        )
        assert server.root("GET", f"/users/{created['user_id']}").status_code == 404
    finally:
        _settings(server, **old)


def test_deleting_the_project_deletes_its_bots(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    created = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "b", "scopes": ["api"]}
    ).json()
    assert server.root("DELETE", f"/projects/{project['id']}").status_code in (202, 204)
    assert server.root("GET", f"/users/{created['user_id']}").status_code == 404


def test_failure_after_the_bot_is_made_leaves_nothing(
    server: LiveServer, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = factory.project()

    def count_bots() -> int:
        with server.runtime.sessions() as db:
            return int(db.scalar(select(func.count()).select_from(User).where(User.user_type == 6)) or 0)

    before = count_bots()
    events_before = len(server.root("GET", "/audit_events", params={"per_page": 100}).json())
    import keycrew.actions.resource_tokens as resource_module
    from keycrew.errors import Invalid

    def failing_issue(*_args: object, **_kwargs: object) -> None:
        raise Invalid("token storage failed")

    monkeypatch.setattr(resource_module, "issue_audited", failing_issue)
    response = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "x", "scopes": ["api"]}
    )
    assert response.status_code == 400
    assert count_bots() == before
    events_after = len(server.root("GET", "/audit_events", params={"per_page": 100}).json())
    assert events_after == events_before


# -- group access tokens through python-gitlab and the gitlab CLI -----------------------------------


def test_group_tokens_list_get_rotate_delete(server: LiveServer, factory: Factory) -> None:
    owner, token = factory.user_with_token(["api"])
    group = server.gl(token).groups.get(factory.group(token=token)["id"])
    first = group.access_tokens.create(
        {"name": "one", "scopes": ["read_api"], "access_level": 30, "description": "first bot"}
    )
    second = group.access_tokens.create({"name": "two", "scopes": ["api"]})
    listed = {t.id: t for t in group.access_tokens.list(get_all=True)}
    assert set(listed) == {first.id, second.id}
    assert (listed[first.id].access_level, listed[second.id].access_level) == (30, 40)
    assert all("token" not in t.attributes for t in listed.values())
    got = group.access_tokens.get(first.id)
    assert (got.name, got.description, got.scopes, got.active) == ("one", "first bot", ["read_api"], True)
    rotated = group.access_tokens.rotate(first.id)
    assert rotated["id"] != first.id
    assert (rotated["name"], rotated["description"], rotated["scopes"], rotated["access_level"]) == (
        "one",
        "first bot",
        ["read_api"],
        30,
    )
    assert rotated["token"].startswith("glpat-")
    assert server.request("GET", "/user", token=first.token).status_code == 401
    assert server.request("GET", f"/groups/{group.id}", token=rotated["token"]).status_code == 200
    assert group.access_tokens.get(first.id).revoked is True
    group.access_tokens.delete(second.id)
    assert server.request("GET", "/user", token=second.token).status_code == 401
    assert second.id in [t.id for t in group.access_tokens.list(state="inactive", get_all=True)]
    assert [t.id for t in group.access_tokens.list(state="active", get_all=True)] == [rotated["id"]]
    # Revoking a revoked token is a 400, and an unknown id a 404.
    with pytest.raises(gitlab.GitlabDeleteError) as again:
        group.access_tokens.delete(second.id)
    assert again.value.response_code == 400
    with pytest.raises(gitlab.GitlabGetError) as missing:
        server.gl().groups.get(group.id).access_tokens.get(999999999)
    assert missing.value.response_code == 404
    assert owner


def test_group_token_cli_create_list_get_rotate_delete(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    gid = str(group["id"])
    expires = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=60)).isoformat()
    created = _cli(
        server,
        server.root_token,
        "-o",
        "json",
        "group-access-token",
        "create",
        "--group-id",
        gid,
        "--name",
        "cli-bot",
        "--scopes",
        "read_api,read_repository",
        "--access-level",
        "20",
        "--expires-at",
        expires,
    )
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    assert (data["scopes"], data["access_level"], data["expires_at"]) == (
        ["read_api", "read_repository"],
        20,
        expires,
    )
    assert data["token"].startswith("glpat-")
    # The CLI takes the group's full path as well as its id.
    listed = _cli(
        server,
        server.root_token,
        "-o",
        "json",
        "group-access-token",
        "list",
        "--group-id",
        group["full_path"],
    )
    assert listed.returncode == 0, listed.stderr
    assert [t["id"] for t in json.loads(listed.stdout)] == [data["id"]]
    got = _cli(
        server,
        server.root_token,
        "-o",
        "json",
        "group-access-token",
        "get",
        "--group-id",
        gid,
        "--id",
        str(data["id"]),
    )
    assert got.returncode == 0, got.stderr
    shown = json.loads(got.stdout)
    assert (shown["name"], shown["access_level"]) == ("cli-bot", 20)
    assert "token" not in shown
    rotated = _cli(
        server, server.root_token, "group-access-token", "rotate", "--group-id", gid, "--id", str(data["id"])
    )
    assert rotated.returncode == 0, rotated.stderr
    new_id = re.search(r"^id: (\d+)$", rotated.stdout, re.M)
    assert new_id is not None
    assert "token: glpat-" in rotated.stdout
    assert server.request("GET", "/user", token=data["token"]).status_code == 401
    deleted = _cli(
        server, server.root_token, "group-access-token", "delete", "--group-id", gid, "--id", new_id.group(1)
    )
    assert deleted.returncode == 0, deleted.stderr
    active = server.root("GET", f"/groups/{gid}/access_tokens", params={"state": "active"}).json()
    assert active == []
    # A failure is the CLI's error line and exit 1.
    unknown = _cli(
        server, server.root_token, "group-access-token", "get", "--group-id", gid, "--id", "999999999"
    )
    assert unknown.returncode == 1
    assert "404" in unknown.stderr


# -- reuse detection, expiry, description ----------------------------------------------------------


def test_reused_project_token_at_the_rotate_endpoint_revokes_its_family(
    server: LiveServer, factory: Factory
) -> None:
    _user, token, project = _maintainer_project(server, factory)
    tokens = server.gl(token).projects.get(project["id"]).access_tokens
    first = tokens.create({"name": "family", "scopes": ["api"]})
    second = tokens.rotate(first.id)
    third = tokens.rotate(second["id"])
    assert server.request("GET", "/user", token=third["token"]).status_code == 200
    # The leaked first value comes back to a rotate endpoint, by id.
    replay = server.request(
        "POST", f"/projects/{project['id']}/access_tokens/{first.id}/rotate", token=first.token
    )
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_token"
    assert server.request("GET", "/user", token=third["token"]).status_code == 401
    assert tokens.get(third["id"]).revoked is True
    assert [t.id for t in tokens.list(state="active", get_all=True)] == []
    events = server.root("GET", "/audit_events", params={"per_page": 100}).json()
    reuse = [
        e
        for e in events
        if e.get("event_name") == "token.revoked"
        and e["details"].get("target_id") == third["id"]
        and "reused" in str(e.get("details", {}))
    ]
    assert reuse, "the family revocation is audited"
    assert reuse[0]["details"].get("ip_address") == "127.0.0.1"
    # A revoked token that is not at a rotate endpoint only gets its 401.
    other = tokens.create({"name": "other", "scopes": ["api"]})
    successor = tokens.rotate(other.id)
    assert server.request("GET", f"/projects/{project['id']}", token=other.token).status_code == 401
    assert server.request("GET", "/user", token=successor["token"]).status_code == 200


def test_past_expiry_refused(server: LiveServer, factory: Factory) -> None:
    # Today is accepted, as on GitLab (tests/functional/test_token_expiry_today.py).
    _user, token, project = _maintainer_project(server, factory)
    expires = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    for kind, path in (
        ("project", f"/projects/{project['id']}"),
        ("group", f"/groups/{factory.group()['id']}"),
    ):
        response = server.request(
            "POST",
            f"{path}/access_tokens",
            token=token if kind == "project" else server.root_token,
            json={"name": "x", "scopes": ["api"], "expires_at": expires},
        )
        assert response.status_code == 400, (kind, response.text)
        assert "expires_at" in response.json()["message"]
    names = [t["name"] for t in server.root("GET", f"/projects/{project['id']}/access_tokens").json()]
    assert names == []


def test_rotation_keeps_name_description_scopes_and_level(server: LiveServer, factory: Factory) -> None:
    _user, token, project = _maintainer_project(server, factory)
    tokens = server.gl(token).projects.get(project["id"]).access_tokens
    created = tokens.create(
        {
            "name": "described",
            "scopes": ["read_api", "self_rotate"],
            "access_level": 20,
            "description": "nightly",
        }
    )
    rotated = tokens.rotate(created.id)
    assert (rotated["name"], rotated["description"], rotated["scopes"], rotated["access_level"]) == (
        "described",
        "nightly",
        ["read_api", "self_rotate"],
        20,
    )
    assert tokens.get(rotated["id"]).description == "nightly"
    # Rotating itself (self_rotate) keeps it too.
    again = server.request(
        "POST", f"/projects/{project['id']}/access_tokens/self/rotate", token=rotated["token"]
    )
    assert again.status_code == 200, again.text
    assert (again.json()["description"], again.json()["scopes"]) == ("nightly", ["read_api", "self_rotate"])
