"""Impersonation tokens are not personal access tokens (issue 10, item 14).

GitLab's personal-access-token lookups exclude impersonation tokens: their user can neither see,
revoke nor rotate one through /personal_access_tokens/:id; admins manage them through
/users/:id/impersonation_tokens, which keeps working.
"""

from __future__ import annotations

import pytest

from tests.support.live import Factory, LiveServer

NOT_FOUND = {"message": "404 Personal Access Token Not Found"}


def _impersonation_token(server: LiveServer, user_id: int) -> dict[str, object]:
    response = server.root(
        "POST", f"/users/{user_id}/impersonation_tokens", json={"name": "imp", "scopes": ["api"]}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("DELETE", ""), ("POST", "/rotate")], ids=["get", "revoke", "rotate"]
)
def test_its_user_cannot_reach_an_impersonation_token(
    server: LiveServer, factory: Factory, method: str, suffix: str
) -> None:
    user, token = factory.user_with_token()
    imp = _impersonation_token(server, user["id"])
    response = server.request(method, f"/personal_access_tokens/{imp['id']}{suffix}", token=token)
    assert response.status_code == 404, response.text
    assert response.json() == NOT_FOUND
    # Not even with the impersonation token itself.
    response = server.request(method, f"/personal_access_tokens/{imp['id']}{suffix}", token=str(imp["token"]))
    assert response.status_code == 404, response.text
    # Untouched: still live, still the only one.
    listed = server.root("GET", f"/users/{user['id']}/impersonation_tokens").json()
    assert [(t["id"], t["revoked"], t["active"]) for t in listed] == [(imp["id"], False, True)]
    assert server.request("GET", "/user", token=str(imp["token"])).status_code == 200


def test_the_personal_token_routes_do_not_serve_impersonation_tokens_to_admins(
    server: LiveServer, factory: Factory
) -> None:
    user, _ = factory.user_with_token()
    imp = _impersonation_token(server, user["id"])
    for method, suffix in (("GET", ""), ("POST", "/rotate"), ("DELETE", "")):
        response = server.root(method, f"/personal_access_tokens/{imp['id']}{suffix}")
        assert response.status_code == 404, response.text
        assert response.json() == NOT_FOUND


def test_admins_still_manage_impersonation_tokens(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    imp = _impersonation_token(server, user["id"])
    base = f"/users/{user['id']}/impersonation_tokens/{imp['id']}"
    shown = server.root("GET", base)
    assert shown.status_code == 200, shown.text
    assert shown.json()["impersonation"] is True
    assert server.root("DELETE", base).status_code == 204
    assert server.request("GET", "/user", token=str(imp["token"])).status_code == 401
    # The user's own personal token is still theirs to see.
    own_id = server.request("GET", "/personal_access_tokens/self", token=token).json()["id"]
    assert server.request("GET", f"/personal_access_tokens/{own_id}", token=token).status_code == 200
