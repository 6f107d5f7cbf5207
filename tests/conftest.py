"""Loaded for every test: tests/unit/ (no server), tests/functional/ and tests/browser/.

It registers the live-server fixtures (tests/support/fixtures.py), which start nothing unless a test
asks for them, and keeps the run order cheap whatever order the tests are shuffled into: `make test`
runs them in a random order (pytest-random-order, modules shuffled and the tests in each module
shuffled), and any order must pass.
"""

from __future__ import annotations

import pytest

from tests.support.backends import BACKEND_NAMES

pytest_plugins = ["tests.support.fixtures"]


def _server_backend(item: pytest.Item) -> int:
    """The rank of the session `server` backend an item runs against; items without one (the unit
    tests among them) come first."""
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("server") if callspec is not None else None
    return 1 + BACKEND_NAMES.index(backend) if backend in BACKEND_NAMES else 0


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests of each backend's `server` together, so that each starts once per session.

    pytest groups them so itself, but a shuffle plugin reorders after it; this hook runs last. The
    sort is stable: the shuffled order of the modules, and of the tests in each module, stays.
    """
    items.sort(key=_server_backend)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Repeat the shuffle's seed at the end, where a failure is read, with how to replay the order."""
    enabled = bool(config.getoption("random_order_enabled", default=False))
    bucket = str(config.getoption("random_order_bucket", default="default:"))
    seed = str(config.getoption("random_order_seed", default="default:"))
    if not enabled and bucket.startswith("default:") and seed.startswith("default:"):
        return
    bucket, seed = bucket.removeprefix("default:"), seed.removeprefix("default:")
    terminalreporter.write_line(
        f"test order: shuffled with --random-order-bucket={bucket} --random-order-seed={seed}; "
        f"the same options replay it (make test TEST_SEED={seed})"
    )
