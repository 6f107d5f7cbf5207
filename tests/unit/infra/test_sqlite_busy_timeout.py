"""SQLite's busy timeout is a setting (KEYCREW_DB_BUSY_TIMEOUT, 30 s by default): the time a
statement waits for another connection's write lock before the request is answered 503. The
outage tests lower it so as not to wait half a minute each."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from keycrew.config import Settings
from keycrew.db.engine import is_unavailable, make_engine


def test_the_default_is_thirty_seconds_and_the_environment_sets_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Settings(data_dir=tmp_path).db_busy_timeout == 30.0
    monkeypatch.setenv("KEYCREW_DB_BUSY_TIMEOUT", "2.5")
    assert Settings(data_dir=tmp_path).db_busy_timeout == 2.5
    monkeypatch.setenv("KEYCREW_DB_BUSY_TIMEOUT", "0")
    with pytest.raises(ValueError, match="db_busy_timeout"):
        Settings(data_dir=tmp_path)


def test_a_write_waits_the_timeout_then_fails_as_unavailable(tmp_path: Path) -> None:
    database = tmp_path / "busy.sqlite3"
    engine = make_engine(f"sqlite:///{database}", pool_size=1, busy_timeout=0.2)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (n INTEGER)"))
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 200
        holder = sqlite3.connect(database, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            with pytest.raises(OperationalError) as locked, engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (1)"))
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert "database is locked" in str(locked.value)
        assert is_unavailable(locked.value)
    finally:
        engine.dispose()
    default = make_engine(f"sqlite:///{database}", pool_size=1)
    try:
        with default.connect() as conn:
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000
    finally:
        default.dispose()
