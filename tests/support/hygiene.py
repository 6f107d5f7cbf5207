"""Token values are never logged and never stored: checked after the rest of the suite ran.

The file name sorts last, so this runs after every other test module in the session; the
conftest recorded every token value the in-process servers generated and every line they logged.
"""

from __future__ import annotations

import logging

from sqlalchemy import String, Text, select

from keycrew.migrations.schema import Base
from tests.conftest import ISSUED_TOKENS, LOG_FILE, LiveServer


def test_the_log_never_contains_a_token_value(server: LiveServer) -> None:
    # Make sure this run logged something that carries a token, so the check has teeth:
    # a request with ?private_token=... is logged by the access log.
    assert server.request("GET", "/user", params={"private_token": server.root_token}).status_code == 200
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert LOG_FILE, "the conftest log capture is active"
    text = LOG_FILE[0].read_text(errors="replace")
    assert "GET /api/v4/user" in text, "access lines are captured"
    leaked = [value for value in set(ISSUED_TOKENS) if value in text]
    assert leaked == [], f"{len(leaked)} token value(s) appear in the logs"
    assert len(ISSUED_TOKENS) > 1


def test_the_database_never_stores_a_token_value(server: LiveServer) -> None:
    values = set(ISSUED_TOKENS)
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
                    if isinstance(cell, str) and any(v in cell for v in values):
                        found.append(table.name)
    assert found == []
