"""Internal users: exactly one per kind under concurrent first use, GitLab's names, and no API."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from keycrew.bootstrap import Runtime, build, migrate
from keycrew.config import Settings
from keycrew.context import Actor
from keycrew.identity.internal import KINDS, internal_user
from keycrew.identity.models import User
from keycrew.identity.types import SINGLETON_TYPES, UserType
from keycrew.identity.users import create_user
from keycrew.tokens.issuing import issue_token
from tests.support.live import BACKENDS, Factory, LiveServer, PgDatabase, uid

PROCESSES = 4
ALL_KINDS = sorted(int(t) for t in SINGLETON_TYPES)


def _rows_per_type(runtime: Runtime) -> dict[int, int]:
    with runtime.sessions() as db:
        return {
            int(t): int(n)
            for t, n in db.execute(
                select(User.user_type, func.count(User.id))
                .where(User.user_type.in_(ALL_KINDS))
                .group_by(User.user_type)
            ).all()
        }


def _race_in_process(url: str, data_dir: str, kinds: list[int], barrier: Any, results: Any) -> None:
    """One OS process with its own engine: at each barrier, everyone asks for the same kind."""
    found: dict[int, int] = {}
    runtime: Runtime | None = None
    try:
        settings = Settings(
            data_dir=Path(data_dir),
            database_url=url,
            secret_key="race-test-secret-key-0123456789-abcdefghij",  # type: ignore[arg-type]
        )
        runtime = build(settings)
        for kind in kinds:
            barrier.wait(timeout=60)
            with runtime.sessions() as db, db.begin():
                found[kind] = internal_user(runtime.ctx(db, Actor.system()), UserType(kind)).id
        results.put(found)
    except BaseException as exc:  # report, and do not leave the others waiting at the barrier
        barrier.abort()
        results.put({"error": repr(exc)})
    finally:
        if runtime is not None:
            runtime.engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """A migrated database with no internal user yet, on each backend: every race is a real one."""
    pg = PgDatabase.create() if request.param == "postgresql" else None
    url = pg.url if pg else f"sqlite:///{tmp_path / 'race.sqlite3'}"
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        secret_key="race-test-secret-key-0123456789-abcdefghij",  # type: ignore[arg-type]
    )
    runtime = build(settings)
    migrate(runtime)
    try:
        assert _rows_per_type(runtime) == {}
        yield runtime
    finally:
        runtime.engine.dispose()
        if pg is not None:
            pg.drop()


@pytest.mark.slow
def test_one_per_kind_across_processes(empty_db: Runtime, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=_race_in_process,
            args=(empty_db.settings.sqlalchemy_url, str(tmp_path / f"w{i}"), ALL_KINDS, barrier, results),
        )
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert all("error" not in answer for answer in answers), answers
    for kind in ALL_KINDS:
        ids = {answer[kind] for answer in answers}
        assert len(ids) == 1, f"{UserType(kind).name}: processes got {ids}"
    assert _rows_per_type(empty_db) == dict.fromkeys(ALL_KINDS, 1)


def test_one_per_kind_across_threads(empty_db: Runtime) -> None:
    threads_n = 6
    barrier = threading.Barrier(threads_n)
    answers: list[dict[int, int]] = []
    errors: list[BaseException] = []

    def race() -> None:
        found: dict[int, int] = {}
        try:
            for kind in ALL_KINDS:
                barrier.wait(timeout=60)
                with empty_db.sessions() as db, db.begin():
                    found[kind] = internal_user(empty_db.ctx(db, Actor.system()), UserType(kind)).id
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        answers.append(found)

    threads = [threading.Thread(target=race) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for kind in ALL_KINDS:
        assert len({answer[kind] for answer in answers}) == 1
    assert _rows_per_type(empty_db) == dict.fromkeys(ALL_KINDS, 1)


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Runtime]:
    """A migrated, empty SQLite instance whose external URL names another host."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        external_url="https://forge.example.org:8443/gitlab",
        secret_key="fresh-test-secret-key-0123456789-abcdefghij",  # type: ignore[arg-type]
    )
    runtime = build(settings)
    migrate(runtime)
    yield runtime
    runtime.engine.dispose()


EXPECTED = {
    UserType.GHOST: ("ghost", "ghost@example.com", "Ghost User"),
    UserType.ALERT_BOT: ("alert-bot", "alert@forge.example.org", "GitLab Alert Bot"),
    UserType.MIGRATION_BOT: (
        "migration-bot",
        "noreply+gitlab-migration-bot@forge.example.org",
        "GitLab Migration Bot",
    ),
    UserType.SECURITY_BOT: ("GitLab-Security-Bot", "security-bot@forge.example.org", "GitLab Security Bot"),
    UserType.SUPPORT_BOT: ("support-bot", "support@forge.example.org", "GitLab Support Bot"),
    UserType.AUTOMATION_BOT: ("automation-bot", "automation@forge.example.org", "GitLab Automation Bot"),
    UserType.ADMIN_BOT: ("GitLab-Admin-Bot", "admin-bot@forge.example.org", "GitLab Admin Bot"),
    UserType.VISUAL_REVIEW_BOT: (
        "visual-review-bot",
        "visual_review@forge.example.org",
        "Gitlab Visual Review Bot",
    ),
    UserType.DUO_CODE_REVIEW_BOT: ("GitLabDuo", "gitlab-duo@forge.example.org", "GitLab Duo"),
}


def test_names_and_emails_are_gitlabs(fresh: Runtime) -> None:
    assert set(EXPECTED) == set(KINDS) == SINGLETON_TYPES
    with fresh.sessions() as db, db.begin():
        ctx = fresh.ctx(db, Actor.system())
        for kind, (username, email, name) in EXPECTED.items():
            user = internal_user(ctx, kind)
            assert (user.username, user.email, user.name) == (username, email, name)
            assert user.user_type == int(kind)
            assert user.password_digest is None
            assert user.admin is (kind is UserType.ADMIN_BOT)
            if kind is UserType.GHOST:
                assert user.confirmed_at is None
                assert user.private_profile is False
                assert "Ghost User" in user.bio
            else:
                assert user.confirmed_at is not None
                assert user.private_profile is True
            # Asking again finds the same user.
            assert internal_user(ctx, kind).id == user.id


def test_taken_names_are_uniquified(fresh: Runtime) -> None:
    with fresh.sessions() as db, db.begin():
        ctx = fresh.ctx(db, Actor.system())
        create_user(ctx, username="Ghost", email="ghost@example.com", name="A person", password="x" * 12)
        create_user(
            ctx, username="support-bot", email="support@forge.example.org", name="Another", password="x" * 12
        )
        ghost = internal_user(ctx, UserType.GHOST)
        assert (ghost.username, ghost.email) == ("ghost1", "ghost1@example.com")
        support = internal_user(ctx, UserType.SUPPORT_BOT)
        assert (support.username, support.email) == ("support-bot1", "support1@forge.example.org")


def test_internal_users_cannot_use_the_api(server: LiveServer) -> None:
    with server.runtime.sessions() as db, db.begin():
        ctx = server.runtime.ctx(db, Actor.system())
        bot = internal_user(ctx, UserType.ALERT_BOT)
        issued = issue_token(ctx, bot, name=uid("t"), scopes=["api"], expires_at=None)
        value, bot_id = issued.value, bot.id
    for method, path in (("GET", "/user"), ("GET", "/users"), ("POST", "/groups")):
        response = server.request(method, path, token=value, json={})
        assert response.status_code == 403, (method, path)
        assert response.json() == {
            "message": "403 Forbidden - This action cannot be performed by internal users"
        }
    # Nor can an admin issue one a token through the API.
    response = server.root(
        "POST", f"/users/{bot_id}/personal_access_tokens", json={"name": "x", "scopes": ["api"]}
    )
    assert response.status_code == 403


def test_internal_users_are_listed_as_bots(server: LiveServer, factory: Factory) -> None:
    with server.runtime.sessions() as db, db.begin():
        bot = internal_user(server.runtime.ctx(db, Actor.system()), UserType.SUPPORT_BOT)
        bot_id, username = bot.id, bot.username
    _user, token = factory.user_with_token(["read_user"])
    for who in (server.root_token, token):
        listed = server.request("GET", "/users", token=who, params={"username": username}).json()
        assert [u["id"] for u in listed] == [bot_id]
        assert listed[0]["bot"] is True
    detail = server.root("GET", f"/users/{bot_id}").json()
    assert detail["user_type"] == "support_bot"
    assert detail["using_license_seat"] is False
    response = server.request(
        "GET", "/users", token=token, params={"username": username, "exclude_internal": True}
    )
    assert response.json() == []
    response = server.request("GET", "/users", token=token, params={"username": username, "humans": "true"})
    assert response.json() == []
