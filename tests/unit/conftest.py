"""Fixtures of the unit layer: domain use cases called directly on a real SQLite database.

The schema is made once per session by the real Alembic migrations (``keycrew.bootstrap.migrate``)
and root is seeded by ``keycrew.bootstrap.seed``, into a template file. Every test gets its own
copy of that file (a file copy, not a migration), a Runtime (``keycrew.bootstrap.build``, one
engine for the session so that compiled statements are cached, its pool emptied between tests),
its own session, and a ``FixedClock`` at T0 that it may move. No server, no HTTP, no subprocess:
projects are made without a repositories directory, so no git process runs.

Factories live in tests/unit/factories.py; ``World`` bundles what a test needs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from keycrew.audit.events import Event
from keycrew.audit.models import AuditEvent
from keycrew.bootstrap import Runtime, build, migrate, seed
from keycrew.clock import FixedClock
from keycrew.config import Settings
from keycrew.context import Actor, Ctx
from keycrew.identity import passwords
from keycrew.identity.models import User
from keycrew.infra.auth_cache import AuthCache
from keycrew.infra.ratelimit import FailedAuthThrottle

# Noon UTC on a fixed day: the template is seeded then, and every test starts there.
T0 = dt.datetime(2030, 1, 15, 12, 0, tzinfo=dt.UTC)
ROOT_PASSWORD = "root-password-for-unit-tests"
ROOT_TOKEN = "glpat-keycrew-unit-root-token-0001"
SECRET_KEY = "unit-test-secret-key-0123456789abcdef"
HOST = "keycrew.example.com"
DATABASE = "keycrew.sqlite3"
# The threads in which cached settings refresh themselves (keycrew.infra.refresh.Refresher).
REFRESH_THREADS = ("keycrew-live-settings", "keycrew-rate-limits")


def _settings(data_dir: Path, **extra: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / DATABASE}",
        external_url=f"https://{HOST}",
        secret_key=SECRET_KEY,
        db_pool_size=2,
        **extra,
    )


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated to head with root seeded (at T0), made once for the whole session."""
    data_dir = tmp_path_factory.mktemp("unit-template")
    runtime = build(
        _settings(
            data_dir,
            initial_root_password=ROOT_PASSWORD,
            initial_root_token=ROOT_TOKEN,
        ),
        clock=FixedClock(T0),
    )
    try:
        migrate(runtime)
        seed(runtime)
    finally:
        runtime.engine.dispose()
    path = data_dir / DATABASE
    # Fold the write-ahead log into the file and leave rollback-journal mode, so that one file
    # holds the whole database and a plain copy of it is complete.
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return path


@dataclasses.dataclass
class World:
    """One test's instance: its runtime, its clock, its open session and root (id 1, admin)."""

    runtime: Runtime
    clock: FixedClock
    db: Session
    root: User

    def ctx(
        self,
        user: User | None,
        *,
        scopes: frozenset[str] | None = None,
        token_id: int | None = None,
        ip: str | None = "192.0.2.1",
        via: str = "api",
    ) -> Ctx:
        """A context acting as ``user`` (None: an anonymous visitor) on this test's session."""
        actor = Actor(user=user, token_id=token_id, ip=ip, scopes=scopes, via=via)
        return self.runtime.ctx(self.db, actor)

    def as_root(self) -> Ctx:
        return self.ctx(self.root)

    def as_system(self) -> Ctx:
        return self.runtime.ctx(self.db, Actor.system())

    def today(self) -> dt.date:
        return self.clock.now().date()

    def days(self, n: int) -> dt.date:
        """The date ``n`` days from today (negative: before today)."""
        return self.today() + dt.timedelta(days=n)

    def events(self, event: Event, **where: Any) -> list[AuditEvent]:
        """The audit events named ``event`` in this session, oldest first, filtered by columns."""
        query = select(AuditEvent).where(AuditEvent.event_name == event.value)
        for column, value in where.items():
            query = query.where(getattr(AuditEvent, column) == value)
        return list(self.db.scalars(query.order_by(AuditEvent.id)))


@pytest.fixture(scope="session")
def _engine_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """The Runtime (``keycrew.bootstrap.build``) whose engine every test uses, each on its own copy
    of the template: one engine keeps SQLAlchemy's compiled-statement cache warm across tests
    (a new engine per test compiles every statement again, a third of the layer's time)."""
    built = build(_settings(tmp_path_factory.mktemp("unit-db")), clock=FixedClock(T0))
    # No repositories or package directories: creating a project then runs no git process.
    built.instance = dataclasses.replace(built.instance, repositories_dir=None, packages_dir=None)
    try:
        yield built
    finally:
        built.engine.dispose()


@pytest.fixture
def runtime(_engine_runtime: Runtime, template_db: Path) -> Iterator[Runtime]:
    """A Runtime on a fresh copy of the template database, with its own clock (at T0), auth cache
    and throttle. Nothing of a previous test survives: its connections are closed and its
    database file is replaced."""
    engine = _engine_runtime.engine
    # A cached setting's background refresh started by the previous test (keycrew.infra.refresh)
    # reads through this engine: let it finish first, or it may open the database file while it is
    # being replaced and hand the next test a connection that saw no tables.
    for thread in threading.enumerate():
        if thread.name in REFRESH_THREADS:
            thread.join(timeout=10)
    engine.dispose()
    database = _engine_runtime.settings.data_dir / DATABASE
    for leftover in (database, database.with_name(f"{DATABASE}-wal"), database.with_name(f"{DATABASE}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(template_db, database)
    engine.dispose()  # and nothing opened meanwhile is used again
    fresh = dataclasses.replace(
        _engine_runtime, clock=FixedClock(T0), auth_cache=AuthCache(), auth_throttle=FailedAuthThrottle()
    )
    try:
        yield fresh
    finally:
        engine.dispose()


@pytest.fixture
def world(runtime: Runtime) -> Iterator[World]:
    """A test's session (rolled back at the end), its clock, and root."""
    assert isinstance(runtime.clock, FixedClock)
    with runtime.sessions() as db:
        root = db.get(User, 1)
        assert root is not None
        assert root.admin
        try:
            yield World(runtime, runtime.clock, db, root)
        finally:
            db.rollback()


@pytest.fixture
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its cheapest for this test, for tests that hash and check many passwords: the
    rules under test (counting, locking) do not depend on the hash's cost."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", cheap)
    monkeypatch.setattr(passwords, "_dummy", lambda: cheap.hash("keycrew-dummy-password"))
