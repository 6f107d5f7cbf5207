"""Application settings and the admin token API."""

from __future__ import annotations

import datetime as dt

from tests.support.live import Factory, LiveServer


def test_settings_read_and_update(server: LiveServer, factory: Factory) -> None:
    current = server.root("GET", "/application/settings")
    assert current.status_code == 200
    body = current.json()
    assert body["max_personal_access_token_lifetime"] == 365
    assert body["require_personal_access_token_expiry"] is True
    try:
        changed = server.root(
            "PUT",
            "/application/settings",
            json={
                "max_personal_access_token_lifetime": "30",
                "require_personal_access_token_expiry": "false",
            },
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["max_personal_access_token_lifetime"] == 30
        user = factory.user()
        # Expiry may now be omitted: the token never expires.
        response = server.root(
            "POST", f"/users/{user['id']}/personal_access_tokens", json={"name": "forever", "scopes": ["api"]}
        )
        assert response.json()["expires_at"] is None
        # ... but at most 30 days ahead when given.
        late = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=31)).isoformat()
        response = server.root(
            "POST",
            f"/users/{user['id']}/personal_access_tokens",
            json={"name": "late", "scopes": ["api"], "expires_at": late},
        )
        assert response.status_code == 400
        bad = server.root("PUT", "/application/settings", json={"max_personal_access_token_lifetime": 0})
        assert bad.status_code == 400
    finally:
        server.root(
            "PUT",
            "/application/settings",
            json={"max_personal_access_token_lifetime": 365, "require_personal_access_token_expiry": True},
        )
    _u, token = factory.user_with_token(["api"])
    assert server.request("GET", "/application/settings", token=token).status_code == 403


def test_admin_token_identify_and_revoke(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    found = server.root("POST", "/admin/token", json={"token": token})
    assert found.status_code == 200, found.text
    assert found.json()["user_id"] == user["id"]
    assert "token" not in found.json()
    assert (
        server.root("POST", "/admin/token", json={"token": "glpat-not-a-real-token-value-1"}).status_code
        == 404
    )
    assert server.root("POST", "/admin/token", json={"token": "ghp_somethingelse"}).status_code == 422
    assert server.request("POST", "/admin/token", token=token, json={"token": token}).status_code == 403
    assert server.root("DELETE", "/admin/token", json={"token": token}).status_code == 204
    assert server.request("GET", "/user", token=token).status_code == 401


def test_admin_token_knows_deploy_tokens(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    created = server.root(
        "POST", f"/projects/{project['id']}/deploy_tokens", json={"name": "d", "scopes": ["read_repository"]}
    )
    assert created.status_code == 201, created.text
    value = created.json()["token"]
    found = server.root("POST", "/admin/token", json={"token": value})
    assert found.status_code == 200
    assert found.json()["token_type"] == "deploy_token"
    assert server.root("DELETE", "/admin/token", json={"token": value}).status_code == 204
    listed = server.root("GET", f"/projects/{project['id']}/deploy_tokens/{created.json()['id']}").json()
    assert listed["revoked"] is True
