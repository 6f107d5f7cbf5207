"""A positive cache for authentication, invalidated on change on every node.

Lookups by digest hit memory; a miss costs one indexed query. Entries live at most ``ttl`` seconds
(the safety net). Any committed change to a token or a user invalidates the affected entries at
once in this process (SQLAlchemy session events) and, through the database's notification
channel, in every other process within a second (PostgreSQL LISTEN/NOTIFY; on SQLite, which is
one host by nature, a generation file in the data directory that workers stat at most every 100 ms).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

log = logging.getLogger("keycrew.auth.cache")
CHANNEL = "keycrew_auth"


class Cached(Protocol):
    """What the cache keeps: anything that names the rows it was built from (by kind and id)."""

    def depends_on(self) -> tuple[tuple[str, int], ...]: ...


V = TypeVar("V", bound=Cached)


class AuthCache(Generic[V]):
    """Values by credential digest, each dropped when a row it ``depends_on`` changes."""

    def __init__(self, ttl: float = 10.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()
        self._generation_check: Callable[[], bool] | None = None

    def get(self, digest: str) -> V | None:
        if self._generation_check is not None and self._generation_check():
            self.clear()
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(digest, None)
            return None
        return entry[1]

    def put(self, digest: str, value: V) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl, value)

    def invalidate(self, changed: set[tuple[str, int]]) -> None:
        if not changed:
            return
        with self._lock:
            for digest, (_expiry, value) in list(self._entries.items()):
                if any(row in changed for row in value.depends_on()):
                    self._entries.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# -- change tracking: which tokens and users a transaction touched --------------------------------

_PENDING = "keycrew_auth_changes"


def _changes(session: Session) -> dict[str, Any]:
    changes: dict[str, Any] = session.info.setdefault(_PENDING, {"rows": set(), "all": False})
    return changes


def _pending(changes: dict[str, Any] | None) -> bool:
    return bool(changes and (changes["rows"] or changes["all"]))


def _payload(changes: dict[str, Any]) -> str:
    if changes["all"]:
        return "*"
    text_payload = ",".join(f"{kind}{row_id}" for kind, row_id in sorted(changes["rows"]))
    # NOTIFY payloads are limited to 8000 bytes; a huge change just clears every cache.
    return text_payload if len(text_payload) < 7000 else "*"


def parse_payload(payload: str) -> tuple[set[tuple[str, int]], bool]:
    """The rows a notification names ("t12,u3": kind letter and id), or everything for "*"."""
    if payload == "*":
        return set(), True
    rows: set[tuple[str, int]] = set()
    for part in payload.split(","):
        if part[:1].isalpha() and part[1:].isdigit():
            rows.add((part[:1], int(part[1:])))
    return rows, False


class Invalidation:
    """Wires a sessionmaker so that committed changes to watched rows reach every node's cache.

    ``watched`` maps each mapped class whose rows cached values depend on to its one-letter kind
    (the kinds ``Cached.depends_on`` names).
    """

    def __init__(
        self, cache: AuthCache[Any], engine: Engine, data_dir: Path, watched: dict[type[Any], str]
    ) -> None:
        self.cache = cache
        self.watched = watched
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self.generation_file = data_dir / "auth-generation"
        self._seen_mtime: float | None = None
        self._last_stat = 0.0
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        if not self.postgres:
            self.generation_file.parent.mkdir(parents=True, exist_ok=True)
            self.generation_file.touch(exist_ok=True)
            self._seen_mtime = self._mtime()
            cache._generation_check = self._generation_changed

    # -- local tracking ------------------------------------------------------------------------
    def install(self, sessions: sessionmaker[Session]) -> None:
        event.listen(sessions, "after_flush", self._after_flush)
        event.listen(sessions, "do_orm_execute", self._on_execute)
        event.listen(sessions, "before_commit", self._before_commit)
        event.listen(sessions, "after_commit", self._after_commit)
        event.listen(sessions, "after_rollback", self._after_rollback)

    def _after_flush(self, session: Session, _context: Any) -> None:
        changes = _changes(session)
        for obj in list(session.dirty) + list(session.deleted):
            kind = self.watched.get(type(obj))
            if kind is not None:
                changes["rows"].add((kind, obj.id))

    def _on_execute(self, state: ORMExecuteState) -> None:
        bulk = state.is_update or state.is_delete
        if bulk and state.bind_mapper is not None and state.bind_mapper.class_ in self.watched:
            # A bulk statement: we cannot tell which rows, so every cache starts over.
            _changes(state.session)["all"] = True

    def _before_commit(self, session: Session) -> None:
        changes = session.info.get(_PENDING)
        if changes is None or not _pending(changes):
            return
        if self.postgres:
            # Delivered to every listener when (and only if) this transaction commits.
            session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": _payload(changes)},
            )

    def _after_commit(self, session: Session) -> None:
        changes = session.info.pop(_PENDING, None)
        if changes is None or not _pending(changes):
            return
        if changes["all"]:
            self.cache.clear()
        else:
            self.cache.invalidate(changes["rows"])
        if not self.postgres:
            self._bump_generation()

    def _after_rollback(self, session: Session) -> None:
        session.info.pop(_PENDING, None)

    # -- other processes: SQLite generation file ------------------------------------------------
    def _mtime(self) -> float | None:
        try:
            return os.stat(self.generation_file).st_mtime_ns / 1e9
        except FileNotFoundError:
            return None

    def _bump_generation(self) -> None:
        now = time.time()
        os.utime(self.generation_file, (now, now))
        self._seen_mtime = self._mtime()

    def _generation_changed(self) -> bool:
        now = time.monotonic()
        if now - self._last_stat < 0.1:
            return False
        self._last_stat = now
        mtime = self._mtime()
        if mtime != self._seen_mtime:
            self._seen_mtime = mtime
            return True
        return False

    # -- other processes: PostgreSQL LISTEN ------------------------------------------------------
    def start(self) -> None:
        if self.postgres and self._listener is None:
            self._listener = threading.Thread(target=self._listen, name="keycrew-auth-listener", daemon=True)
            self._listener.start()

    def stop(self) -> None:
        self._stop.set()

    def _listen(self) -> None:
        import psycopg

        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Anything may have changed while we were not listening.
                    self.cache.clear()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            rows, everything = parse_payload(note.payload)
                            if everything:
                                self.cache.clear()
                            else:
                                self.cache.invalidate(rows)
            except Exception:
                log.warning("auth cache listener lost its connection; clearing and reconnecting")
                self.cache.clear()
                self._stop.wait(1.0)
