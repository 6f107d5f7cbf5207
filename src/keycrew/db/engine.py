"""Engines and sessions for SQLite (embedded default, WAL) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import sqlite3
import time
import weakref
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, *, pool_size: int = 20, busy_timeout: float = 30.0, echo: bool = False) -> Engine:
    """``busy_timeout``: seconds a SQLite statement waits for another connection's lock before it
    fails as "database is locked" (answered 503); PostgreSQL ignores it."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": busy_timeout},
            pool_size=pool_size,
            max_overflow=pool_size,
            # The most recently used connection first: under light concurrency a few connections
            # do all the work and only theirs hold a warm page cache (2 MB each at most).
            pool_use_lifo=True,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, open transactions, so BEGIN IMMEDIATE takes the
            # write lock up front and concurrent writers queue instead of failing mid-way.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_use_lifo=True)
    _ping_when_idle(engine)
    return engine


# A pooled connection idle for longer than this is pinged before use.
IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a PostgreSQL connection before use only when it sat idle in the pool for a while.

    A connection in steady use answered a moment ago; pinging it on every checkout (SQLAlchemy's
    pool_pre_ping) costs a round trip per request. One that sat idle may have been cut by a
    server restart or a proxy: it is pinged, and a dead one is replaced before the request sees
    it (DisconnectionError makes the pool retry with a fresh connection). A connection cut while
    in steady use fails its request once and is discarded, like any other disconnect.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get("checked_in", 0.0)
        fresh = checked_in > _LOST.get(engine, 0.0)
        if fresh and time.monotonic() - checked_in < IDLE_PING_SECONDS:
            return
        record.info["pings"] = record.info.get("pings", 0) + 1
        try:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_conn.rollback()
        except Exception as exc:
            raise DisconnectionError() from exc


# When each engine last saw a connection die (time.monotonic()): the connections pooled before
# may have died with it (a server restart cuts them all) and are pinged before their next use.
_LOST: weakref.WeakKeyDictionary[Engine, float] = weakref.WeakKeyDictionary()

# PostgreSQL's SQLSTATEs of a server that cannot serve for now: connection exceptions (class 08),
# admin shutdown, crash shutdown, cannot connect now, too many connections; and, as a safety net
# (the lock order of docs/development.md avoids them), a transaction rolled back by a
# serialization failure or the deadlock detector, which may be sent again as it is.
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03", "53300", "40001", "40P01")


def unavailable_reason(exc: BaseException) -> str:
    """What to log about ``exc``: its kind and SQLSTATE, never its statement or parameters."""
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    return f"{type(exc).__name__}/{type(orig).__name__}" + (f" ({state})" if state else "")


def connection_lost(engine: Engine) -> None:
    """Note that a connection of ``engine`` died: those pooled before are pinged before reuse."""
    _LOST[engine] = time.monotonic()


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached for now (the request may be retried
    later: GitLab's 503) rather than that the request or the code is wrong: a lost or refused
    connection, a server shutting down or starting, a pool with no free connection, a SQLite
    database still locked after the busy timeout, a transaction the server rolled back to break
    a deadlock."""
    if isinstance(exc, sa_exc.TimeoutError | DisconnectionError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        orig: BaseException | None = exc.orig
    else:
        orig = exc
    if isinstance(orig, psycopg.InterfaceError):
        return True  # "the connection is closed"
    if isinstance(orig, psycopg.OperationalError):
        state = orig.sqlstate
        return state is None or state.startswith("08") or state in _UNAVAILABLE_STATES
    if isinstance(orig, sqlite3.OperationalError):
        return "database is locked" in str(orig)
    return False


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False, autoflush=True)
