"""Loaded for every test: tests/unit/ (no server), tests/functional/ and tests/browser/.

It registers the live-server fixtures (tests/support/fixtures.py), which start nothing unless a test
asks for them, and keeps the run order cheap whatever order the tests are shuffled into: `make test`
runs them in a random order (pytest-random-order, modules shuffled and the tests in each module
shuffled), and any order must pass. With pytest-xdist the heaviest files go first, so that the two
workers finish together.
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


def _heaviest_files_first(items: list[pytest.Item]) -> None:
    """Order the files so that the slow ones (a test marked `slow`: it starts processes) come
    first, then the others by their number of tests, the most first; each file's tests keep their
    order.

    pytest-xdist's `--dist loadfile` hands each worker one file at a time in this order (see
    pytest_xdist_make_scheduler below): the long files start while the other worker still has
    plenty to do, and the run ends on short ones instead of one worker waiting for the other to
    finish a file of a minute or two (`make run` from a fresh clone is one test). Ties keep the
    shuffled order.
    """
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def weight(tests: list[pytest.Item]) -> tuple[bool, int]:
        return (not any(t.get_closest_marker("slow") for t in tests), -len(tests))

    items[:] = [item for tests in sorted(files.values(), key=weight) for item in tests]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests of each backend's `server` together; under pytest-xdist, the heaviest files
    first (_heaviest_files_first).

    pytest groups them so itself, but a shuffle plugin reorders after it; this hook runs last. The
    sorts are stable: the shuffled order of the modules, and of the tests in each module, stays
    otherwise.
    """
    items.sort(key=_server_backend)
    if hasattr(config, "workerinput"):  # a pytest-xdist worker: each collects, in the same order
        _heaviest_files_first(items)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> None:
    """Keep the workers' order of the files under `--dist loadfile`: xdist's own reorders them by
    their number of tests alone, which leaves a long single-test file (make run) for the end."""
    if config.getoption("dist", None) == "loadfile":
        config.option.loadscopereorder = False
    # None: xdist still makes its scheduler, which reads the option when it schedules.


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
