"""A value read from the database that every request consults (the throttles' configuration, the
settings every request reads), refreshed in the background, and reloaded when this process
commits a change to the rows it is read from."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

log = logging.getLogger("keycrew.refresh")

T = TypeVar("T")


class Refreshed(Generic[T]):
    """A value loaded by ``load`` and refreshed every ``ttl`` seconds.

    The first ``get`` loads it; later a stale value is refreshed in a thread of its own (called
    ``thread_name``) while requests go on with the one they have (a request never waits on the
    database for it, nor on the event loop). A change committed in this process reloads it at
    once, in the committing thread (``invalidate``, wired with ``on_commit_of``); other processes
    see it within ``ttl``. If loading fails the previous value stays, else ``fallback``.
    """

    def __init__(
        self, load: Callable[[], T], *, fallback: T, ttl: float, thread_name: str, what: str
    ) -> None:
        self.load = load
        self.fallback = fallback
        self.ttl = ttl
        self.thread_name = thread_name
        self.what = what
        self._value: T | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self._refreshing = False

    def get(self) -> T:
        value = self._value
        if value is None:
            return self.reload()
        if time.monotonic() >= self._expires and not self._refreshing:
            with self._lock:
                if self._refreshing:
                    return value
                self._refreshing = True
            threading.Thread(target=self._refresh, name=self.thread_name, daemon=True).start()
        return value

    def _refresh(self) -> None:
        try:
            self.reload()
        finally:
            self._refreshing = False

    def reload(self) -> T:
        """Load the value now (the previous one, or the fallback, if that fails)."""
        try:
            value = self.load()
        except Exception as exc:  # the database may be down: keep the last value
            log.warning("%s could not be read (%s)", self.what, type(exc).__name__)
            value = self.fallback if self._value is None else self._value
        self._value = value
        self._expires = time.monotonic() + self.ttl
        return value

    def invalidate(self) -> None:
        self.reload()


def on_commit_of(
    sessions: sessionmaker[Session], kinds: tuple[type, ...], callback: Callable[[], None]
) -> None:
    """Call ``callback`` after a commit of a session of ``sessions`` that changed a row of
    ``kinds`` (each registration keeps its own mark, so several may watch the same rows)."""
    mark = f"keycrew.changed.{id(callback)}"

    def after_flush(session: Session, _context: object) -> None:
        for row in (*session.new, *session.dirty, *session.deleted):
            if isinstance(row, kinds):
                session.info[mark] = True
                return

    def after_commit(session: Session) -> None:
        # Not when a savepoint is released (SQLAlchemy says "after_commit" then too): the rows are
        # durable, and visible to the reload's own connection, only once the outermost commits.
        if session.in_nested_transaction():
            return
        if session.info.pop(mark, False):
            callback()

    def after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
        if previous.parent is None:  # the outermost rolled back (a savepoint's does not clear it)
            session.info.pop(mark, None)

    event.listen(sessions, "after_flush", after_flush)
    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_soft_rollback", after_soft_rollback)
