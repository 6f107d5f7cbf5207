"""KEYCREW_INSTANCE_TOKEN_PREFIX: reported by /application/settings, in front of every token issued.

These tests run a server of their own, started with the prefix in its environment as an operator
would set it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import gitlab
import pytest

from tests.support.live import BACKENDS, Factory, LiveServer, start_server, uid

PREFIX = "acme-"


@pytest.fixture(scope="module", params=BACKENDS)
def prefixed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    nodes = start_server(request.param, tmp_path_factory.mktemp(f"prefixed-{request.param}"))
    with pytest.MonkeyPatch.context() as env:
        # Settings read the environment once, when the server is built.
        env.setenv("KEYCREW_INSTANCE_TOKEN_PREFIX", PREFIX)
        node = next(nodes)
    yield node
    nodes.close()


def test_application_settings_report_the_instance_prefix(prefixed: LiveServer) -> None:
    settings = prefixed.gl().settings.get()
    assert settings.personal_access_token_prefix == f"{PREFIX}glpat-"


def test_default_prefix_without_an_instance_prefix(server: LiveServer) -> None:
    assert server.gl().settings.get().personal_access_token_prefix == "glpat-"


def test_issued_tokens_carry_the_prefix_authenticate_and_are_recognised(prefixed: LiveServer) -> None:
    factory = Factory(prefixed)
    user = factory.user()
    gl = prefixed.gl()
    created = gl.users.get(user["id"]).personal_access_tokens.create({"name": uid("pat"), "scopes": ["api"]})
    assert created.token.startswith(f"{PREFIX}glpat-")
    as_user = prefixed.gl(created.token)
    as_user.auth()
    assert as_user.user is not None
    assert as_user.user.id == user["id"]
    found = prefixed.root("POST", "/admin/token", json={"token": created.token})
    assert found.status_code == 200, found.text
    assert (found.json()["id"], found.json()["token_type"]) == (created.id, "personal_access_token")

    project = factory.project()
    bot = gl.projects.get(project["id"]).access_tokens.create({"name": uid("bot"), "scopes": ["read_api"]})
    assert bot.token.startswith(f"{PREFIX}glpat-")
    assert prefixed.request("GET", f"/projects/{project['id']}", token=bot.token).status_code == 200
    assert prefixed.root("POST", "/admin/token", json={"token": bot.token}).json()["user_id"] == bot.user_id

    deploy = gl.projects.get(project["id"]).deploytokens.create(
        {"name": uid("dep"), "scopes": ["read_repository"]}
    )
    assert deploy.token.startswith(f"{PREFIX}gldt-")
    recognised = prefixed.root("POST", "/admin/token", json={"token": deploy.token}).json()
    assert (recognised["id"], recognised["token_type"]) == (deploy.id, "deploy_token")

    # A rotated token keeps the prefix, and revoking by value works with it.
    rotated = as_user.personal_access_tokens.rotate(created.id)
    assert rotated["token"].startswith(f"{PREFIX}glpat-")
    assert prefixed.root("DELETE", "/admin/token", json={"token": rotated["token"]}).status_code == 204
    with pytest.raises(gitlab.GitlabAuthenticationError):
        prefixed.gl(rotated["token"]).auth()
    expiry = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)).isoformat()
    impersonation = gl.users.get(user["id"]).impersonationtokens.create(
        {"name": uid("imp"), "scopes": ["read_api"], "expires_at": expiry}
    )
    assert impersonation.token.startswith(f"{PREFIX}glpat-")
