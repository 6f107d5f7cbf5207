"""Functional tests: keycrew driven from outside, over HTTP with real clients (python-gitlab and its
CLI, git, the container registry tools, pip and twine) and as real processes.

The live-server fixtures (`server`, `gl`, `factory`) come from tests/support/fixtures.py, loaded
by tests/conftest.py; helpers are imported from tests/support/.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _token_hygiene(token_hygiene: None) -> None:
    """Every functional test runs under the session's token recording and its final check, also
    those that start servers or runtimes of their own (tests/support/hygiene.py)."""
