"""The schema's migrations (Alembic, in this package) and running them from code: upgrade to head,
the models-versus-migrations check, and the lock that serialises first boots."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from keycrew.migrations import schema

MIGRATIONS = Path(__file__).parent
# PostgreSQL advisory lock key taken while a process migrates and seeds ("keycrew" in ASCII).
STARTUP_LOCK = 0x6B6579637265_77


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
        connection.commit()


@contextmanager
def startup_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrating and first-boot seeding across processes and hosts.

    Processes started together on one empty database would otherwise race to create the same
    tables and the same root user. On PostgreSQL an advisory lock serialises them across hosts.
    On SQLite (one host by nature) an exclusive lock on a file beside the database does: the
    write lock of SQLite's own transactions is not enough, since Alembic runs SQLite's DDL
    outside one transaction, so two processes could both read "no schema" and both create it.
    """
    if engine.dialect.name == "sqlite":
        with _sqlite_file_lock(engine):
            yield
        return
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK})
            conn.commit()


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        yield  # private to this process: nobody to race with
        return
    with open(f"{database}.startup-lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def diff(engine: Engine) -> list[Any]:
    """What autogenerate would change: must be empty when models and migrations agree."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": engine.dialect.name == "sqlite"}
        )
        return list(compare_metadata(context, schema.Base.metadata))
