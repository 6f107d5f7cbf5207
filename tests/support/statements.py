"""Counting the SQL statements a live server runs for one request (query-count budgets)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from tests.support.live import LiveServer

# Background threads whose statements are not a request's: the usage writer, and the refresh of
# the rate limits' settings (every few seconds) and of the settings every request consults (Admin
# Mode, the token prefix: every second), started by whichever request finds them stale; the e-mail
# and webhook delivery workers (polling), and the threads that run background jobs.
BACKGROUND_THREADS = frozenset(
    {
        "keycrew-token-usage",
        "keycrew-rate-limits",
        "keycrew-live-settings",
        "keycrew-mail-delivery",
        "keycrew-webhooks",
    }
)
JOB_THREAD_PREFIX = "keycrew-job-"


def _background(name: str) -> bool:
    return name in BACKGROUND_THREADS or name.startswith(JOB_THREAD_PREFIX)


@contextmanager
def counting(server: LiveServer) -> Iterator[list[str]]:
    """The SQL statements the server runs while the block runs (background threads' left out)."""
    seen: list[str] = []

    def before(*args: Any) -> None:
        if not _background(threading.current_thread().name):
            seen.append(str(args[2]))

    event.listen(server.runtime.engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(server.runtime.engine, "before_cursor_execute", before)


class Counted(int):
    """A number of statements that shows them when an assertion about it fails."""

    statements: list[str]

    def __repr__(self) -> str:
        shown = "\n".join(f"  {i + 1}. {' '.join(s.split())[:300]}" for i, s in enumerate(self.statements))
        return f"{int(self)} statements:\n{shown}\n"


def statements_of(server: LiveServer, path: str, tries: int = 3) -> Counted:
    """How many statements ``GET path`` runs, once warm (caches, lazily created rows): the fewest of
    ``tries`` requests, since a background commit elsewhere in the server (a job, the usage writer)
    may invalidate the cached principal just before one of them; a statement the request itself
    runs is in every one."""
    server.root("GET", path)
    fewest: Counted | None = None
    for _ in range(tries):
        with counting(server) as seen:
            response = server.root("GET", path)
        assert response.status_code == 200, (path, response.text)
        if fewest is None or len(seen) < fewest:
            fewest = Counted(len(seen))
            fewest.statements = list(seen)
    assert fewest is not None
    return fewest
