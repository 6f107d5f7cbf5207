"""Two keycrew nodes on one database: a revocation on one stops the token on the other within 1 s.

Each node keeps a positive authentication cache; invalidation travels through PostgreSQL
LISTEN/NOTIFY, and at once through the invalidation ring in the shared data dir (these nodes share
one; tests/functional/test_auth_cache_race.py has nodes that share only PostgreSQL).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.live import Factory, LiveServer, start_server


@pytest.fixture
def second_node(server: LiveServer) -> Iterator[LiveServer]:
    url = server.runtime.settings.sqlalchemy_url
    yield from start_server(server.backend, server.data_dir, url=url)


def _status(node: LiveServer, token: str) -> int:
    return node.request("GET", "/personal_access_tokens/self", token=token).status_code


def _wait_for(node: LiveServer, token: str, status: int, limit: float = 1.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < limit + 0.5:
        if _status(node, token) == status:
            return time.monotonic() - start
        time.sleep(0.02)
    raise AssertionError(f"node still answers {_status(node, token)} after {limit + 0.5:.1f}s")


def test_revocation_reaches_the_other_node_within_a_second(
    server: LiveServer, second_node: LiveServer, factory: Factory
) -> None:
    user, token = factory.user_with_token(["api"])
    token_id = server.request("GET", "/personal_access_tokens/self", token=token).json()["id"]
    for _ in range(3):  # the second node caches the principal
        assert _status(second_node, token) == 200
    assert len(second_node.runtime.auth_cache) >= 1
    assert server.root("DELETE", f"/personal_access_tokens/{token_id}").status_code == 204
    assert _status(server, token) == 401  # at once on the node that changed it
    elapsed = _wait_for(second_node, token, 401)
    assert elapsed <= 1.0

    # Blocking the owner travels the same way.
    token2 = factory.token(user["id"], ["api"])
    for _ in range(3):
        assert _status(second_node, token2) == 200
    assert server.root("POST", f"/users/{user['id']}/block").status_code == 201
    assert _wait_for(second_node, token2, 403) <= 1.0


def test_rotation_on_one_node_kills_the_old_value_on_the_other(
    server: LiveServer, second_node: LiveServer, factory: Factory
) -> None:
    _user, token = factory.user_with_token(["api"])
    assert _status(second_node, token) == 200
    rotated = server.request("POST", "/personal_access_tokens/self/rotate", token=token)
    assert rotated.status_code == 200
    assert _wait_for(second_node, token, 401) <= 1.0
    assert _status(second_node, rotated.json()["token"]) == 200
