"""The token-hygiene check itself (tests/support/hygiene.py): it records, and it would see a leak.

The check runs at the end of every session, after every test whatever their order. These tests show
that it has teeth, with planted values that are not recorded as issued tokens, so that the
session's own check is not tripped by them.
"""

from __future__ import annotations

import logging

from tests.support import hygiene
from tests.support.live import Factory, LiveServer, uid


def test_every_issued_token_is_recorded(factory: Factory) -> None:
    _, token = factory.user_with_token()
    assert token in hygiene.ISSUED_TOKENS


def test_the_log_scan_sees_a_value_logged_in_this_process() -> None:
    planted = f"hygiene-planted-{uid()}"
    logging.getLogger("keycrew.tests").warning("planted %s", planted)
    for handler in logging.getLogger().handlers:
        handler.flush()
    assert hygiene.LOG_FILE, "the token-hygiene log capture is active"
    text = hygiene.LOG_FILE[0].read_text(errors="replace")
    assert hygiene.leaked_in(text, [planted, f"hygiene-never-logged-{uid()}"]) == [planted]


def test_the_database_scan_sees_a_value_in_a_text_column(server: LiveServer, factory: Factory) -> None:
    planted = f"hygiene-planted-{uid()}"
    user = factory.user()
    assert server.root("PUT", f"/users/{user['id']}", json={"bio": planted}).status_code == 200
    assert hygiene.tables_storing(server, [planted]) == ["users"]
    assert hygiene.tables_storing(server, [f"hygiene-never-stored-{uid()}"]) == []
