"""The container registry token service (/jwt/auth) over HTTP: claims, signature, key id, and which
actions each credential gets for each requested scope."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import update

from keycrew.infra.ratelimit import FailedAuthThrottle
from keycrew.namespaces.models import Project
from tests.support.live import Factory, LiveServer, uid

SERVICE = "container_registry"
ISSUER = "keycrew-issuer"


def jwt_auth(
    server: LiveServer,
    *scopes: str,
    creds: tuple[str, str] | None = None,
    service: str | None = SERVICE,
    headers: dict[str, str] | None = None,
    **params: str,
) -> requests.Response:
    query: list[tuple[str, str]] = [("scope", s) for s in scopes]
    if service is not None:
        query.append(("service", service))
    query.extend(params.items())
    return requests.get(f"{server.url}/jwt/auth", params=query, auth=creds, headers=headers, timeout=30)


def certificate(server: LiveServer) -> x509.Certificate:
    return x509.load_pem_x509_certificate(server.runtime.settings.registry_certificate_path.read_bytes())


def decode(server: LiveServer, token: str) -> dict[str, Any]:
    key = certificate(server).public_key()
    return dict(jwt.decode(token, key, algorithms=["RS256"], audience=SERVICE, issuer=ISSUER))  # type: ignore[arg-type]


def access(server: LiveServer, *scopes: str, creds: tuple[str, str] | None = None) -> dict[str, list[str]]:
    """{"type:name": actions} granted for the scopes."""
    response = jwt_auth(server, *scopes, creds=creds)
    assert response.status_code == 200, response.text
    claims = decode(server, response.json()["token"])
    return {f"{a['type']}:{a['name']}": a["actions"] for a in claims["access"]}


def member_with_token(
    factory: Factory, project: dict[str, Any], level: int, scopes: list[str]
) -> tuple[dict[str, Any], str]:
    user, token = factory.user_with_token(scopes)
    factory.member("projects", project["id"], user["id"], level)
    return user, token


def path_of(project: dict[str, Any]) -> str:
    return str(project["path_with_namespace"])


def test_token_claims_signature_and_key_id(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="private")
    user, token = member_with_token(factory, project, 30, ["api"])
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    response = jwt_auth(server, f"repository:{path_of(project)}:pull,push", creds=(user["username"], token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    issued_at = dt.datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert before - dt.timedelta(seconds=2) <= issued_at <= dt.datetime.now(dt.UTC)

    claims = decode(server, body["token"])
    assert claims["iss"] == ISSUER
    assert claims["sub"] == user["username"]
    assert claims["aud"] == SERVICE  # a plain string, as the registry wants
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] <= claims["iat"] == int(issued_at.timestamp())
    assert len(claims["jti"]) >= 16
    assert claims["access"] == [{"type": "repository", "name": path_of(project), "actions": ["pull", "push"]}]

    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "RS256"
    # libtrust's key id, computed here independently from the certificate the registry trusts.
    der = (
        certificate(server)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert len(b32) == 48
    assert "=" not in b32
    assert header["kid"] == ":".join(b32[i : i + 4] for i in range(0, 48, 4))

    # A second token is another JWT (jti) signed by the same key.
    again = jwt_auth(server, f"repository:{path_of(project)}:pull", creds=(user["username"], token))
    assert decode(server, again.json()["token"])["jti"] != claims["jti"]
    assert jwt.get_unverified_header(again.json()["token"])["kid"] == header["kid"]


def test_key_and_certificate_files(server: LiveServer) -> None:
    assert jwt_auth(server, "repository:nobody/nothing:pull").status_code == 200
    settings = server.runtime.settings
    key_mode = stat.S_IMODE(settings.registry_key_path.stat().st_mode)
    assert key_mode == 0o600
    key = serialization.load_pem_private_key(settings.registry_key_path.read_bytes(), password=None)
    assert certificate(server).public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


def test_multiple_scopes_get_each_their_own_intersection(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    mine = factory.project(namespace_id=group["id"], visibility="private")
    reported = factory.project(namespace_id=group["id"], visibility="private")
    foreign = factory.project(visibility="private")
    user, token = member_with_token(factory, mine, 30, ["api"])
    factory.member("projects", reported["id"], user["id"], 20)
    creds = (user["username"], token)
    a, b, c = path_of(mine), path_of(reported), path_of(foreign)
    granted = access(
        server,
        f"repository:{a}:pull,push",
        f"repository:{b}:pull,push repository:{c}:pull",  # space-separated in one parameter
        f"repository:{a}/tools/builder:push,pull",  # an image below the project
        f"repository:{group['full_path']}/nothing-here:pull",
        f"repository:{a}:delete",
        "repository:Upper/Case:pull",
        "registry:catalog:*",
        "nonsense",
        "other:thing:pull",
        creds=creds,
    )
    assert granted == {
        f"repository:{a}": ["pull", "push"],  # the two requests for one resource are merged
        f"repository:{b}": ["pull"],  # Reporter: pull only
        f"repository:{c}": [],  # not a member: nothing, but no failure
        f"repository:{a}/tools/builder": ["push", "pull"],
        f"repository:{group['full_path']}/nothing-here": [],
        "repository:Upper/Case": [],
        "registry:catalog": [],  # not an administrator
    }


def test_delete_needs_maintainer_and_catalog_needs_admin(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="private")
    name = path_of(project)
    maintainer, token = member_with_token(factory, project, 40, ["api"])
    assert access(server, f"repository:{name}:pull,push,delete,*", creds=(maintainer["username"], token)) == {
        f"repository:{name}": ["pull", "push", "delete", "*"]
    }
    developer, dev_token = member_with_token(factory, project, 30, ["api"])
    assert access(server, f"repository:{name}:delete,pull", creds=(developer["username"], dev_token)) == {
        f"repository:{name}": ["pull"]
    }
    registry_only = factory.token(maintainer["id"], ["read_registry", "write_registry"])
    assert access(server, f"repository:{name}:pull,push,delete", creds=("x", registry_only)) == {
        f"repository:{name}": ["pull", "push"]
    }
    assert access(server, "registry:catalog:*", creds=("root", server.root_token)) == {
        "registry:catalog": ["*"]
    }
    assert access(server, "registry:catalog:pull", creds=("root", server.root_token)) == {
        "registry:catalog": []
    }


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (["api"], ["pull", "push"]),
        (["read_api"], ["pull"]),
        (["read_registry"], ["pull"]),
        (["write_registry"], ["push"]),  # GitLab: "you need both read and write access to push"
        (["read_registry", "write_registry"], ["pull", "push"]),
    ],
)
def test_token_scopes_bound_the_actions(
    server: LiveServer, factory: Factory, scopes: list[str], expected: list[str]
) -> None:
    project = factory.project(visibility="private")
    _user, token = member_with_token(factory, project, 40, scopes)
    assert access(server, f"repository:{path_of(project)}:pull,push", creds=("anything", token)) == {
        f"repository:{path_of(project)}": expected
    }


def test_credentials_without_registry_scopes_are_refused(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="public")
    _user, token = member_with_token(factory, project, 40, ["read_repository", "write_repository"])
    response = jwt_auth(server, f"repository:{path_of(project)}:pull", creds=("u", token))
    assert response.status_code == 403
    assert response.json() == {"errors": [{"code": "DENIED", "message": "access forbidden"}]}


def test_password_sign_in_and_login_without_scope(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="private")
    user = factory.user()
    factory.member("projects", project["id"], user["id"], 30)
    creds = (user["username"], "a-long-password-1")
    assert access(server, f"repository:{path_of(project)}:push,pull", creds=creds) == {
        f"repository:{path_of(project)}": ["push", "pull"]
    }
    # `docker login` asks for no scope: a token with no access proves the credentials.
    login = jwt_auth(server, creds=creds, account=user["username"])
    assert login.status_code == 200
    assert decode(server, login.json()["token"])["access"] == []
    wrong = jwt_auth(server, creds=(user["username"], "not-the-password"))
    assert wrong.status_code == 401
    # With password authentication for git turned off, the registry takes tokens only.
    token = factory.token(user["id"], ["read_registry"])
    off = server.root("PUT", "/application/settings", json={"password_authentication_enabled_for_git": False})
    assert off.status_code == 200
    try:
        assert jwt_auth(server, creds=creds).status_code == 401
        assert jwt_auth(server, creds=(user["username"], token)).status_code == 200
    finally:
        server.root("PUT", "/application/settings", json={"password_authentication_enabled_for_git": True})
    server.runtime.auth_throttle.reset()


def test_anonymous_pulls_public_images_only(server: LiveServer, factory: Factory) -> None:
    public = factory.project(visibility="public")
    internal = factory.project(visibility="internal")
    private = factory.project(visibility="private")
    response = jwt_auth(
        server,
        f"repository:{path_of(public)}:pull,push",
        f"repository:{path_of(internal)}:pull",
        f"repository:{path_of(private)}:pull",
    )
    assert response.status_code == 200
    claims = decode(server, response.json()["token"])
    assert claims["sub"] == ""
    assert {a["name"]: a["actions"] for a in claims["access"]} == {
        path_of(public): ["pull"],
        path_of(internal): [],
        path_of(private): [],
    }
    # Nothing asked by nobody: GitLab's 403.
    nothing = jwt_auth(server)
    assert nothing.status_code == 403
    assert nothing.json()["errors"][0]["code"] == "DENIED"


def test_internal_projects_are_pulled_by_any_signed_in_user(server: LiveServer, factory: Factory) -> None:
    internal = factory.project(visibility="internal")
    _user, token = factory.user_with_token(["read_registry"])
    assert access(server, f"repository:{path_of(internal)}:pull,push", creds=("u", token)) == {
        f"repository:{path_of(internal)}": ["pull"]
    }


def deploy_token(server: LiveServer, kind: str, source_id: int, scopes: list[str]) -> tuple[str, str]:
    response = server.root(
        "POST", f"/{kind}/{source_id}/deploy_tokens", json={"name": uid("dt"), "scopes": scopes}
    )
    assert response.status_code == 201, response.text
    return response.json()["username"], response.json()["token"]


def test_deploy_tokens(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    sub = factory.group(parent_id=group["id"])
    mine = factory.project(namespace_id=group["id"], visibility="private")
    nested = factory.project(namespace_id=sub["id"], visibility="private")
    other = factory.project(visibility="private")
    public = factory.project(visibility="public")
    a, b, c, p = path_of(mine), path_of(nested), path_of(other), path_of(public)
    scopes = [f"repository:{x}:pull,push" for x in (a, b, c, p)]

    reader = deploy_token(server, "projects", mine["id"], ["read_registry"])
    granted = access(server, *scopes, creds=reader)
    assert granted == {
        f"repository:{a}": ["pull"],
        f"repository:{b}": [],
        f"repository:{c}": [],
        f"repository:{p}": [],
    }
    assert access(server, f"repository:{a}:pull", creds=(reader[0], reader[1]))[f"repository:{a}"] == ["pull"]
    assert decode(server, jwt_auth(server, creds=reader).json()["token"])["sub"] == reader[0]

    writer = deploy_token(server, "projects", mine["id"], ["write_registry"])
    assert access(server, f"repository:{a}:pull,push", creds=writer) == {f"repository:{a}": ["push"]}

    both = deploy_token(server, "groups", group["id"], ["read_registry", "write_registry"])
    granted = access(server, *scopes, creds=both)
    assert granted == {
        f"repository:{a}": ["pull", "push"],
        f"repository:{b}": ["pull", "push"],  # projects of subgroups too
        f"repository:{c}": [],
        f"repository:{p}": [],
    }

    # The username must be the token's own.
    assert jwt_auth(server, scopes[0], creds=("someone-else", reader[1])).status_code == 401
    repo_only = deploy_token(server, "projects", mine["id"], ["read_repository"])
    assert jwt_auth(server, scopes[0], creds=repo_only).status_code == 403


def resource_token(server: LiveServer, kind: str, source_id: int, level: int, scopes: list[str]) -> str:
    response = server.root(
        "POST",
        f"/{kind}/{source_id}/access_tokens",
        json={"name": uid("rat"), "scopes": scopes, "access_level": level},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def test_project_and_group_access_tokens(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"], visibility="private")
    sibling = factory.project(namespace_id=group["id"], visibility="private")
    other = factory.project(visibility="private")
    a, b, c = path_of(project), path_of(sibling), path_of(other)
    scopes = [f"repository:{x}:pull,push" for x in (a, b, c)]

    developer = resource_token(server, "projects", project["id"], 30, ["read_registry", "write_registry"])
    assert access(server, *scopes, creds=("bot", developer)) == {
        f"repository:{a}": ["pull", "push"],
        f"repository:{b}": [],
        f"repository:{c}": [],
    }
    reporter = resource_token(server, "projects", project["id"], 20, ["api"])
    assert access(server, scopes[0], creds=("bot", reporter)) == {f"repository:{a}": ["pull"]}

    group_token = resource_token(server, "groups", group["id"], 30, ["api"])
    assert access(server, *scopes, creds=("bot", group_token)) == {
        f"repository:{a}": ["pull", "push"],
        f"repository:{b}": ["pull", "push"],
        f"repository:{c}": [],
    }


def test_archived_projects_are_read_only(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="private")
    _user, token = member_with_token(factory, project, 40, ["api"])
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(Project).where(Project.id == project["id"]).values(archived=True))
    assert access(server, f"repository:{path_of(project)}:pull,push", creds=("u", token)) == {
        f"repository:{path_of(project)}": ["pull"]
    }


def test_bad_credentials_get_401(server: LiveServer, factory: Factory) -> None:
    scope = "repository:root/anything:pull"
    for creds in [("root", "glpat-not-a-real-token-000000"), ("root", "wrong password"), ("", "x")]:
        response = jwt_auth(server, scope, creds=creds)
        assert response.status_code == 401, creds
        assert response.json() == {
            "errors": [{"code": "UNAUTHORIZED", "message": "HTTP Basic: Access denied"}]
        }
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
    for header in ["Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode()]:
        assert jwt_auth(server, scope, headers={"Authorization": header}).status_code == 401
    # Bad credentials are reported before an unknown service.
    assert jwt_auth(server, scope, creds=("root", "nope"), service="other").status_code == 401
    server.runtime.auth_throttle.reset()


def test_unknown_service_is_404(server: LiveServer) -> None:
    for service in ("other", None):
        response = jwt_auth(server, "repository:a/b:pull", service=service, creds=("root", server.root_token))
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "UNAVAILABLE"


def token_with_id(server: LiveServer, user_id: int, scopes: list[str]) -> tuple[int, str]:
    response = server.root(
        "POST", f"/users/{user_id}/personal_access_tokens", json={"name": uid("tok"), "scopes": scopes}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"]), str(response.json()["token"])


def test_revoked_expired_and_blocked(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="private")
    user = factory.user()
    factory.member("projects", project["id"], user["id"], 30)
    scope = f"repository:{path_of(project)}:pull"

    token_id, token = token_with_id(server, user["id"], ["read_registry"])
    assert access(server, scope, creds=("u", token)) == {f"repository:{path_of(project)}": ["pull"]}
    assert server.root("DELETE", f"/personal_access_tokens/{token_id}").status_code == 204
    assert jwt_auth(server, scope, creds=("u", token)).status_code == 401

    expiring = server.root(
        "POST",
        f"/users/{user['id']}/personal_access_tokens",
        json={
            "name": uid("tok"),
            "scopes": ["read_registry"],
            "expires_at": str(server.clock.now().date() + dt.timedelta(days=2)),
        },
    ).json()["token"]
    assert jwt_auth(server, scope, creds=("u", expiring)).status_code == 200
    server.clock.offset = dt.timedelta(days=3)
    assert jwt_auth(server, scope, creds=("u", expiring)).status_code == 401
    server.clock.reset()

    _id, live = token_with_id(server, user["id"], ["read_registry"])
    assert server.root("POST", f"/users/{user['id']}/block").status_code == 201
    blocked = jwt_auth(server, scope, creds=("u", live))
    assert blocked.status_code == 403
    assert blocked.json()["errors"][0]["code"] == "DENIED"
    server.runtime.auth_throttle.reset()


def test_use_is_recorded_as_last_used(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    token_id, token = token_with_id(server, user["id"], ["read_registry"])
    assert jwt_auth(server, creds=("u", token)).status_code == 200
    assert server.runtime.usage is not None
    server.runtime.usage.flush()
    shown = server.root("GET", f"/personal_access_tokens/{token_id}").json()
    assert shown["last_used_at"] is not None


@pytest.fixture
def strict_throttle(server: LiveServer) -> Iterator[FailedAuthThrottle]:
    original = server.runtime.auth_throttle
    server.runtime.auth_throttle = FailedAuthThrottle(limit=3, window=60, ban=30)
    try:
        yield server.runtime.auth_throttle
    finally:
        server.runtime.auth_throttle = original


def test_failed_authentications_are_throttled(
    server: LiveServer, factory: Factory, strict_throttle: FailedAuthThrottle
) -> None:
    _user, token = factory.user_with_token(["read_registry"])
    assert jwt_auth(server, creds=("u", token)).status_code == 200  # successes never count
    for _ in range(3):
        assert jwt_auth(server, creds=("u", "glpat-wrong-wrong-wrong-wrong")).status_code == 401
    limited = jwt_auth(server, creds=("u", token))
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert limited.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    strict_throttle.reset()
    assert jwt_auth(server, creds=("u", token)).status_code == 200


def test_an_unusable_signing_key_is_503_not_500(server: LiveServer, tmp_path: Path) -> None:
    settings = server.runtime.settings
    original = settings.registry_key_file
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    settings.registry_key_file = bad
    try:
        response = jwt_auth(server, "repository:a/b:pull")
    finally:
        settings.registry_key_file = original
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert jwt_auth(server, "repository:a/b:pull").status_code == 200


def test_a_nul_byte_in_the_username_is_401(server: LiveServer) -> None:
    for password in ("some password", server.root_token):
        assert jwt_auth(server, creds=("ro\x00ot", password)).status_code == 401
    server.runtime.auth_throttle.reset()


def test_too_many_scopes_is_400(server: LiveServer) -> None:
    many = " ".join(f"repository:g/p{i}:pull" for i in range(51))
    response = jwt_auth(server, many)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "INVALID"
    fifty = " ".join(f"repository:g/p{i}:pull" for i in range(50))
    assert jwt_auth(server, fifty, "repository:g/p0:push").status_code == 200  # merged: still 50
