"""Commit hooks act on the transaction that decides, never on a savepoint.

SQLAlchemy says "before_commit" / "after_commit" when a savepoint is released and "after_rollback"
when one is rolled back, while the outermost transaction is still open and may yet roll back. The
after-commit actions (``infra.transactions``), the reload of cached settings (``infra.refresh``)
and the auth cache's invalidation (``infra.auth_cache``) must wait for the outermost commit, and a
savepoint rolled back must not make them forget what was changed before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Integer, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from keycrew.infra.auth_cache import AuthCache, Invalidation
from keycrew.infra.refresh import on_commit_of
from keycrew.infra.transactions import after_commit, on_rollback


class _Base(DeclarativeBase):
    pass


class Row(_Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


def _sessions() -> sessionmaker:  # type: ignore[type-arg]
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    return sessionmaker(engine)


def test_an_action_after_commit_waits_for_the_outermost_commit_and_never_runs_on_rollback() -> None:
    sessions = _sessions()
    done: list[str] = []
    with sessions() as db:
        with db.begin_nested():
            db.add(Row(id=1, name="a"))
            after_commit(db, lambda: done.append("committed"))
            on_rollback(db, lambda: done.append("undone"))
        assert done == []  # the savepoint was released: nothing is decided yet
        db.commit()
    assert done == ["committed"]

    done.clear()
    with sessions() as db:
        with db.begin_nested():
            db.add(Row(id=2, name="b"))
            after_commit(db, lambda: done.append("committed"))
            on_rollback(db, lambda: done.append("undone"))
        db.rollback()
    assert done == ["undone"]


def test_a_reload_on_commit_waits_for_the_outermost_commit_and_survives_a_savepoint_rollback() -> None:
    sessions = _sessions()
    seen: list[int] = []

    def reload() -> None:
        with sessions() as other:  # another connection: sees only what is committed
            seen.append(len(other.query(Row).all()))

    on_commit_of(sessions, (Row,), reload)
    with sessions() as db:
        with db.begin_nested():
            db.add(Row(id=1, name="a"))
        assert seen == []
        db.commit()
    assert seen == [1]

    with sessions() as db:
        db.add(Row(id=2, name="b"))
        db.flush()
        savepoint = db.begin_nested()
        db.add(Row(id=3, name="c"))
        db.flush()
        savepoint.rollback()
        db.commit()
    assert seen == [1, 2]


@dataclass(frozen=True)
class _Principal:
    row_id: int

    def depends_on(self) -> tuple[tuple[str, int], ...]:
        return (("r", self.row_id),)


def test_the_auth_cache_is_invalidated_at_the_outermost_commit_even_after_a_savepoint_rollback(
    tmp_path: Path,
) -> None:
    sessions = _sessions()
    cache: AuthCache[_Principal] = AuthCache()
    invalidation = Invalidation(cache, sessions.kw["bind"], tmp_path, {Row: "r"})
    invalidation.install(sessions)
    with sessions() as db:
        db.add(Row(id=1, name="a"))
        db.commit()
    cache.put("digest", _Principal(1), cache.ticket())

    with sessions() as db:
        db.get(Row, 1).name = "changed"  # type: ignore[union-attr]
        db.flush()
        savepoint = db.begin_nested()
        db.add(Row(id=2, name="b"))
        db.flush()
        savepoint.rollback()
        assert cache.get("digest") is not None  # not yet: nothing is committed
        with db.begin_nested():
            db.add(Row(id=3, name="c"))
        assert cache.get("digest") is not None  # a released savepoint decides nothing either
        db.commit()
    assert cache.get("digest") is None
