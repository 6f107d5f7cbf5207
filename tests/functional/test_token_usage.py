"""Token usage is coalesced: last_used_at at most every 10 minutes, the 5 newest IPs at most every
minute, and nothing is written on the request path (domain-level tests on a real database)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, select

from keycrew.bootstrap import Runtime, build, migrate, seed
from keycrew.clock import FixedClock
from keycrew.config import Settings
from keycrew.identity.models import User
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.usage import token_usage_recorder
from tests.support.live import BACKENDS, ROOT_TOKEN, PgDatabase

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
    usage = token_usage_recorder(runtime.sessions, clock)
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
    usage = token_usage_recorder(runtime.sessions, clock)
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


def test_flush_waits_for_a_deletion_of_the_owner_instead_of_deadlocking(runtime: Runtime) -> None:
    """A user's deletion locks the user, then deletes the tokens; the usage writer must take the
    same locks in the same order (a CI run on PostgreSQL once lost DELETE /users/:id to a deadlock)."""
    import threading

    from keycrew.actions.deletion import destroy_user
    from keycrew.context import Actor
    from keycrew.identity.users import create_user
    from keycrew.tokens.personal import create_personal_access_token

    with runtime.sessions() as db, db.begin():
        ctx = runtime.ctx(db, Actor.system(db.get(User, 1)))
        user = create_user(
            ctx, username="leaving", email="leaving@example.com", name="Leaving", password=None
        )
        token_id = create_personal_access_token(ctx, user, name="t", scopes=["api"]).token.id
        user_id = user.id
    usage = token_usage_recorder(runtime.sessions, runtime.clock)
    usage.note(token_id, "10.0.0.1")
    flushed: list[int] = []
    with runtime.sessions() as db, db.begin():
        ctx = runtime.ctx(db, Actor.system())
        doomed = db.get(User, user_id)
        assert doomed is not None
        if runtime.engine.dialect.name == "postgresql":
            # Hold the user's row lock first, as destroy_user does, while the writer runs.
            db.execute(select(User.id).where(User.id == user_id).with_for_update())
            writer = threading.Thread(target=lambda: flushed.append(usage.flush()))
            writer.start()
            writer.join(timeout=1.5)  # it now waits for the user's row
            assert writer.is_alive()
        else:
            writer = None
        destroy_user(ctx, doomed, skip_authorization=True)
    if writer is not None:
        writer.join(timeout=10)
        assert flushed == [0]  # it found the token gone, and neither side deadlocked
    with runtime.sessions() as db:
        assert db.get(User, user_id) is None
        assert db.get(PersonalAccessToken, token_id) is None
