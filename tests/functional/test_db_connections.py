"""Pooled PostgreSQL connections (db/engine.py): pinged only after sitting idle, and a connection
the server cut while idle is replaced before any request sees it."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import OperationalError
from sqlalchemy import Engine, func, select, text

from keycrew.db import engine as engine_module
from keycrew.db.engine import make_engine
from keycrew.db.reads import PoolReads
from tests.support.backends import PG_ADMIN_DSN, PG_ENABLED
from tests.support.live import PgDatabase

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_ENABLED, reason="PostgreSQL tests need KEYCREW_TEST_POSTGRES=1"),
]


@pytest.fixture
def pg() -> Iterator[tuple[Engine, PgDatabase]]:
    database = PgDatabase.create()
    engine = make_engine(database.url, pool_size=2)
    try:
        yield engine, database
    finally:
        engine.dispose()
        database.drop()


def _cut_every_connection(database: PgDatabase) -> int:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database.name,)
        ).fetchall()
    return len(rows)


def test_a_connection_in_steady_use_is_pinged_only_when_new(pg: tuple[Engine, PgDatabase]) -> None:
    engine, _ = pg
    infos = []
    for _ in range(5):
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 2")).scalar() == 2
            infos.append(conn.connection.info)
    assert all(info is infos[0] for info in infos)  # one pooled connection (LIFO)
    assert infos[0]["pings"] == 1


def test_a_connection_cut_while_idle_is_replaced_before_use(
    pg: tuple[Engine, PgDatabase], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, database = pg
    with engine.connect() as conn:
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    assert _cut_every_connection(database) >= 1
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)  # it has now been idle long enough
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != backend


def test_a_read_connection_cut_in_use_fails_its_request_and_leaves_the_pool(
    pg: tuple[Engine, PgDatabase],
) -> None:
    """keycrew.db.reads: a GET's connection killed under it fails that request once (the driver's
    error, not another from giving the connection back); the next read gets a live connection."""
    engine, database = pg
    backend = select(func.pg_backend_pid())
    reads = PoolReads(engine)
    try:
        first = reads.scalar(backend)
        assert _cut_every_connection(database) >= 1
        with pytest.raises(OperationalError):
            reads.scalar(backend)
    finally:
        reads.close()
    again = PoolReads(engine)
    try:
        assert again.scalar(backend) not in (None, first)
    finally:
        again.close()
