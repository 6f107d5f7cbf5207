"""The sign-in use cases on a real database, without HTTP: counting, locking, and who signs in."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from keycrew.audit.models import AuditEvent
from keycrew.bootstrap import Runtime, build, migrate, seed
from keycrew.clock import FixedClock
from keycrew.config import Settings
from keycrew.context import Actor
from keycrew.identity.models import User, UserSession
from keycrew.identity.sign_in import NEUTRAL_REFUSAL, session_user, sign_in, sign_out, unlock_user
from keycrew.identity.types import UserType
from keycrew.identity.users import create_user
from tests.support.live import BACKENDS, ROOT_TOKEN, PgDatabase

T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
PASSWORD = "correct-horse-battery"


@pytest.fixture(params=BACKENDS)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    pg = PgDatabase.create() if request.param == "postgresql" else None
    url = pg.url if pg else f"sqlite:///{tmp_path / 'k.sqlite3'}"
    rt = build(
        Settings(data_dir=tmp_path, database_url=url, initial_root_token=ROOT_TOKEN),  # type: ignore[arg-type]
        clock=FixedClock(T0),
    )
    migrate(rt)
    seed(rt)
    try:
        yield rt
    finally:
        rt.engine.dispose()
        if pg:
            pg.drop()


def _user(rt: Runtime, username: str, user_type: UserType = UserType.HUMAN) -> int:
    with rt.sessions() as db, db.begin():
        ctx = rt.ctx(db, Actor.system(db.get(User, 1)))
        user = create_user(
            ctx,
            username=username,
            email=f"{username}@example.com",
            name=username,
            password=PASSWORD,
            user_type=user_type,
        )
        return user.id


def _attempt(rt: Runtime, login: str, password: str) -> str | None:
    """One sign-in in its own transaction; returns the refusal, or None when it opened a session."""
    with rt.sessions() as db, db.begin():
        result = sign_in(rt.ctx(db, Actor(user=None, ip="192.0.2.7", via="web")), login, password)
        return result.refusal


def _count(rt: Runtime, event: str, user_id: int) -> int:
    with rt.sessions() as db:
        return int(
            db.scalar(
                select(func.count()).where(AuditEvent.event_name == event, AuditEvent.target_id == user_id)
            )
            or 0
        )


def test_concurrent_wrong_passwords_are_all_counted_and_lock_once(runtime: Runtime) -> None:
    user_id = _user(runtime, "target")
    refusals: list[str | None] = []
    workers = [
        threading.Thread(target=lambda: refusals.append(_attempt(runtime, "target", "wrong")))
        for _ in range(14)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert refusals == [NEUTRAL_REFUSAL] * 14
    with runtime.sessions() as db:
        user = db.get(User, user_id)
        assert user is not None
        # Attempts made while locked are refused without counting: exactly ten counted.
        assert user.failed_attempts == 10
        assert user.locked_at == T0
    assert _count(runtime, "user.sign_in_failed", user_id) == 10
    assert _count(runtime, "user.locked", user_id) == 1
    assert _attempt(runtime, "target", PASSWORD) == NEUTRAL_REFUSAL


def test_an_admin_unlocks_and_the_failed_count_restarts(runtime: Runtime) -> None:
    user_id = _user(runtime, "locked")
    for _ in range(10):
        _attempt(runtime, "locked", "wrong")
    with runtime.sessions() as db, db.begin():
        root = db.get(User, 1)
        user = db.get(User, user_id)
        assert root is not None
        assert user is not None
        assert unlock_user(runtime.ctx(db, Actor(user=root)), user) is True
        assert unlock_user(runtime.ctx(db, Actor(user=root)), user) is False  # nothing left to open
    assert _attempt(runtime, "locked", PASSWORD) is None
    assert _count(runtime, "user.unlocked", user_id) == 1


def test_only_active_humans_get_a_session(runtime: Runtime) -> None:
    for kind in (UserType.SERVICE_ACCOUNT, UserType.PROJECT_BOT, UserType.SUPPORT_BOT):
        _user(runtime, f"u{int(kind)}", kind)
        assert _attempt(runtime, f"u{int(kind)}", PASSWORD) == NEUTRAL_REFUSAL
    assert _attempt(runtime, "nobody", PASSWORD) == NEUTRAL_REFUSAL
    assert _attempt(runtime, "", "") == NEUTRAL_REFUSAL
    assert _attempt(runtime, "x" * 10_000, PASSWORD) == NEUTRAL_REFUSAL
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(UserSession)) == 0


def test_a_session_names_its_user_until_sign_out(runtime: Runtime) -> None:
    user_id = _user(runtime, "person")
    with runtime.sessions() as db, db.begin():
        result = sign_in(runtime.ctx(db, Actor(user=None, via="web")), "PERSON@example.com", PASSWORD)
        assert result.issued is not None
        value = result.issued.value
        assert value not in repr(result.issued)
    with runtime.sessions() as db, db.begin():
        ctx = runtime.ctx(db, Actor(user=None, via="web"))
        found = session_user(ctx, value)
        assert found is not None
        session, user = found
        assert user.id == user_id
        assert session_user(ctx, value + "x") is None
        sign_out(ctx.as_actor(Actor(user=user, via="web")), session)
    with runtime.sessions() as db:
        assert session_user(runtime.ctx(db, Actor(user=None)), value) is None
    assert _count(runtime, "user.signed_in", user_id) == 1
    assert _count(runtime, "user.signed_out", user_id) == 1
