"""keycrew.db.reads on both databases: statements run straight on the driver give what SQLAlchemy
gives (types, IN lists, literals), a read request's reads see committed data only, a session's
see its own pending changes, and every statement is reported to the engine's listeners."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    func,
    select,
)
from sqlalchemy.orm import Session

from keycrew.db.base import UTCDateTime
from keycrew.db.engine import make_engine
from keycrew.db.reads import HeldReads, PoolReads, SessionReads, Statements, prepared, statements_for
from tests.support.backends import BACKENDS
from tests.support.live import scratch_engine

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
    Column("active", Boolean),
    Column("due", Date, nullable=True),
    Column("at", UTCDateTime),
)
T = things.c
AT = dt.datetime(2030, 1, 15, 12, 30, 45, 123000, tzinfo=dt.UTC)

BY_ID = prepared(select(things).where(T.id == bindparam("id")))
BY_IDS = prepared(select(T.id).where(T.id.in_(bindparam("ids", expanding=True))).order_by(T.id))
DUE_AFTER = prepared(select(T.id).where(T.due > bindparam("day"), T.active.is_(True)).order_by(T.id))
FIRST_TWO = prepared(select(T.id).order_by(T.id).limit(2))


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with scratch_engine(request.param, tmp_path, metadata) as built:
        with built.begin() as conn:
            conn.execute(
                things.insert(),
                [
                    {
                        "id": i,
                        "name": f"thing {i}",
                        "active": i % 2 == 1,
                        "due": dt.date(2030, 1, i),
                        "at": AT,
                    }
                    for i in range(1, 8)
                ],
            )
        yield built


def test_a_prepared_statement_gives_what_sqlalchemy_gives(engine: Engine) -> None:
    reads = PoolReads(engine)
    try:
        row = reads.first(BY_ID, {"id": 3})
        missing = reads.first(BY_ID, {"id": 99})
    finally:
        reads.close()
    with engine.connect() as conn:
        expected = conn.execute(BY_ID, {"id": 3}).one()
    assert row is not None
    assert missing is None
    assert tuple(row) == tuple(expected)
    assert (row.name, row.active, row.due, row.at) == ("thing 3", True, dt.date(2030, 1, 3), AT)
    assert row.at.tzinfo is not None


@pytest.mark.parametrize("ids", [[], [4], [2, 5, 7], [1, 2, 3, 4, 5, 6, 7, 8]])
def test_an_in_list_of_any_length(engine: Engine, ids: list[int]) -> None:
    reads = PoolReads(engine)
    try:
        assert reads.scalars(BY_IDS, {"ids": ids}) == [i for i in ids if i <= 7]
    finally:
        reads.close()


def test_parameters_go_through_their_types(engine: Engine) -> None:
    reads = PoolReads(engine)
    try:
        assert reads.scalars(DUE_AFTER, {"day": dt.date(2030, 1, 3)}) == [5, 7]
        assert reads.scalars(FIRST_TWO) == [1, 2]
    finally:
        reads.close()


def test_statements_built_per_call_keep_their_own_values(engine: Engine) -> None:
    """Not prepared: found by structure, their literal values read from each statement."""
    reads = PoolReads(engine)
    try:
        for low, high in ((1, 3), (4, 6), (2, 2)):
            query = select(T.id).where(T.id >= low, T.id <= high, T.name.like("thing%")).order_by(T.id)
            assert reads.scalars(query) == list(range(low, high + 1))
        for limit in (1, 3):
            assert reads.scalars(select(T.id).order_by(T.id.desc()).limit(limit)) == [7, 6, 5][:limit]
        listed = select(T.id).where(T.id.in_([2, 3]), T.active.is_(True))
        assert reads.scalars(listed) == [3]
        counted = select(func.count()).select_from(things).where(T.active.is_(False))
        assert reads.scalar(counted) == 3
    finally:
        reads.close()


def test_statements_built_per_call_are_remembered_within_a_limit(engine: Engine) -> None:
    statements = Statements(engine.dialect)
    statements.DYNAMIC_LIMIT = 5
    for width in range(1, 12):
        query = select(*[T.id] * 1, T.name).where(*[T.id > i for i in range(width)])
        _compiled, values = statements.bind(query, None)
        assert len(values) == width
    assert len(statements._dynamic) == 5


def test_a_read_request_sees_committed_rows_and_a_session_its_own(engine: Engine) -> None:
    with Session(engine) as db:
        db.execute(things.insert().values(id=50, name="pending", active=True, at=AT))
        outside = PoolReads(engine)
        try:
            assert outside.first(BY_ID, {"id": 50}) is None
        finally:
            outside.close()
        inside = SessionReads(db)
        row = inside.first(BY_ID, {"id": 50})
        assert row is not None
        assert row.name == "pending"
        db.rollback()
    reads = PoolReads(engine)
    try:
        assert reads.first(BY_ID, {"id": 50}) is None
    finally:
        reads.close()


def test_every_statement_is_reported_to_the_engine_listeners(engine: Engine) -> None:
    seen: list[str] = []

    def before(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", before)
    reads = PoolReads(engine)
    try:
        reads.first(BY_ID, {"id": 1})
        reads.scalars(BY_IDS, {"ids": [1, 2]})
    finally:
        reads.close()
        event.remove(engine, "before_cursor_execute", before)
    assert len(seen) == 2
    assert all("things" in sql for sql in seen)


def test_a_read_connection_goes_back_to_the_pool_without_a_transaction(engine: Engine) -> None:
    for _ in range(5):  # more than the pool holds, were a connection kept
        reads = PoolReads(engine)
        reads.first(BY_ID, {"id": 1})
        reads.close()
    with engine.begin() as conn:  # a writer is not held up by a reader's open transaction
        conn.execute(things.update().where(T.id == 1).values(name="renamed"))
    reads = PoolReads(engine)
    try:
        row = reads.first(BY_ID, {"id": 1})
        assert row is not None
        assert row.name == "renamed"
    finally:
        reads.close()
    assert statements_for(engine.dialect) is statements_for(engine.dialect)


def test_a_held_connection_serves_its_thread_and_sees_every_commit(tmp_path: Path) -> None:
    """HeldReads (SQLite's reads on the event loop) keeps one connection across units of work:
    no checkout per request, yet each statement sees what was committed before it, nothing is
    left open between requests that would hold up a writer, and another thread never shares it."""
    with scratch_engine("sqlite", tmp_path, metadata) as engine:
        with engine.begin() as conn:
            conn.execute(things.insert().values(id=1, name="first", active=True, at=AT))
        held = HeldReads(engine)
        assert held.reads() is held
        assert held.first(BY_ID, {"id": 1}).name == "first"
        held.close()  # a unit of work's end
        checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
        with engine.begin() as conn:  # a writer is not held up between requests
            conn.execute(things.update().where(T.id == 1).values(name="renamed"))
        assert held.first(BY_ID, {"id": 1}).name == "renamed"
        assert engine.pool.checkedout() == checked_out  # type: ignore[attr-defined]
        elsewhere: list[object] = []
        thread = threading.Thread(target=lambda: elsewhere.append(held.reads()))
        thread.start()
        thread.join()
        assert isinstance(elsewhere[0], PoolReads)
        held.release()
        assert engine.pool.checkedout() == checked_out - 1  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="SQLite"):
        HeldReads(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"))
