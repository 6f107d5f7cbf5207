"""Token usage is coalesced: last_used_at at most every 10 minutes, the 5 newest IPs at most every
minute, and nothing is written on the request path (domain-level tests on a real database)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event

from keycrew.bootstrap import Runtime, build, migrate, seed
from keycrew.clock import FixedClock
from keycrew.config import Settings
from keycrew.identity.models import User
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.usage import UsageRecorder
from tests.conftest import BACKENDS, ROOT_TOKEN, PgDatabase

T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    pg = PgDatabase.create() if request.param == "postgresql" else None
    url = pg.url if pg else f"sqlite:///{tmp_path / 'k.sqlite3'}"
    clock = FixedClock(T0)
    rt = build(Settings(data_dir=tmp_path, database_url=url, initial_root_token=ROOT_TOKEN), clock=clock)  # type: ignore[arg-type]
    migrate(rt)
    seed(rt)
    try:
        yield rt
    finally:
        rt.engine.dispose()
        if pg:
            pg.drop()


def _token(rt: Runtime) -> PersonalAccessToken:
    with rt.sessions() as db:
        token = db.get(PersonalAccessToken, 1)
        assert token is not None
        return token


def _count_writes(rt: Runtime) -> list[str]:
    statements: list[str] = []

    @event.listens_for(rt.engine, "before_cursor_execute")
    def _spy(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("UPDATE"):
            statements.append(statement)

    return statements


def test_notes_cost_no_io_and_flush_writes_once(runtime: Runtime) -> None:
    clock = runtime.clock
    assert isinstance(clock, FixedClock)
    usage = UsageRecorder(runtime.sessions, clock)
    writes = _count_writes(runtime)
    for _ in range(100):
        usage.note(1, "10.0.0.1")
    assert writes == []
    assert usage.flush() == 1
    # One UPDATE of the token, one of its owner's last_activity_on (the first use of the day).
    assert len(writes) == 2
    token = _token(runtime)
    assert token.last_used_at == T0
    assert token.last_used_ips == ["10.0.0.1"]
    with runtime.sessions() as db:
        owner = db.get(User, token.user_id)
        assert owner is not None
        assert owner.last_activity_on == T0.date()


def test_last_used_at_every_ten_minutes_and_ips_every_minute(runtime: Runtime) -> None:
    clock = runtime.clock
    assert isinstance(clock, FixedClock)
    usage = UsageRecorder(runtime.sessions, clock)
    usage.note(1, "10.0.0.1")
    usage.flush()
    clock.advance(minutes=5)
    usage.note(1, "10.0.0.1")
    assert usage.flush() == 0  # same IP, under 10 minutes: nothing to write
    usage.note(1, "10.0.0.2")
    assert usage.flush() == 1  # a new IP after a minute is recorded
    assert _token(runtime).last_used_ips == ["10.0.0.1", "10.0.0.2"]
    clock.advance(seconds=20)
    usage.note(1, "10.0.0.3")
    assert usage.flush() == 0  # a new IP within a minute of the last IP write waits
    for n in range(4, 10):
        clock.advance(minutes=2)
        usage.note(1, f"10.0.0.{n}")
        usage.flush()
    assert _token(runtime).last_used_ips == [f"10.0.0.{n}" for n in range(5, 10)]
    clock.advance(minutes=11)
    usage.note(1, "10.0.0.9")
    assert usage.flush() == 1
    assert _token(runtime).last_used_at == clock.now()
