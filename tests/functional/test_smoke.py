"""The service answers, authenticates root, and refuses unknown tokens alike."""

from __future__ import annotations

import gitlab
import pytest

from tests.support.live import LiveServer


def test_root_authenticates_with_python_gitlab(server: LiveServer) -> None:
    gl = server.gl()
    gl.auth()
    assert gl.user is not None
    assert gl.user.username == "root"
    assert gl.user.id == 1
    assert gl.user.web_url == f"{server.url}/root"


@pytest.mark.parametrize("token", ["glpat-unknown-token-value-123456", "x", "glpat-" + "a" * 600])
def test_unknown_and_malformed_tokens_fail_alike(server: LiveServer, token: str) -> None:
    response = server.request("GET", "/user", token=token)
    assert response.status_code == 401
    assert response.json() == {"message": "401 Unauthorized"}
    with pytest.raises(gitlab.GitlabAuthenticationError):
        server.gl(token).auth()


def test_health_endpoints(server: LiveServer) -> None:
    import requests

    for path in ("/-/health", "/-/liveness", "/-/readiness"):
        response = requests.get(server.url + path, timeout=10)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


def test_nul_bytes_are_refused_without_a_500(server: LiveServer) -> None:
    assert server.root("GET", "/projects/a%00b").status_code == 404
    assert server.root("GET", "/groups/a%00b/members").status_code == 404
    response = server.root("POST", "/groups", json={"name": "a\x00b", "path": "ab"})
    assert response.status_code == 400
    assert server.root("GET", "/users", params={"search": "a\x00"}).status_code == 400
