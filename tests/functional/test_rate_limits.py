"""Request throttles as GitLab's (Rack::Attack): instance settings, 429 "Retry later" with the
RateLimit-* headers, python-gitlab's obey_rate_limit, per-user overrides (API, audited), git HTTP.

Each test counts for a fresh user, or a client address of its own (X-Forwarded-For, which the
test server believes from 127.0.0.1), so no test spends another's budget. Windows are fixed and
epoch-aligned: a test that must see a refusal uses a period of about an hour (a window boundary
falls between its few requests with negligible odds); the python-gitlab test uses 2 s on purpose.
"""

from __future__ import annotations

import logging
import random
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import gitlab
import pytest
import requests

from keycrew.infra.ratestore import RedisStore
from tests.support.backends import redis_url_or_skip
from tests.support.git import basic, info_refs
from tests.support.live import Factory, LiveServer, start_server, uid

THROTTLE_SETTINGS = [
    f"{throttle}_{suffix}"
    for throttle in (
        "throttle_authenticated_api",
        "throttle_unauthenticated_api",
        "throttle_authenticated_git_http",
    )
    for suffix in ("enabled", "requests_per_period", "period_in_seconds")
]


def _hour() -> int:
    """A period of about an hour, different in each test: its counters' keys are the test's own."""
    return random.randint(3000, 3500)


@pytest.fixture
def restore_settings(server: LiveServer) -> Iterator[dict[str, Any]]:
    before = server.root("GET", "/application/settings").json()
    yield before
    response = server.root("PUT", "/application/settings", json={k: before[k] for k in THROTTLE_SETTINGS})
    assert response.status_code == 200, response.text


def _set_override(server: LiveServer, user_id: int, requests_per_period: int, period: int) -> dict[str, Any]:
    response = server.root(
        "PUT",
        f"/users/{user_id}/rate_limit",
        json={"requests_per_period": requests_per_period, "period_in_seconds": period},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _assert_throttled(response: requests.Response, name: str, limit: int, period: int) -> None:
    assert response.status_code == 429, response.text
    assert response.text == "Retry later\n"
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["RateLimit-Name"] == name
    assert response.headers["RateLimit-Limit"] == str(-(-limit * 60 // period))
    assert int(response.headers["RateLimit-Observed"]) == limit + 1
    assert response.headers["RateLimit-Remaining"] == "0"
    reset = int(response.headers["RateLimit-Reset"])
    assert reset % period == 0  # the end of an epoch-aligned window
    assert 0 < int(response.headers["Retry-After"]) <= period
    assert response.headers["RateLimit-ResetTime"].endswith("GMT")


def test_throttle_settings_have_gitlab_names_defaults_and_bounds(
    server: LiveServer, factory: Factory, restore_settings: dict[str, Any]
) -> None:
    current = restore_settings
    for name in THROTTLE_SETTINGS:
        assert name in current
    changed = server.root(
        "PUT",
        "/application/settings",
        json={
            "throttle_unauthenticated_api_enabled": False,
            "throttle_unauthenticated_api_requests_per_period": 123,
            "throttle_unauthenticated_api_period_in_seconds": 30,
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["throttle_unauthenticated_api_enabled"] is False
    assert body["throttle_unauthenticated_api_requests_per_period"] == 123
    assert body["throttle_unauthenticated_api_period_in_seconds"] == 30
    for bad in (
        {"throttle_authenticated_api_requests_per_period": 0},
        {"throttle_authenticated_api_period_in_seconds": -1},
    ):
        response = server.root("PUT", "/application/settings", json=bad)
        assert response.status_code == 400, response.text
    _user, token = factory.user_with_token(["api"])
    assert server.request("PUT", "/application/settings", token=token, json=bad).status_code == 403
    events = server.root(
        "GET", "/audit_events", params={"entity_type": "Gitlab::Audit::InstanceScope"}
    ).json()
    assert any(
        e["details"].get("changes", {}).get("throttle_unauthenticated_api_requests_per_period") == 123
        for e in events
    )


def test_authenticated_api_limit_answers_429_with_gitlab_headers(
    server: LiveServer, factory: Factory, restore_settings: dict[str, Any]
) -> None:
    period = _hour()
    # Root keeps a budget of its own while the instance's limit is tiny (an override, not a switch).
    _set_override(server, 1, 1_000_000, period)
    try:
        response = server.root(
            "PUT",
            "/application/settings",
            json={
                "throttle_authenticated_api_enabled": True,
                "throttle_authenticated_api_requests_per_period": 3,
                "throttle_authenticated_api_period_in_seconds": period,
            },
        )
        assert response.status_code == 200, response.text
        user, token = factory.user_with_token(["api"])
        remaining = []
        for _ in range(3):
            ok = server.request("GET", "/user", token=token)
            assert ok.status_code == 200, ok.text
            assert ok.headers["RateLimit-Name"] == "throttle_authenticated_api"
            remaining.append(int(ok.headers["RateLimit-Remaining"]))
        assert remaining == [2, 1, 0]
        _assert_throttled(
            server.request("GET", "/user", token=token), "throttle_authenticated_api", 3, period
        )
        # Per user: another token of the same user shares the budget, another user does not.
        second = factory.token(user["id"], ["api"])
        assert server.request("GET", "/user", token=second).status_code == 429
        _other, other_token = factory.user_with_token(["api"])
        assert server.request("GET", "/user", token=other_token).status_code == 200
        # Any method, any API route.
        assert server.request("POST", "/projects", token=token, json={"name": uid("p")}).status_code == 429
    finally:
        before = {k: restore_settings[k] for k in THROTTLE_SETTINGS}
        assert server.root("PUT", "/application/settings", json=before).status_code == 200
        assert server.root("DELETE", "/users/1/rate_limit").status_code == 204


def test_unauthenticated_api_limit_counts_per_client_address(
    server: LiveServer, restore_settings: dict[str, Any]
) -> None:
    period = _hour()
    response = server.root(
        "PUT",
        "/application/settings",
        json={
            "throttle_unauthenticated_api_enabled": True,
            "throttle_unauthenticated_api_requests_per_period": 2,
            "throttle_unauthenticated_api_period_in_seconds": period,
        },
    )
    assert response.status_code == 200, response.text
    address = f"198.51.100.{random.randint(1, 254)}"
    client = {"X-Forwarded-For": address}
    for _ in range(2):
        assert server.request("GET", "/projects", headers=client).status_code == 200
    _assert_throttled(
        server.request("GET", "/projects", headers=client), "throttle_unauthenticated_api", 2, period
    )
    # Another address, and an authenticated caller from the same address, are not limited by it.
    assert (
        server.request("GET", "/projects", headers={"X-Forwarded-For": "198.51.100.255"}).status_code == 200
    )
    assert server.root("GET", "/projects", headers=client).status_code == 200
    # Disabled: nothing is counted or refused.
    server.root("PUT", "/application/settings", json={"throttle_unauthenticated_api_enabled": False})
    assert server.request("GET", "/projects", headers=client).status_code == 200


def test_python_gitlab_obeys_the_limit_and_completes(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    _set_override(server, user["id"], 5, 2)
    client = server.gl(token)  # obey_rate_limit=True is python-gitlab's default
    names = [client.users.get(user["id"]).username for _ in range(12)]
    assert names == [user["username"]] * 12
    # The same loop without obeying: python-gitlab raises GitLab's 429.
    statuses = []
    for _ in range(30):
        try:
            client.http_get(f"/users/{user['id']}", obey_rate_limit=False)
        except gitlab.exceptions.GitlabHttpError as error:
            statuses.append(error.response_code)
            break
    assert statuses == [429]


def test_overrides_are_for_admins_and_audited(
    server: LiveServer, factory: Factory, restore_settings: dict[str, Any]
) -> None:
    # The instance's throttle on, at GitLab's default limit (7200 an hour, 120 a minute).
    on = server.root("PUT", "/application/settings", json={"throttle_authenticated_api_enabled": True})
    assert on.status_code == 200, on.text
    user, token = factory.user_with_token(["api"])
    path = f"/users/{user['id']}/rate_limit"
    assert server.root("GET", path).status_code == 404
    assert server.request("PUT", path, token=token, json={"requests_per_period": 10**6}).status_code == 403
    assert server.request("GET", path, token=token).status_code == 403
    assert (
        server.root("PUT", "/users/999999999/rate_limit", json={"requests_per_period": 5}).status_code == 404
    )
    assert server.root("PUT", path, json={}).status_code == 400
    assert server.root("PUT", path, json={"requests_per_period": 0}).status_code == 400
    set_ = server.root("PUT", path, json={"requests_per_period": 50_000})
    assert set_.status_code == 200, set_.text
    body = set_.json()
    assert body["user_id"] == user["id"]
    assert body["requests_per_period"] == 50_000
    # The instance's authenticated API period (GitLab's default, an hour).
    assert body["period_in_seconds"] == 3600
    assert server.root("GET", path).json()["requests_per_period"] == 50_000
    # The override is the user's limit now (RateLimit-Limit is per minute: 50,000 an hour).
    assert server.request("GET", "/user", token=token).headers["RateLimit-Limit"] == "834"
    assert server.root("DELETE", path).status_code == 204
    assert server.root("DELETE", path).status_code == 404
    assert server.request("GET", "/user", token=token).headers["RateLimit-Limit"] == "120"
    names = [
        e["event_name"]
        for e in server.root(
            "GET", "/audit_events", params={"entity_type": "User", "entity_id": user["id"]}
        ).json()
    ]
    assert "user.rate_limit_set" in names
    assert "user.rate_limit_removed" in names


def test_override_applies_while_the_instance_throttle_is_off(
    server: LiveServer, factory: Factory, restore_settings: dict[str, Any]
) -> None:
    server.root("PUT", "/application/settings", json={"throttle_authenticated_api_enabled": False})
    user, token = factory.user_with_token(["api"])
    _free, free_token = factory.user_with_token(["api"])
    assert "RateLimit-Name" not in server.request("GET", "/user", token=free_token).headers
    period = _hour()
    _set_override(server, user["id"], 2, period)
    assert server.request("GET", "/user", token=token).status_code == 200
    assert server.request("GET", "/user", token=token).status_code == 200
    _assert_throttled(server.request("GET", "/user", token=token), "throttle_authenticated_api", 2, period)


def test_git_http_limit_per_user(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["read_repository"])
    project = factory.project(visibility="private", initialize_with_readme=True)
    factory.member("projects", project["id"], user["id"], 30)
    period = _hour()
    _set_override(server, user["id"], 2, period)
    credentials = basic(user["username"], token)
    full = project["path_with_namespace"]
    for _ in range(2):
        assert info_refs(server, full, headers=credentials).status_code == 200
    _assert_throttled(
        info_refs(server, full, headers=credentials), "throttle_authenticated_git_http", 2, period
    )
    # Root is not limited by the user's budget.
    assert info_refs(server, full, headers=basic("root", server.root_token)).status_code == 200


def test_git_http_limit_per_deploy_token(
    server: LiveServer, factory: Factory, restore_settings: dict[str, Any]
) -> None:
    """A deploy token has a budget of its own (GitLab's ``deploy_token:<id>`` key), apart from
    every user's."""
    project = factory.project(visibility="private", initialize_with_readme=True)
    period = _hour()
    on = server.root(
        "PUT",
        "/application/settings",
        json={
            "throttle_authenticated_git_http_enabled": True,
            "throttle_authenticated_git_http_requests_per_period": 2,
            "throttle_authenticated_git_http_period_in_seconds": period,
        },
    )
    assert on.status_code == 200, on.text
    made = server.root(
        "POST", f"/projects/{project['id']}/deploy_tokens", json={"name": "d", "scopes": ["read_repository"]}
    )
    assert made.status_code == 201, made.text
    credentials = basic(made.json()["username"], made.json()["token"])
    full = project["path_with_namespace"]
    for _ in range(2):
        assert info_refs(server, full, headers=credentials).status_code == 200
    _assert_throttled(
        info_refs(server, full, headers=credentials), "throttle_authenticated_git_http", 2, period
    )
    assert info_refs(server, full, headers=basic("root", server.root_token)).status_code == 200


# --- counters shared by every node through Redis ----------------------------------------------------


@pytest.fixture
def redis_nodes(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[LiveServer]]:
    """Two more nodes on the session server's database, both configured with KEYCREW_REDIS_URL and
    a key prefix of this test's own (only that prefix is deleted afterwards)."""
    url = redis_url_or_skip()
    prefix = f"keycrew-test:{uuid.uuid4().hex}:"
    monkeypatch.setenv("KEYCREW_REDIS_URL", url)
    monkeypatch.setenv("KEYCREW_REDIS_KEY_PREFIX", prefix)
    database = server.runtime.settings.sqlalchemy_url
    started: list[Iterator[LiveServer]] = []
    try:
        nodes = []
        for _ in range(2):
            start = start_server(server.backend, server.data_dir, url=database)
            nodes.append(next(start))
            started.append(start)
        assert all(isinstance(node.runtime.rate_limiter.store, RedisStore) for node in nodes)
        yield nodes
    finally:
        for start in started:
            next(start, None)  # runs the node's shutdown
        cleaner = RedisStore(url, prefix)
        cleaner.clear_prefix()
        cleaner.close()


def test_two_nodes_share_api_counters_through_redis(
    server: LiveServer, factory: Factory, redis_nodes: list[LiveServer]
) -> None:
    user, token = factory.user_with_token(["api"])
    period = _hour()
    _set_override(server, user["id"], 4, period)
    first, second = redis_nodes
    remaining = []
    for node in (first, second, first, second):
        response = node.request("GET", "/user", token=token)
        assert response.status_code == 200, response.text
        remaining.append(response.headers["RateLimit-Remaining"])
    assert remaining == ["3", "2", "1", "0"]
    _assert_throttled(first.request("GET", "/user", token=token), "throttle_authenticated_api", 4, period)
    assert second.request("GET", "/user", token=token).status_code == 429


def test_two_nodes_share_the_failed_authentication_ban_through_redis(
    factory: Factory, redis_nodes: list[LiveServer]
) -> None:
    project = factory.project(visibility="private", initialize_with_readme=True)
    full = project["path_with_namespace"]
    first, second = redis_nodes
    attacker = {"X-Forwarded-For": f"203.0.113.{random.randint(1, 254)}"}
    limit = first.runtime.auth_throttle.limit
    assert second.runtime.auth_throttle.limit == limit
    for attempt in range(limit):
        node = (first, second)[attempt % 2]
        assert info_refs(node, full, headers={**attacker, **basic("x", "glpat-wrong")}).status_code == 401
    for node in (first, second):
        banned = info_refs(node, full, headers={**attacker, **basic("root", node.root_token)})
        assert banned.status_code == 429
        assert int(banned.headers["Retry-After"]) > 0


def test_redis_out_of_reach_fails_open_never_500(
    server: LiveServer, factory: Factory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("KEYCREW_REDIS_URL", f"redis://127.0.0.1:{closed}/0")
    user, token = factory.user_with_token(["api"])
    _set_override(server, user["id"], 1, _hour())
    project = factory.project(visibility="private", initialize_with_readme=True)
    start = start_server(server.backend, server.data_dir, url=server.runtime.settings.sqlalchemy_url)
    node = next(start)
    try:
        with caplog.at_level(logging.WARNING, logger="keycrew.ratelimit"):
            for _ in range(3):  # over the user's limit of 1: nothing is counted, everything passes
                assert node.request("GET", "/user", token=token).status_code == 200
                assert node.request("GET", "/projects").status_code == 200
            for _ in range(3):
                wrong = info_refs(node, project["path_with_namespace"], headers=basic("x", "glpat-wrong"))
                assert wrong.status_code == 401
        assert any("Redis cannot be reached" in r.getMessage() for r in caplog.records)
    finally:
        next(start, None)
