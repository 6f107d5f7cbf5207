"""API authentication: where tokens may come from, GitLab's check order and error shapes, Sudo."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request

import gitlab
import pytest
from sqlalchemy import update

from keycrew.identity.models import User
from keycrew.tokens.models import PersonalAccessToken
from tests.support.live import Factory, LiveServer

INSUFFICIENT = "The request requires higher privileges than provided by the access token."


def _token_id(server: LiveServer, token: str) -> int:
    response = server.request("GET", "/personal_access_tokens/self", token=token)
    if response.status_code == 200:
        return int(response.json()["id"])
    from keycrew.tokens.authentication import find_token

    with server.runtime.sessions() as db:
        found = find_token(db, server.runtime.instance.secret_key, token)
        assert found is not None
        return found.id


def _set_token(server: LiveServer, token: str, **values: object) -> None:
    token_id = _token_id(server, token)
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(PersonalAccessToken).where(PersonalAccessToken.id == token_id).values(**values))


def _set_user(server: LiveServer, user_id: int, **values: object) -> None:
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(User).where(User.id == user_id).values(**values))


def test_token_accepted_from_header_bearer_and_query(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["read_user"])
    by_header = server.request("GET", "/user", token=token)
    by_bearer = server.request("GET", "/user", headers={"Authorization": f"Bearer {token}"})
    by_query = server.request("GET", "/user", params={"private_token": token})
    for response in (by_header, by_bearer, by_query):
        assert response.status_code == 200, response.text
        assert response.json()["id"] == user["id"]
    assert response.headers["content-type"].startswith("application/json")
    # python-gitlab users often pass a PAT as oauth_token (Authorization: Bearer).
    gl = gitlab.Gitlab(server.url, oauth_token=token)
    gl.auth()
    assert gl.user is not None
    assert gl.user.id == user["id"]


def test_a_token_parameter_with_an_encoded_name_authenticates(server: LiveServer, factory: Factory) -> None:
    """Query parameter names are percent-decoded, as Rack does for GitLab: ``private_t%6Fken`` is
    ``private_token`` (sent through urllib, which keeps the escape; requests would normalise it)."""
    user, token = factory.user_with_token(["read_user"])
    with urllib.request.urlopen(server.api(f"/user?private_t%6Fken={token}"), timeout=30) as response:
        assert json.loads(response.read())["id"] == user["id"]


def test_no_credentials_is_401(server: LiveServer) -> None:
    response = server.request("GET", "/user")
    assert response.status_code == 401
    assert response.json() == {"message": "401 Unauthorized"}


def test_expired_token_dies_at_midnight_utc(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date()
    token = factory.token(user["id"], ["api"], expires_at=expires.isoformat())
    midnight = dt.datetime.combine(expires, dt.time(), dt.UTC)
    server.clock.travel_to(midnight - dt.timedelta(seconds=2))
    assert server.request("GET", "/user", token=token).status_code == 200
    server.clock.travel_to(midnight + dt.timedelta(seconds=1))
    response = server.request("GET", "/user", token=token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.json()["error_description"].startswith("Token is expired")
    with pytest.raises(gitlab.GitlabAuthenticationError):
        server.gl(token).auth()


def test_revoked_token_is_invalid_token(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["api"])
    _set_token(server, token, revoked=True)
    response = server.request("GET", "/user", token=token)
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_token",
        "error_description": "Token was revoked. You have to re-authorize from the user.",
    }


def test_read_api_allows_reads_only(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["read_api"])
    assert server.request("GET", "/user", token=token).status_code == 200
    response = server.request("POST", "/groups", token=token, json={"name": "x", "path": "x"})
    assert response.status_code == 403
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": INSUFFICIENT,
        "scope": "api",
    }


def test_read_user_reads_users_but_not_projects(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["read_user"])
    assert server.request("GET", "/user", token=token).status_code == 200
    response = server.request("GET", "/projects/1", token=token)
    assert response.status_code == 403
    assert response.json()["scope"] == "api read_api"


def test_repository_only_token_cannot_use_the_api(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["read_repository"])
    response = server.request("GET", "/user", token=token)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        ("blocked", "Your account has been blocked."),
        ("banned", "Your account has been blocked."),
        ("blocked_pending_approval", "Your account is pending approval"),
        ("deactivated", "Your account has been deactivated"),
    ],
)
def test_users_not_active_are_refused(server: LiveServer, factory: Factory, state: str, reason: str) -> None:
    user, token = factory.user_with_token(["api"])
    _set_user(server, user["id"], state=state)
    response = server.request("GET", "/user", token=token)
    assert response.status_code == 403
    assert response.json()["message"].startswith(f"403 Forbidden - {reason}")


def test_sudo_by_header_and_parameter(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    by_header = server.root("GET", "/user", headers={"Sudo": user["username"]})
    by_param = server.root("GET", "/user", params={"sudo": str(user["id"])})
    assert by_header.status_code == by_param.status_code == 200
    assert by_header.json()["id"] == by_param.json()["id"] == user["id"]
    # python-gitlab sends sudo as a query parameter
    gl = server.gl()
    assert gl.users.get(user["id"], sudo=user["username"]).id == user["id"]


def test_sudo_rules(server: LiveServer, factory: Factory) -> None:
    _plain, plain_token = factory.user_with_token(["api"])
    other = factory.user()
    response = server.request("GET", "/user", token=plain_token, headers={"Sudo": other["username"]})
    assert response.status_code == 403
    assert response.json() == {"message": "403 Forbidden - Must be admin to use sudo"}

    admin = factory.user(admin=True)
    admin_token = factory.token(admin["id"], ["api"])
    response = server.request("GET", "/user", token=admin_token, headers={"Sudo": other["username"]})
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert response.json()["scope"] == "sudo"

    response = server.root("GET", "/user", headers={"Sudo": "no-such-user-anywhere"})
    assert response.status_code == 404
    assert response.json() == {"message": "404 User with ID or username 'no-such-user-anywhere' Not Found"}


def test_initial_root_token_scopes_and_expiry(server: LiveServer) -> None:
    """KEYCREW_INITIAL_ROOT_TOKEN is root's personal access token with the issue's scope list,
    expiring 365 days after it was registered."""
    me = server.root("GET", "/personal_access_tokens/self").json()
    assert (me["user_id"], me["name"], me["active"], me["revoked"]) == (1, "initial root token", True, False)
    assert me["scopes"] == [
        "api",
        "read_api",
        "read_user",
        "read_repository",
        "write_repository",
        "read_registry",
        "write_registry",
        "sudo",
        "admin_mode",
    ]
    created = dt.datetime.fromisoformat(me["created_at"].replace("Z", "+00:00")).date()
    assert me["expires_at"] == (created + dt.timedelta(days=365)).isoformat()
    # The user behind it is root, the admin.
    user = server.root("GET", "/user").json()
    assert (user["id"], user["username"], user["name"], user["is_admin"]) == (
        1,
        "root",
        "Administrator",
        True,
    )
