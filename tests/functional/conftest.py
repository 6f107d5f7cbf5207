"""Functional tests: keycrew driven from outside, over HTTP with real clients (python-gitlab and its
CLI, git, the container registry tools, pip and twine) and as real processes.

The live-server fixtures (`server`, `gl`, `factory`) come from tests/support/fixtures.py, loaded
by tests/conftest.py; helpers are imported from tests/support/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.live import LiveServer


@pytest.fixture(scope="session", autouse=True)
def _token_hygiene(token_hygiene: None) -> None:
    """Every functional test runs under the session's token recording and its final check, also
    those that start servers or runtimes of their own (tests/support/hygiene.py)."""


@pytest.fixture
def group_owners_create_service_accounts(server: LiveServer) -> Iterator[None]:
    """Let top-level group Owners create their groups' service accounts (off by default, as in
    GitLab) for one test."""
    name = "allow_top_level_group_owners_to_create_service_accounts"
    assert server.root("PUT", "/application/settings", json={name: True}).status_code == 200
    yield
    assert server.root("PUT", "/application/settings", json={name: False}).status_code == 200
