"""The database backends every live-server test runs on. Light on purpose: the pytest plugin in
tests/support/fixtures.py (loaded for every test, the unit tests too) reads it at import time."""

from __future__ import annotations

import os

import pytest

PG_ENABLED = os.environ.get("KEYCREW_TEST_POSTGRES", "") not in ("", "0", "false")
PG_ADMIN_DSN = os.environ.get("KEYCREW_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_ENABLED, reason="PostgreSQL tests need KEYCREW_TEST_POSTGRES=1"),
        ],
    ),
]
# The backends' names, in the order their tests run (the plugin groups the tests by backend).
BACKEND_NAMES = ("sqlite", "postgresql")
