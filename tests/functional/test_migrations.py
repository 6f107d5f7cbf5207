"""Migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from keycrew.db.engine import make_engine
from keycrew.migrations import MIGRATIONS, alembic_config, diff, upgrade
from keycrew.migrations.schema import Base
from tests.support.live import BACKENDS, database_url
from tests.support.processes import clean_env, keycrew


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with nothing in it, dropped afterwards."""
    url, pg = database_url(request.param, tmp_path)
    try:
        yield url
    finally:
        if pg is not None:
            pg.drop()


@pytest.fixture
def engine(empty_database: str) -> Iterator[Engine]:
    engine = make_engine(empty_database, pool_size=2)
    try:
        yield engine
    finally:
        engine.dispose()


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_upgrade_to_head_matches_the_models(engine: Engine) -> None:
    upgrade(engine)
    assert diff(engine) == []
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head()
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())


def test_upgrade_is_repeatable(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)
    assert diff(engine) == []


def test_one_head_and_every_revision_ships_with_the_package() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1
    shipped = {p.name for p in (MIGRATIONS / "versions").glob("*.py")}
    assert {Path(r.path).name for r in script.walk_revisions()} <= shipped


@pytest.mark.slow
def test_db_check_cli_agrees(empty_database: str, tmp_path: Path) -> None:
    result = keycrew("db", "check", env=clean_env(tmp_path / "data", KEYCREW_DATABASE_URL=empty_database))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "models and migrations agree\n"


@pytest.mark.slow
def test_db_check_cli_reports_a_schema_that_drifted(
    engine: Engine, empty_database: str, tmp_path: Path
) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE stray_table (id INTEGER PRIMARY KEY)"))
    result = keycrew("db", "check", env=clean_env(tmp_path / "data", KEYCREW_DATABASE_URL=empty_database))
    assert result.returncode == 1
    assert "stray_table" in result.stdout
    assert "keycrew: 1 difference(s) between models and migrations" in result.stderr
