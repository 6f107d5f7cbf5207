"""Project and group access tokens need ``scopes``, as GitLab's REST endpoint (Grape's
``requires :scopes``): no silent default of every bot scope."""

from __future__ import annotations

import gitlab
import pytest

from tests.support.live import Factory, LiveServer


def _bot_count(server: LiveServer) -> str:
    return server.root("GET", "/users", params={"exclude_humans": True, "per_page": 1}).headers["X-Total"]


@pytest.mark.parametrize("kind", ["projects", "groups"])
def test_without_scopes_creation_is_refused(server: LiveServer, factory: Factory, kind: str) -> None:
    resource = factory.project() if kind == "projects" else factory.group()
    path = f"/{kind}/{resource['id']}/access_tokens"
    bots_before = _bot_count(server)
    for body in ({"name": "defaults"}, {"name": "null", "scopes": None}):
        response = server.root("POST", path, json=body)
        assert (response.status_code, response.json()) == (400, {"error": "scopes is missing"}), body
    # Form-encoded, as curl --data would send it.
    response = server.root("POST", path, data={"name": "form", "access_level": "30"})
    assert (response.status_code, response.json()) == (400, {"error": "scopes is missing"})
    for empty in ([], ""):
        response = server.root("POST", path, json={"name": "e", "scopes": empty})
        assert response.status_code == 400, empty
    assert server.root("GET", path).json() == []
    assert _bot_count(server) == bots_before


@pytest.mark.parametrize("kind", ["projects", "groups"])
def test_python_gitlab_raw_request_without_scopes_is_refused(
    server: LiveServer, factory: Factory, kind: str
) -> None:
    gl = server.gl()
    resource = factory.project() if kind == "projects" else factory.group()
    with pytest.raises(gitlab.GitlabHttpError) as refused:
        gl.http_post(f"/{kind}/{resource['id']}/access_tokens", post_data={"name": "defaults"})
    assert refused.value.response_code == 400
    assert "scopes is missing" in str(refused.value.error_message)
    # With scopes, exactly those are given.
    manager = (gl.projects if kind == "projects" else gl.groups).get(resource["id"]).access_tokens
    token = manager.create({"name": "ok", "scopes": ["read_repository"]})
    assert token.scopes == ["read_repository"]


def test_gitlab_cli_without_scopes_fails(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    result = server.gitlab_cli(
        "project-access-token", "create", "--project-id", str(project["id"]), "--name", "x"
    )
    assert result.returncode != 0
    assert server.root("GET", f"/projects/{project['id']}/access_tokens").json() == []
