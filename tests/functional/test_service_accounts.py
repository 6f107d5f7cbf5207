"""Service accounts of the instance, groups and projects, and their personal access tokens."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gitlab
import pytest
from sqlalchemy import select

from keycrew.audit.models import AuditEvent
from keycrew.context import Actor
from keycrew.instance.settings import instance_settings
from tests.support.live import Factory, LiveServer, uid

HEX32 = "[0-9a-f]{32}"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@contextmanager
def _sa_tokens_may_live_forever(server: LiveServer) -> Iterator[None]:
    """Turn service_access_tokens_expiration_enforced off for the block, then back on."""

    def set_enforced(value: bool) -> None:
        with server.runtime.sessions() as db, db.begin():
            instance_settings(
                server.runtime.ctx(db, Actor.system())
            ).service_access_tokens_expiration_enforced = value

    set_enforced(False)
    try:
        yield
    finally:
        set_enforced(True)


def _group_owner(factory: Factory) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A non-admin user with a token and a top-level group they own (they created it)."""
    user, token = factory.user_with_token(["api"])
    group = factory.group(token=token)
    return user, token, group


# -- instance -------------------------------------------------------------------------------------


def test_instance_account_generated_identity(server: LiveServer, gl: gitlab.Gitlab) -> None:
    account = gl.service_accounts.create({})
    assert re.fullmatch(f"service_account_{HEX32}", account.username)
    assert account.name == "Service account user"
    host = server.url.split("//", 1)[1].split(":", 1)[0]
    assert account.email == f"{account.username}@noreply.{host}"
    assert set(account.attributes) >= {"id", "username", "name", "email"}
    assert "group_id" not in account.attributes
    user = gl.users.get(account.id)
    assert user.bot is True
    assert user.external is True
    assert user.username == account.username
    # Listed (default order: id descending), and orderable by username.
    listed = gl.service_accounts.list(get_all=True)
    ids = [a.id for a in listed]
    assert account.id in ids
    assert ids == sorted(ids, reverse=True)
    by_name = gl.service_accounts.list(order_by="username", sort="asc", get_all=True)
    names = [a.username.lower() for a in by_name]
    assert names == sorted(names)
    # Only service accounts are listed (root, id 1, is not one).
    assert 1 not in ids


def test_instance_account_custom_identity_and_conflicts(server: LiveServer, gl: gitlab.Gitlab) -> None:
    name = uid("sa")
    account = gl.service_accounts.create({"name": "CI bot", "username": name, "email": f"{name}@example.com"})
    assert (account.username, account.name, account.email) == (name, "CI bot", f"{name}@example.com")
    # The e-mail alone defaults to <username>@noreply.<host>.
    other = uid("sa")
    second = gl.service_accounts.create({"username": other})
    assert second.email.startswith(f"{other}@noreply.")
    again = server.root("POST", "/service_accounts", json={"username": name, "email": f"{name}@example.com"})
    assert again.status_code == 400
    message = again.json()["message"]
    assert "Email has already been taken" in message
    assert "Username has already been taken" in message
    bad = server.root("POST", "/service_accounts", json={"email": "not-an-email"})
    assert bad.status_code == 400
    assert "Email is invalid" in bad.json()["message"]
    reserved = server.root("POST", "/service_accounts", json={"username": "admin"})
    assert reserved.status_code == 400
    # Nothing was written by the refused requests.
    usernames = {a.username for a in gl.service_accounts.list(get_all=True)}
    assert "admin" not in usernames


def test_instance_account_update_with_patch(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    account = gl.service_accounts.create({})
    account.name = "Renamed bot"
    new_username = uid("sa")
    account.username = new_username
    account.save()  # PATCH /service_accounts/:id
    fresh = gl.users.get(account.id)
    assert (fresh.name, fresh.username) == ("Renamed bot", new_username)
    # The personal namespace follows the new username.
    assert server.root("GET", f"/namespaces/{new_username}").status_code == 200
    updated = gl.service_accounts.update(account.id, {"email": f"{new_username}@example.org"})
    assert updated["email"] == f"{new_username}@example.org"
    human = factory.user()
    response = server.root("PATCH", f"/service_accounts/{human['id']}", json={"name": "x"})
    assert response.status_code == 400
    assert "not a service account" in response.json()["message"]
    taken = server.root("PATCH", f"/service_accounts/{account.id}", json={"username": human["username"]})
    assert taken.status_code == 400
    assert "Username has already been taken" in taken.json()["message"]
    assert server.root("PATCH", "/service_accounts/999999999", json={"name": "x"}).status_code == 404
    assert server.root("PATCH", "/service_accounts/abc", json={"name": "x"}).status_code == 400


def test_instance_accounts_are_for_admins_only(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["api"])
    assert server.request("POST", "/service_accounts", token=token, json={}).status_code == 403
    assert server.request("GET", "/service_accounts", token=token).status_code == 403
    assert server.request("GET", "/service_accounts").status_code == 401
    # There is no token route under /service_accounts/:id (tokens go through /users/:id).
    account = server.root("POST", "/service_accounts", json={}).json()
    assert server.root("GET", f"/service_accounts/{account['id']}/personal_access_tokens").status_code == 404
    bad_order = server.root("GET", "/service_accounts", params={"order_by": "name"})
    assert bad_order.status_code == 400
    assert bad_order.json() == {"error": "order_by does not have a valid value"}


def test_instance_account_starts_without_access(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    account = gl.service_accounts.create({})
    token = gl.users.get(account.id).personal_access_tokens.create({"name": "ci", "scopes": ["api"]})
    me = server.request("GET", "/user", token=token.token)
    assert me.status_code == 200
    assert me.json()["username"] == account.username
    assert me.json()["bot"] is True
    project = factory.project(visibility="private")
    assert server.request("GET", f"/projects/{project['id']}", token=token.token).status_code == 404
    factory.member("projects", project["id"], account.id, 20)
    seen = server.request("GET", f"/projects/{project['id']}", token=token.token)
    assert seen.status_code == 200
    assert seen.json()["id"] == project["id"]


# -- groups ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("group_owners_create_service_accounts")
def test_group_accounts_and_tokens_with_python_gitlab(server: LiveServer, factory: Factory) -> None:
    _owner, owner_token, group_json = _group_owner(factory)
    gl = server.gl(owner_token)
    group = gl.groups.get(group_json["id"])
    account = group.service_accounts.create({"name": "deploy bot"})
    assert re.fullmatch(f"service_account_group_{group.id}_{HEX32}", account.username)
    assert account.name == "deploy bot"
    default = group.service_accounts.create({})
    assert default.name == "Service account user"
    listed = group.service_accounts.list(get_all=True)
    assert [a.id for a in listed] == sorted([account.id, default.id], reverse=True)

    created = account.access_tokens.create({"name": "ci", "scopes": ["api", "read_repository"]})
    assert created.token.startswith("glpat-")
    assert created.user_id == account.id
    assert created.scopes == ["api", "read_repository"]
    # Expiry is enforced by default: the maximum lifetime.
    assert created.expires_at == (_today() + dt.timedelta(days=365)).isoformat()
    assert server.request("GET", "/user", token=created.token).json()["id"] == account.id

    # The listed account object builds the token path from the group it was listed under.
    listed_account = next(a for a in listed if a.id == account.id)
    tokens = listed_account.access_tokens.list(get_all=True)
    assert [t.id for t in tokens] == [created.id]
    assert "token" not in tokens[0].attributes

    token_obj = tokens[0]
    token_obj.rotate()
    assert token_obj.id != created.id
    assert token_obj.expires_at == (_today() + dt.timedelta(days=7)).isoformat()
    assert server.request("GET", "/user", token=created.token).status_code == 401
    assert server.request("GET", "/user", token=token_obj.token).status_code == 200
    rotated = account.access_tokens.rotate(
        token_obj.id, expires_at=(_today() + dt.timedelta(days=30)).isoformat()
    )
    assert rotated["expires_at"] == (_today() + dt.timedelta(days=30)).isoformat()
    active = account.access_tokens.list(state="active", get_all=True)
    assert [t.id for t in active] == [rotated["id"]]
    assert len(account.access_tokens.list(state="inactive", get_all=True)) == 2
    # Rotating a revoked token is refused.
    again = server.request(
        "POST",
        f"/groups/{group.id}/service_accounts/{account.id}/personal_access_tokens/{token_obj.id}/rotate",
        token=owner_token,
    )
    assert again.status_code == 400
    assert "Token already revoked" in again.json()["message"]

    account.access_tokens.delete(rotated["id"])
    assert server.request("GET", "/user", token=rotated["token"]).status_code == 401
    revoked = server.request(
        "DELETE",
        f"/groups/{group.id}/service_accounts/{account.id}/personal_access_tokens/{rotated['id']}",
        token=owner_token,
    )
    assert revoked.status_code == 400

    account.name = "renamed bot"
    account.save()
    assert server.root("GET", f"/users/{account.id}").json()["name"] == "renamed bot"

    group.service_accounts.delete(account.id)
    assert server.root("GET", f"/users/{account.id}").status_code == 404
    assert [a.id for a in group.service_accounts.list(get_all=True)] == [default.id]


@pytest.mark.usefixtures("group_owners_create_service_accounts")
def test_group_account_permissions(server: LiveServer, factory: Factory) -> None:
    owner, owner_token, group = _group_owner(factory)
    base = f"/groups/{group['id']}/service_accounts"
    account = server.request("POST", base, token=owner_token, json={}).json()
    developer, dev_token = factory.user_with_token(["api"])
    factory.member("groups", group["id"], developer["id"], 30)
    assert server.request("POST", base, token=dev_token, json={}).status_code == 403
    assert server.request("GET", base, token=dev_token).status_code == 403
    assert server.request("DELETE", f"{base}/{account['id']}", token=dev_token).status_code == 403
    outsider_token = factory.user_with_token(["api"])[1]
    # A private group the caller cannot see does not exist for them.
    hidden = server.request("GET", base, token=outsider_token)
    assert hidden.status_code == 404
    assert hidden.json() == {"message": "404 Group Not Found"}
    read_only = factory.token(owner["id"], ["read_api"])
    assert server.request("POST", base, token=read_only, json={}).status_code == 403
    assert server.request("GET", base, token=read_only).status_code == 200
    # Subgroups own no service accounts.
    sub = factory.group(token=owner_token, parent_id=group["id"])
    response = server.request("POST", f"/groups/{sub['id']}/service_accounts", token=owner_token, json={})
    assert response.status_code == 400
    assert (
        "User does not have permission to create a service account in this group"
        in response.json()["message"]
    )
    # Users the group did not provision are not its service accounts.
    other_group = factory.group(token=owner_token)
    foreign = server.request(
        "POST", f"/groups/{other_group['id']}/service_accounts", token=owner_token, json={}
    )
    foreign_id = foreign.json()["id"]
    for method, path in (
        ("PATCH", f"{base}/{foreign_id}"),
        ("DELETE", f"{base}/{foreign_id}"),
        ("GET", f"{base}/{foreign_id}/personal_access_tokens"),
        ("POST", f"{base}/{foreign_id}/personal_access_tokens"),
        ("DELETE", f"{base}/{owner['id']}"),
    ):
        response = server.request(method, path, token=owner_token, json={"name": "t", "scopes": ["api"]})
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"message": "404 User Not Found"}
    # A token of another account is not found under this one.
    foreign_token = server.request(
        "POST",
        f"/groups/{other_group['id']}/service_accounts/{foreign_id}/personal_access_tokens",
        token=owner_token,
        json={"name": "t", "scopes": ["api"]},
    ).json()
    for method, suffix in (("DELETE", ""), ("POST", "/rotate")):
        response = server.request(
            method,
            f"{base}/{account['id']}/personal_access_tokens/{foreign_token['id']}{suffix}",
            token=owner_token,
        )
        assert response.status_code == 404
        assert response.json() == {"message": "404 Personal Access Token Not Found"}
    # Admins manage any group's accounts.
    assert server.root("GET", base).status_code == 200
    assert server.root("DELETE", f"{base}/{account['id']}").status_code == 204


@pytest.mark.usefixtures("group_owners_create_service_accounts")
def test_group_account_token_rules(server: LiveServer, factory: Factory) -> None:
    _owner, owner_token, group = _group_owner(factory)
    base = f"/groups/{group['id']}/service_accounts"
    account = server.request("POST", base, token=owner_token, json={}).json()
    tokens = f"{base}/{account['id']}/personal_access_tokens"
    missing_name = server.request("POST", tokens, token=owner_token, json={"scopes": ["api"]})
    assert missing_name.status_code == 400
    assert missing_name.json() == {"error": "name is missing"}
    bad_scope = server.request("POST", tokens, token=owner_token, json={"name": "t", "scopes": ["nope"]})
    assert bad_scope.status_code == 400
    assert bad_scope.json() == {"error": "scopes does not have a valid value"}
    too_late = (_today() + dt.timedelta(days=400)).isoformat()
    late = server.request(
        "POST", tokens, token=owner_token, json={"name": "t", "scopes": ["api"], "expires_at": too_late}
    )
    assert late.status_code == 400
    # Comma-separated scopes and a description.
    made = server.request(
        "POST",
        tokens,
        token=owner_token,
        data={"name": "t", "scopes": "read_api,read_user", "description": "d"},
    )
    assert made.status_code == 201, made.text
    assert made.json()["scopes"] == ["read_api", "read_user"]
    assert made.json()["description"] == "d"
    # When the instance allows it, service-account tokens may live forever.
    with _sa_tokens_may_live_forever(server):
        forever = server.request(
            "POST", tokens, token=owner_token, json={"name": "forever", "scopes": ["api"]}
        )
        assert forever.status_code == 201
        assert forever.json()["expires_at"] is None
    listed = server.request("GET", tokens, token=owner_token, params={"search": "forever"})
    assert [t["name"] for t in listed.json()] == ["forever"]
    assert listed.headers["X-Total"] == "1"
    assert server.request("GET", tokens, token=owner_token, params={"sort": "bogus"}).status_code == 400
    # Nothing was written by the refused requests.
    assert server.request("GET", tokens, token=owner_token).headers["X-Total"] == "2"


@pytest.mark.usefixtures("group_owners_create_service_accounts")
def test_group_account_soft_and_hard_delete(server: LiveServer, factory: Factory) -> None:
    _owner, owner_token, group = _group_owner(factory)
    base = f"/groups/{group['id']}/service_accounts"
    project = factory.project(token=owner_token, namespace_id=group["id"])
    authored: dict[str, int] = {}
    for kind in ("soft", "hard"):
        account = server.request("POST", base, token=owner_token, json={}).json()
        token = server.request(
            "POST",
            f"{base}/{account['id']}/personal_access_tokens",
            token=owner_token,
            json={"name": "t", "scopes": ["api"]},
        ).json()["token"]
        factory.member("projects", project["id"], account["id"], 30)
        issue = server.request("POST", f"/projects/{project['id']}/issues", token=token, json={"title": kind})
        assert issue.status_code == 201, issue.text
        assert issue.json()["author"]["id"] == account["id"]
        authored[kind] = issue.json()["iid"]
        query = {"hard_delete": "true"} if kind == "hard" else {}
        deleted = server.request("DELETE", f"{base}/{account['id']}", token=owner_token, params=query)
        assert deleted.status_code == 204
        assert server.root("GET", f"/users/{account['id']}").status_code == 404
        assert server.request("GET", "/user", token=token).status_code == 401
    soft = server.root("GET", f"/projects/{project['id']}/issues/{authored['soft']}")
    assert soft.status_code == 200
    assert soft.json()["author"]["username"].startswith("ghost")
    assert server.root("GET", f"/projects/{project['id']}/issues/{authored['hard']}").status_code == 404


@pytest.mark.usefixtures("group_owners_create_service_accounts")
def test_group_account_creation_is_audited(server: LiveServer, factory: Factory) -> None:
    owner, owner_token, group = _group_owner(factory)
    account = server.request(
        "POST", f"/groups/{group['id']}/service_accounts", token=owner_token, json={}
    ).json()
    server.request(
        "PATCH",
        f"/groups/{group['id']}/service_accounts/{account['id']}",
        token=owner_token,
        json={"name": "n"},
    )
    with server.runtime.sessions() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.target_id == account["id"])).all()
        names = {e.event_name for e in events if e.target_type == "User"}
        created = next(e for e in events if e.event_name == "service_account.created")
        assert (created.entity_type, created.entity_id, created.author_id) == (
            "Group",
            group["id"],
            owner["id"],
        )
    assert {"user.created", "service_account.created", "service_account.updated"} <= names


# -- projects -------------------------------------------------------------------------------------


def test_project_accounts_and_tokens_with_python_gitlab(server: LiveServer, factory: Factory) -> None:
    maintainer, maintainer_token = factory.user_with_token(["api"])
    project_json = factory.project(visibility="private")
    factory.member("projects", project_json["id"], maintainer["id"], 40)
    gl = server.gl(maintainer_token)
    project = gl.projects.get(project_json["id"])
    account = project.service_accounts.create({})
    assert re.fullmatch(f"service_account_project_{project.id}_{HEX32}", account.username)
    raw = server.request("GET", f"/projects/{project.id}/service_accounts", token=maintainer_token).json()
    assert set(raw[0]) == {"id", "username", "name", "email", "public_email", "external"}
    assert [a.id for a in project.service_accounts.list(get_all=True)] == [account.id]
    token = account.access_tokens.create({"name": "ci", "scopes": ["read_api"]})
    # The account starts without access, even to the project that owns it.
    assert server.request("GET", f"/projects/{project.id}", token=token.token).status_code == 404
    factory.member("projects", project.id, account.id, 10)
    assert server.request("GET", f"/projects/{project.id}", token=token.token).status_code == 200
    listed = account.access_tokens.list(get_all=True)
    assert [t.id for t in listed] == [token.id]
    listed[0].rotate()
    assert server.request("GET", "/user", token=listed[0].token).status_code == 200
    listed[0].delete()
    assert server.request("GET", "/user", token=listed[0].token).status_code == 401
    account.username = uid("psa")
    account.save()
    assert server.root("GET", f"/users/{account.id}").json()["username"] == account.username
    # Developers may not manage the project's accounts.
    developer, dev_token = factory.user_with_token(["api"])
    factory.member("projects", project.id, developer["id"], 30)
    assert (
        server.request("GET", f"/projects/{project.id}/service_accounts", token=dev_token).status_code == 403
    )
    # Only its own service accounts: a human member is not one of them.
    response = server.request(
        "PATCH", f"/projects/{project.id}/service_accounts/{developer['id']}", token=maintainer_token
    )
    assert response.status_code == 404
    project.service_accounts.delete(account.id)
    assert server.root("GET", f"/users/{account.id}").status_code == 404
    encoded = project_json["path_with_namespace"].replace("/", "%2F")
    assert server.request("GET", f"/projects/{encoded}/service_accounts", token=maintainer_token).json() == []


def test_unknown_sources_and_ids(server: LiveServer, factory: Factory) -> None:
    assert server.root("GET", "/groups/999999999/service_accounts").json() == {
        "message": "404 Group Not Found"
    }
    assert server.root("POST", "/projects/999999999/service_accounts", json={}).status_code == 404
    group = factory.group()
    assert server.root("DELETE", f"/groups/{group['id']}/service_accounts/abc").status_code == 400
    assert server.root("DELETE", f"/groups/{group['id']}/service_accounts/99999999999").status_code == 404
    account = server.root("POST", f"/groups/{group['id']}/service_accounts", json={}).json()
    tokens = f"/groups/{group['id']}/service_accounts/{account['id']}/personal_access_tokens"
    assert server.root("DELETE", f"{tokens}/99999999999").status_code == 404
    assert server.root("POST", f"{tokens}/abc/rotate").status_code == 400


@pytest.mark.parametrize("body", [{"name": ""}, {"username": "", "email": ""}])
def test_blank_values_are_generated(server: LiveServer, body: dict[str, str]) -> None:
    response = server.root("POST", "/service_accounts", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "Service account user"
    assert response.json()["username"].startswith("service_account_")


def test_sole_owner_account_needs_hard_delete(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    account = server.root("POST", f"/groups/{group['id']}/service_accounts", json={}).json()
    # A group's account stays in its hierarchy (test_service_account_membership_scope.py): it
    # becomes the sole Owner of its own group.
    owned = group
    factory.member("groups", owned["id"], account["id"], 50)
    assert server.root("DELETE", f"/groups/{owned['id']}/members/1").status_code == 204
    path = f"/groups/{group['id']}/service_accounts/{account['id']}"
    refused = server.root("DELETE", path)
    assert refused.status_code == 409
    assert refused.json() == {"message": "User cannot be removed while is the sole-owner of a group"}
    assert server.root("GET", f"/users/{account['id']}").status_code == 200
    assert server.root("DELETE", path, params={"hard_delete": "true"}).status_code == 204
    assert server.root("GET", f"/users/{account['id']}").status_code == 404
    assert server.root("GET", f"/groups/{owned['id']}").status_code == 404


@pytest.mark.parametrize("kind", ["groups", "projects"])
def test_reused_service_account_token_at_the_rotate_endpoint_revokes_its_family(
    server: LiveServer, factory: Factory, kind: str
) -> None:
    source = factory.group() if kind == "groups" else factory.project()
    account = server.root("POST", f"/{kind}/{source['id']}/service_accounts", json={}).json()
    tokens = f"/{kind}/{source['id']}/service_accounts/{account['id']}/personal_access_tokens"
    first = server.root("POST", tokens, json={"name": "family", "scopes": ["api"]}).json()
    second = server.root("POST", f"{tokens}/{first['id']}/rotate").json()
    third = server.root("POST", f"{tokens}/{second['id']}/rotate").json()
    assert server.request("GET", "/user", token=third["token"]).json()["id"] == account["id"]
    # The leaked first value comes back to the service-account rotate endpoint.
    replay = server.request("POST", f"{tokens}/{first['id']}/rotate", token=first["token"])
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_token"
    assert server.request("GET", "/user", token=third["token"]).status_code == 401
    listed = server.root("GET", tokens, params={"state": "active"}).json()
    assert listed == []
    events = server.root("GET", "/audit_events", params={"per_page": 100}).json()
    reuse = [
        e
        for e in events
        if e.get("event_name") == "token.revoked"
        and e["details"].get("target_id") == third["id"]
        and "reused" in str(e["details"])
    ]
    assert reuse, "the family revocation is audited"
    assert reuse[0]["details"].get("ip_address") == "127.0.0.1"
