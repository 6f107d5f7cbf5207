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

# Redis (the rate limits' shared counters) at this URL; `.ci/run` starts it. Tests that need it
# skip when it cannot be reached, except under CI=true, where they must run.
REDIS_URL = os.environ.get("KEYCREW_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "") not in ("", "0", "false")


def redis_url_or_skip() -> str:
    """REDIS_URL if Redis answers there; else the test is skipped (failed under CI=true)."""
    import redis  # here: the plugin that imports this module must stay light

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is needed under CI=true: {exc}")
        pytest.skip(f"Redis is not reachable at {REDIS_URL} (set KEYCREW_TEST_REDIS_URL)")
    finally:
        client.close()
    return REDIS_URL
