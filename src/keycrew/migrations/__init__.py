"""The schema's migrations (Alembic, in this package) and running them from code: upgrade to head,
the models-versus-migrations check, and the lock that serialises first boots."""

from __future__ import annotations

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

    Nodes started together on one empty PostgreSQL database would otherwise race to create the
    same tables and the same root user. SQLite needs nothing: every write transaction there
    begins IMMEDIATE, so writers already queue.
    """
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


def diff(engine: Engine) -> list[Any]:
    """What autogenerate would change: must be empty when models and migrations agree."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_as_batch": engine.dialect.name == "sqlite"}
        )
        return list(compare_metadata(context, schema.Base.metadata))
