"""Deploy tokens: python-gitlab lifecycle, input rules, permissions, expiry, storage, authentication."""

from __future__ import annotations

import datetime as dt
from typing import Any

import gitlab
import pytest
from sqlalchemy import select

from keycrew.audit.models import AuditEvent
from keycrew.context import Actor
from keycrew.crypto import digest
from keycrew.errors import Forbidden
from keycrew.identity.models import User
from keycrew.tokens import deploy
from keycrew.tokens.models import DeployToken
from keycrew.tokens.secrets import has_valid_checksum
from tests.support.live import Factory, LiveServer, uid

USERNAME_FORMAT = "can contain only letters, digits, '_', '-', '+', and '.'"
ENTITY_KEYS = {"id", "name", "username", "expires_at", "scopes", "revoked", "expired"}


def member_token(factory: Factory, kind: str, source_id: int, level: int) -> str:
    user, token = factory.user_with_token(["api"])
    factory.member(kind, source_id, user["id"], level)
    return token


def create(server: LiveServer, path: str, token: str | None = None, **body: Any) -> dict[str, Any]:
    body = {"name": uid("dt"), "scopes": ["read_repository"]} | body
    response = server.request("POST", path, token=token or server.root_token, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def stored(server: LiveServer, token_id: int) -> DeployToken | None:
    with server.runtime.sessions() as db:
        row = db.get(DeployToken, token_id)
        if row is not None:
            db.expunge(row)
        return row


def events(server: LiveServer, token_id: int, name: str) -> list[str]:
    """Audit event names of one deploy token (by id and name: SQLite may reuse a deleted row's id)."""
    with server.runtime.sessions() as db:
        rows = db.scalars(
            select(AuditEvent.event_name)
            .where(
                AuditEvent.target_type == "DeployToken",
                AuditEvent.target_id == token_id,
                AuditEvent.target_details == name,
            )
            .order_by(AuditEvent.id)
        )
        return list(rows)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


# -- python-gitlab ----------------------------------------------------------------------------


def test_project_deploy_token_lifecycle_with_python_gitlab(server: LiveServer, gl: gitlab.Gitlab) -> None:
    project = gl.projects.get(server.root("POST", "/projects", json={"name": uid("p")}).json()["id"])
    # A plain string for scopes, as python-gitlab's documentation shows.
    name = uid("deployer")
    created = project.deploytokens.create({"name": name, "scopes": "read_repository"})
    assert set(created.attributes) >= ENTITY_KEYS | {"token"}
    assert created.name == name
    assert created.username == f"gitlab+deploy-token-{created.id}"
    assert created.scopes == ["read_repository"]
    assert (created.expires_at, created.revoked, created.expired) == (None, False, False)
    assert created.token.startswith("gldt-")
    assert has_valid_checksum(created.token)

    listed = project.deploytokens.list(get_all=True)
    assert [t.id for t in listed] == [created.id]
    assert "token" not in listed[0].attributes  # the value is shown once
    got = project.deploytokens.get(created.id)
    assert {k: got.attributes[k] for k in ENTITY_KEYS} == {k: created.attributes[k] for k in ENTITY_KEYS}
    assert "token" not in got.attributes
    assert created.id in {t.id for t in gl.deploytokens.list(get_all=True)}

    got.delete()
    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.deploytokens.get(created.id)
    assert missing.value.response_code == 404
    assert project.deploytokens.list(get_all=True) == []
    assert created.id not in {t.id for t in gl.deploytokens.list(get_all=True)}
    with pytest.raises(gitlab.GitlabDeleteError) as again:
        project.deploytokens.delete(created.id)
    assert again.value.response_code == 404
    assert stored(server, created.id) is None
    assert events(server, created.id, created.name) == ["deploy_token.created", "deploy_token.deleted"]


def test_group_deploy_token_lifecycle_with_python_gitlab(server: LiveServer, gl: gitlab.Gitlab) -> None:
    path = uid("g")
    group = gl.groups.create({"name": path, "path": path})
    expires = today() + dt.timedelta(days=30)
    created = group.deploytokens.create(
        {
            "name": uid("registry"),
            "username": "ci.pull+bot_1-x",
            "expires_at": expires.isoformat(),
            # Given out of order: GitLab lists a token's scopes in its own order.
            "scopes": ["write_package_registry", "read_registry", "read_registry"],
        }
    )
    assert created.username == "ci.pull+bot_1-x"
    assert created.expires_at == f"{expires.isoformat()}T00:00:00.000Z"
    assert created.scopes == ["read_registry", "write_package_registry"]
    assert created.expired is False
    assert [t.id for t in group.deploytokens.list(get_all=True)] == [created.id]
    assert group.deploytokens.get(created.id).username == "ci.pull+bot_1-x"
    assert created.id in {t.id for t in gl.deploytokens.list(get_all=True)}
    group.deploytokens.delete(created.id)
    assert group.deploytokens.list(get_all=True) == []
    assert events(server, created.id, created.name) == ["deploy_token.created", "deploy_token.deleted"]


def test_upstream_python_gitlab_functional_test_shape(server: LiveServer, gl: gitlab.Gitlab) -> None:
    """python-gitlab's own functional test: expires_at today is accepted and read back."""
    project = gl.projects.get(server.root("POST", "/projects", json={"name": uid("p")}).json()["id"])
    day = today().isoformat()
    created = project.deploytokens.create(
        {"name": "foo", "username": "bar", "expires_at": day, "scopes": ["read_registry"]}
    )
    assert created in project.deploytokens.list()
    assert set(project.deploytokens.list()) <= set(gl.deploytokens.list(get_all=True))
    got = project.deploytokens.get(created.id)
    assert (got.name, got.expires_at, got.scopes, got.username) == (
        "foo",
        f"{day}T00:00:00.000Z",
        ["read_registry"],
        "bar",
    )
    got.delete()


def test_every_deploy_scope_and_all_kinds_of_expiry(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    path = f"/projects/{project['id']}/deploy_tokens"
    made = create(server, path, scopes=",".join(reversed(deploy.DEPLOY_SCOPES)))
    assert made["scopes"] == list(deploy.DEPLOY_SCOPES)
    day = today() + dt.timedelta(days=3)
    for given in (day.isoformat(), f"{day.isoformat()}T00:00:00.000Z", f"{day.isoformat()}T10:30:00Z"):
        assert create(server, path, expires_at=given)["expires_at"] == f"{day.isoformat()}T00:00:00.000Z"


# -- storage and audit ------------------------------------------------------------------------


def test_value_is_stored_only_as_its_keyed_digest(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    made = create(server, f"/projects/{project['id']}/deploy_tokens", name="stored", scopes="read_registry")
    row = stored(server, made["id"])
    assert row is not None
    assert row.token_digest != made["token"]
    assert made["token"] not in row.token_digest
    assert row.token_digest == digest(server.runtime.instance.secret_key, made["token"])
    assert (row.project_id, row.group_id, row.creator_id) == (project["id"], None, 1)
    with server.runtime.sessions() as db:
        event = db.scalars(
            select(AuditEvent).where(
                AuditEvent.event_name == "deploy_token.created", AuditEvent.target_id == made["id"]
            )
        ).one()
        assert (event.entity_type, event.entity_id, event.author_id) == ("Project", project["id"], 1)
        assert event.details["scopes"] == ["read_registry"]
        assert made["token"] not in repr(event.details)
    assert made["token"] not in repr(deploy.IssuedDeployToken(made["token"], row))


# -- input rules ------------------------------------------------------------------------------


def test_blank_username_and_expiry_mean_absent(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    made = create(server, f"/projects/{project['id']}/deploy_tokens", username="", expires_at="")
    assert made["username"] == f"gitlab+deploy-token-{made['id']}"
    assert made["expires_at"] is None
    # Form bodies and query strings too.
    response = server.root(
        "POST",
        f"/projects/{project['id']}/deploy_tokens",
        data={"name": "form", "scopes": "read_repository,read_registry", "username": "", "expires_at": ""},
    )
    assert response.status_code == 201, response.text
    assert response.json()["username"] == f"gitlab+deploy-token-{response.json()['id']}"
    assert response.json()["scopes"] == ["read_repository", "read_registry"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"scopes": ["read_repository", "api"]}, {"error": "scopes does not have a valid value"}),
        ({"scopes": "read_repository,nonsense"}, {"error": "scopes does not have a valid value"}),
        ({"scopes": ["read_user"]}, {"error": "scopes does not have a valid value"}),
        ({"scopes": None}, {"error": "scopes is missing"}),
        ({"name": None}, {"error": "name is missing"}),
        ({"expires_at": "next tuesday"}, {"error": "expires_at is invalid"}),
        ({"expires_at": "9999-12-31T23:00:00-05:00"}, {"error": "expires_at is invalid"}),
        ({"expires_at": 20300101}, {"error": "expires_at is invalid"}),
        ({"name": "a\x00b"}, {"error": "name is invalid"}),
        ({"name": ["a"]}, {"error": "name is invalid"}),
        ({"scopes": {"read_repository": True}}, {"error": "scopes is invalid"}),
        ({"scopes": ""}, {"error": "scopes is empty"}),
        ({"username": ["dep"]}, {"error": "username is invalid"}),
        ({"username": "a\x00b"}, {"error": "username is invalid"}),
        (
            {"username": "has space"},
            {"message": {"username": ["can contain only letters, digits, '_', '-', '+', and '.'"]}},
        ),
        (
            {"username": "é"},
            {"message": {"username": ["can contain only letters, digits, '_', '-', '+', and '.'"]}},
        ),
        ({"username": "a" * 256}, {"message": {"username": ["is too long (maximum is 255 characters)"]}}),
        ({"name": "n" * 256}, {"message": {"name": ["is too long (maximum is 255 characters)"]}}),
        ({"expires_at": "2001-01-01"}, {"message": {"expires_at": ["can't be before today"]}}),
    ],
)
def test_bad_input_is_a_400_and_writes_nothing(
    server: LiveServer, factory: Factory, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    project = factory.project()
    path = f"/projects/{project['id']}/deploy_tokens"
    payload = {
        k: v for k, v in ({"name": "x", "scopes": ["read_repository"]} | body).items() if v is not None
    }
    response = server.root("POST", path, json=payload)
    assert response.status_code == 400, response.text
    assert response.json() == expected
    assert server.root("GET", path).json() == []


def test_username_of_255_allowed_characters_is_fine(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    name = ("Aa0.+_-" * 40)[:255]
    assert create(server, f"/projects/{project['id']}/deploy_tokens", username=name)["username"] == name


def test_bad_ids_and_foreign_tokens(server: LiveServer, factory: Factory) -> None:
    a, b = factory.project(), factory.project()
    made = create(server, f"/projects/{a['id']}/deploy_tokens")
    # A token of project A is not found through project B, nor through a group.
    assert server.root("GET", f"/projects/{b['id']}/deploy_tokens/{made['id']}").status_code == 404
    assert server.root("DELETE", f"/projects/{b['id']}/deploy_tokens/{made['id']}").status_code == 404
    group = factory.group()
    assert server.root("GET", f"/groups/{group['id']}/deploy_tokens/{made['id']}").status_code == 404
    assert stored(server, made["id"]) is not None
    bad = server.root("GET", f"/projects/{a['id']}/deploy_tokens/abc")
    assert (bad.status_code, bad.json()) == (400, {"error": "token_id is invalid"})
    for odd in (str(2**70), "0", "-1"):
        response = server.root("DELETE", f"/projects/{a['id']}/deploy_tokens/{odd}")
        assert (response.status_code, response.json()) == (404, {"message": "404 Deploy Token Not Found"})
    assert server.root("GET", "/projects/999999999/deploy_tokens").json() == {
        "message": "404 Project Not Found"
    }
    assert server.root("GET", "/groups/999999999/deploy_tokens").json() == {"message": "404 Group Not Found"}
    # Projects by URL-encoded full path.
    encoded = a["path_with_namespace"].replace("/", "%2F")
    assert [t["id"] for t in server.root("GET", f"/projects/{encoded}/deploy_tokens").json()] == [made["id"]]


# -- permissions ------------------------------------------------------------------------------


def test_project_permission_matrix(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    path = f"/projects/{project['id']}/deploy_tokens"
    made = create(server, path)
    body = {"name": "x", "scopes": ["read_repository"]}

    developer = member_token(factory, "projects", project["id"], 30)
    for method, url, kwargs in (
        ("GET", path, {}),
        ("POST", path, {"json": body}),
        ("GET", f"{path}/{made['id']}", {}),
        ("DELETE", f"{path}/{made['id']}", {}),
    ):
        response = server.request(method, url, token=developer, **kwargs)
        assert (response.status_code, response.json()) == (403, {"message": "403 Forbidden"}), (method, url)

    _stranger, stranger = factory.user_with_token(["api"])
    for method in ("GET", "POST"):
        response = server.request(method, path, token=stranger, json=body if method == "POST" else None)
        assert (response.status_code, response.json()) == (404, {"message": "404 Project Not Found"})
    assert server.request("GET", "/deploy_tokens", token=stranger).status_code == 403

    maintainer = member_token(factory, "projects", project["id"], 40)
    own = create(server, path, token=maintainer)
    assert {t["id"] for t in server.request("GET", path, token=maintainer).json()} == {made["id"], own["id"]}
    assert server.request("GET", f"{path}/{made['id']}", token=maintainer).status_code == 200
    assert server.request("DELETE", f"{path}/{made['id']}", token=maintainer).status_code == 204
    assert server.request("GET", "/deploy_tokens", token=maintainer).json() == {"message": "403 Forbidden"}
    row = stored(server, own["id"])
    assert row is not None
    assert row.creator_id is not None

    # A read_api token may look but not create.
    user, reader = factory.user_with_token(["read_api"])
    factory.member("projects", project["id"], user["id"], 40)
    assert server.request("GET", path, token=reader).status_code == 200
    assert server.request("POST", path, token=reader, json=body).status_code == 403
    assert server.request("GET", path).status_code == 401


def test_group_permission_matrix(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    path = f"/groups/{group['id']}/deploy_tokens"
    made = create(server, path)
    body = {"name": "x", "scopes": ["read_registry"]}

    maintainer = member_token(factory, "groups", group["id"], 40)
    assert [t["id"] for t in server.request("GET", path, token=maintainer).json()] == [made["id"]]
    assert server.request("GET", f"{path}/{made['id']}", token=maintainer).json()["id"] == made["id"]
    refused = server.request("POST", path, token=maintainer, json=body)
    assert (refused.status_code, refused.json()) == (403, {"message": "403 Forbidden"})
    assert server.request("DELETE", f"{path}/{made['id']}", token=maintainer).status_code == 403
    assert stored(server, made["id"]) is not None

    developer = member_token(factory, "groups", group["id"], 30)
    assert server.request("GET", path, token=developer).status_code == 403
    assert server.request("GET", f"{path}/{made['id']}", token=developer).status_code == 403

    _stranger, stranger = factory.user_with_token(["api"])
    assert server.request("GET", path, token=stranger).json() == {"message": "404 Group Not Found"}

    owner = member_token(factory, "groups", group["id"], 50)
    own = create(server, path, token=owner, **body)
    assert server.request("DELETE", f"{path}/{made['id']}", token=owner).status_code == 204
    assert [t["id"] for t in server.request("GET", path, token=owner).json()] == [own["id"]]


# -- listing ----------------------------------------------------------------------------------


def test_admin_list_is_admin_only_and_filters_active(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    live = create(server, f"/projects/{project['id']}/deploy_tokens")
    soon = create(
        server,
        f"/groups/{factory.group()['id']}/deploy_tokens",
        expires_at=(today() + dt.timedelta(days=2)).isoformat(),
    )
    born_expired = create(server, f"/projects/{project['id']}/deploy_tokens", expires_at=today().isoformat())
    assert born_expired["expired"] is True

    def ids(**params: Any) -> set[int]:
        response = server.root("GET", "/deploy_tokens", params={"per_page": 100} | params)
        assert response.status_code == 200, response.text
        pages = int(response.headers["X-Total-Pages"])
        found = {t["id"] for t in response.json()}
        for page in range(2, pages + 1):
            found |= {
                t["id"]
                for t in server.root(
                    "GET", "/deploy_tokens", params={"per_page": 100, "page": page} | params
                ).json()
            }
        return found

    assert {live["id"], soon["id"], born_expired["id"]} <= ids()
    assert {live["id"], soon["id"]} <= ids(active="true")
    assert born_expired["id"] not in ids(active="true")
    assert born_expired["id"] in ids(active="false")
    assert server.root("GET", "/deploy_tokens", params={"active": "maybe"}).json() == {
        "error": "active is invalid"
    }


def test_list_filters_and_pagination(server: LiveServer, factory: Factory, gl: gitlab.Gitlab) -> None:
    project = factory.project()
    path = f"/projects/{project['id']}/deploy_tokens"
    repo = create(server, path, scopes=["read_repository"])
    registry = create(server, path, scopes=["read_registry", "write_registry"])
    both = create(server, path, scopes=["read_repository", "read_registry"])
    # python-gitlab sends the scopes filter as scopes[]=...
    listed = gl.projects.get(project["id"], lazy=True).deploytokens.list(
        scopes=["read_registry"], get_all=True
    )
    assert [t.id for t in listed] == [registry["id"], both["id"]]
    assert [
        t["id"] for t in server.root("GET", path, params={"scopes": "read_registry,write_registry"}).json()
    ] == [registry["id"]]
    first = server.root("GET", path, params={"per_page": 2})
    assert [t["id"] for t in first.json()] == [repo["id"], registry["id"]]
    assert (first.headers["X-Total"], first.headers["X-Total-Pages"], first.headers["X-Next-Page"]) == (
        "3",
        "2",
        "2",
    )
    assert 'rel="next"' in first.headers["Link"]
    second = server.root("GET", path, params={"per_page": 2, "page": 2})
    assert [t["id"] for t in second.json()] == [both["id"]]
    assert 'rel="next"' not in second.headers["Link"]


# -- expiry -----------------------------------------------------------------------------------


def test_expired_flag_follows_the_clock(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    path = f"/projects/{project['id']}/deploy_tokens"
    expires = today() + dt.timedelta(days=10)
    made = create(server, path, expires_at=expires.isoformat())
    forever = create(server, path)
    assert made["expired"] is False

    def state(at: dt.datetime) -> tuple[bool, list[int]]:
        server.clock.travel_to(at)
        expired = server.root("GET", f"{path}/{made['id']}").json()["expired"]
        active = [t["id"] for t in server.root("GET", path, params={"active": True}).json()]
        return expired, active

    eve = dt.datetime.combine(expires, dt.time(23, 59), dt.UTC) - dt.timedelta(days=1)
    assert state(eve) == (False, [made["id"], forever["id"]])
    # The token dies at 00:00 UTC on its expiry date; the one without expiry never does.
    assert state(dt.datetime.combine(expires, dt.time(0, 0, 1), dt.UTC)) == (True, [forever["id"]])
    much_later = dt.datetime.combine(expires, dt.time(12), dt.UTC) + dt.timedelta(days=200)
    assert state(much_later) == (True, [forever["id"]])

    # The server's yesterday is refused, the server's today is fine.
    server_today = today() + dt.timedelta(days=100)
    server.clock.travel_to(dt.datetime.combine(server_today, dt.time(12), dt.UTC))

    def post(day: dt.date) -> Any:
        body = {"name": uid("dt"), "scopes": "read_repository", "expires_at": day.isoformat()}
        return server.root("POST", path, json=body)

    late = post(server_today - dt.timedelta(days=1))
    assert (late.status_code, late.json()) == (400, {"message": {"expires_at": ["can't be before today"]}})
    born_expired = post(server_today)
    assert born_expired.status_code == 201, born_expired.text
    assert born_expired.json()["expired"] is True


# -- deploy tokens are not API credentials ----------------------------------------------------


def test_deploy_token_is_not_an_api_credential(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    made = create(server, f"/projects/{project['id']}/deploy_tokens", scopes=list(deploy.DEPLOY_SCOPES))
    value = made["token"]
    unauthorized = {"message": "401 Unauthorized"}
    for kwargs in (
        {"headers": {"PRIVATE-TOKEN": value}},
        {"headers": {"Authorization": f"Bearer {value}"}},
        {"params": {"private_token": value}},
    ):
        for path in ("/user", f"/projects/{project['id']}", f"/projects/{project['id']}/deploy_tokens"):
            response = server.request("GET", path, **kwargs)
            assert (response.status_code, response.json()) == (401, unauthorized), (path, kwargs)
    with pytest.raises(gitlab.GitlabAuthenticationError):
        server.gl(value).auth()


# -- the domain API the git and registry adapters use ------------------------------------------


def test_authenticate_deploy_token(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    made = create(
        server,
        f"/groups/{group['id']}/deploy_tokens",
        username="puller",
        expires_at=(today() + dt.timedelta(days=5)).isoformat(),
    )
    key = server.runtime.instance.secret_key

    def auth(username: str, value: str, day: dt.date | None = None) -> int | None:
        with server.runtime.sessions() as db:
            token = deploy.authenticate_deploy_token(db, key, username, value, day or today())
            return None if token is None else token.id

    assert auth("puller", made["token"]) == made["id"]
    # Exact username only; unknown, malformed or expired values fail alike.
    assert auth("Puller", made["token"]) is None
    assert auth("puller ", made["token"]) is None
    assert auth("pullér", made["token"]) is None
    assert auth("", made["token"]) is None
    # One character changed (never to itself: a value may already end in "x").
    last = made["token"][-1]
    assert auth("puller", made["token"][:-1] + ("y" if last == "x" else "x")) is None
    assert auth("puller", "") is None
    assert auth("puller", "x" * 10_000) is None
    assert auth("puller", made["token"], today() + dt.timedelta(days=5)) is None

    with server.runtime.sessions() as db:
        ctx = server.runtime.ctx(db, Actor.system())
        token = db.get(DeployToken, made["id"])
        assert token is not None
        assert deploy.revoke_deploy_token(ctx, token) is True
        assert deploy.revoke_deploy_token(ctx, token) is False
        db.commit()
    assert auth("puller", made["token"]) is None
    got = server.root("GET", f"/groups/{group['id']}/deploy_tokens/{made['id']}").json()
    assert (got["revoked"], got["expired"]) == (True, False)
    assert made["id"] not in {
        t["id"]
        for t in server.root("GET", f"/groups/{group['id']}/deploy_tokens", params={"active": "true"}).json()
    }
    assert events(server, made["id"], made["name"]) == ["deploy_token.created", "deploy_token.revoked"]


def test_revoke_needs_manage_rights(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    made = create(server, f"/groups/{group['id']}/deploy_tokens")
    maintainer, _token = factory.user_with_token(["api"])
    factory.member("groups", group["id"], maintainer["id"], 40)
    with server.runtime.sessions() as db:
        user = db.get(User, maintainer["id"])
        ctx = server.runtime.ctx(db, Actor(user=user))
        token = db.get(DeployToken, made["id"])
        assert token is not None
        with pytest.raises(Forbidden):
            deploy.revoke_deploy_token(ctx, token)
        db.rollback()
    assert stored(server, made["id"]).revoked is False  # type: ignore[union-attr]
