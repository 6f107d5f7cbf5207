"""Token values are never logged and never stored: checked at the end of every test session.

The `token_hygiene` fixture (tests/support/fixtures.py) records, for the whole session, every token
value and session secret the in-process servers generate (ISSUED_TOKENS) and every line logged in
this process (LOG_FILE). The checks run after the tests they cover by construction, not because of
any module's name or place in the run:

- check_server: for the session's `server` of each backend, in the teardown of `_servers` (which
  keeps them to the end of the session), that is after every test that used it. It makes sure the
  log check has teeth (a token that was just issued, and the root token, sent in a query string
  that the access log records), then scans every text column of that server's database for the
  recorded values.
- check_log: in the teardown of `token_hygiene`, the last session fixture to go, after every test
  of the session. It greps the whole log for the recorded values.

A failing check is reported as an error in the teardown of the session's last test and fails the
run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import String, Text, select

from keycrew.migrations.schema import Base
from tests.support.live import ROOT_TOKEN, Factory, LiveServer

ISSUED_TOKENS: list[str] = [ROOT_TOKEN]
LOG_FILE: list[Path] = []
# The backends whose server check_server has checked in this session.
CHECKED_SERVERS: list[str] = []


@contextmanager
def recording(path: Path) -> Iterator[None]:
    """Every token value the in-process servers generate, and every line they log, for the checks
    below that grep the logs and the databases for those values."""
    from keycrew.alerts import service as alerts
    from keycrew.identity import sign_in
    from keycrew.tokens import secrets as token_secrets

    original = token_secrets.generate
    original_session_secret = sign_in.new_session_secret
    original_integration_token = alerts._new_token

    def recording_generate(kind_prefix: str, instance_prefix: str = "") -> str:
        value = original(kind_prefix, instance_prefix)
        ISSUED_TOKENS.append(value)
        return value

    def recording_session_secret() -> str:
        value = original_session_secret()
        ISSUED_TOKENS.append(value)
        return value

    def recording_integration_token(ctx: Any) -> tuple[str, str]:
        # Alert integrations' tokens are GitLab's 32 hex digits, not keycrew's token format.
        value, kept = original_integration_token(ctx)
        ISSUED_TOKENS.append(value)
        return value, kept

    token_secrets.generate = recording_generate  # type: ignore[assignment]
    sign_in.new_session_secret = recording_session_secret  # type: ignore[assignment]
    alerts._new_token = recording_integration_token
    handler = logging.FileHandler(path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    for noisy in ("sqlalchemy", "asyncio", "urllib3", "multipart", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    LOG_FILE.append(path)
    try:
        yield
    finally:
        token_secrets.generate = original  # type: ignore[assignment]
        sign_in.new_session_secret = original_session_secret  # type: ignore[assignment]
        alerts._new_token = original_integration_token
        root.removeHandler(handler)
        root.setLevel(previous_level)
        handler.close()


class _Search:
    """Finds which of many values occur in a text in one pass over it.

    A session records a few thousand values, and its log and databases hold megabytes: looking for
    each value in turn took half a minute at the end of a run. A value that occurs in a text lies
    within a run of the characters values are made of, so only such runs, as long as the shortest
    value at least, are looked into: the slices of each value length are looked up in a set.
    """

    def __init__(self, values: Iterable[str]) -> None:
        self.by_length: dict[int, set[str]] = {}
        for value in set(values):
            if value:
                self.by_length.setdefault(len(value), set()).add(value)
        chars = sorted({char for group in self.by_length.values() for value in group for char in value})
        shortest = min(self.by_length, default=1)
        self.runs = re.compile(f"[{''.join(re.escape(char) for char in chars)}]{{{shortest},}}")

    def found_in(self, text: str) -> set[str]:
        found: set[str] = set()
        if not self.by_length:
            return found
        for run in self.runs.findall(text):
            for length, values in self.by_length.items():
                for start in range(len(run) - length + 1):
                    if run[start : start + length] in values:
                        found.add(run[start : start + length])
        return found


def leaked_in(text: str, values: Iterable[str]) -> list[str]:
    """The values that appear in ``text``."""
    return sorted(_Search(values).found_in(text))


def tables_storing(server: LiveServer, values: Iterable[str]) -> list[str]:
    """The tables of ``server``'s database with a text cell that contains one of ``values``."""
    search = _Search(values)
    found: list[str] = []
    with server.runtime.sessions() as db:
        for table in Base.metadata.sorted_tables:
            columns = [
                c for c in table.columns if isinstance(c.type, String | Text) or hasattr(c.type, "impl")
            ]
            if not columns:
                continue
            for row in db.execute(select(*columns)).all():
                for cell in row:
                    if isinstance(cell, str) and search.found_in(cell):
                        found.append(table.name)
    return found


def check_server(server: LiveServer) -> None:
    """The end of a session server's life: the database never stores a token value."""
    # Make sure this run logged something that carries a token, so the log check has teeth:
    # a request with ?private_token=... is logged by the access log. Also with a token issued
    # right here, so that there is one whichever tests ran before.
    assert server.request("GET", "/user", params={"private_token": server.root_token}).status_code == 200
    root_id = server.root("GET", "/user").json()["id"]
    issued = Factory(server).token(root_id, ["read_user"])
    assert server.request("GET", "/user", params={"private_token": issued}).status_code == 200
    found = tables_storing(server, ISSUED_TOKENS)
    assert found == [], f"token hygiene: token values stored in clear in {server.backend} tables {found}"
    CHECKED_SERVERS.append(server.backend)


def check_log() -> None:
    """The end of the session: the log never contains a token value."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert LOG_FILE, "the token-hygiene log capture is active"
    text = LOG_FILE[0].read_text(errors="replace")
    if CHECKED_SERVERS:
        assert "GET /api/v4/user" in text, "access lines are captured"
    leaked = leaked_in(text, ISSUED_TOKENS)
    assert leaked == [], f"token hygiene: {len(leaked)} token value(s) appear in the logs"
    if CHECKED_SERVERS:
        assert len(ISSUED_TOKENS) > 1


def summary() -> str:
    databases = ", ".join(CHECKED_SERVERS) or "none (no session server ran)"
    return (
        f"token hygiene: {len(set(ISSUED_TOKENS))} token values checked against the log "
        f"and the databases of: {databases}"
    )
