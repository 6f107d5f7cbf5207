"""A positive cache for authentication, invalidated on change on every worker and node.

Lookups by digest hit memory; a miss costs one indexed query. Entries live at most ``ttl`` seconds
(the safety net). Any committed change to a token or a user invalidates the affected entries:

- in this process at once (SQLAlchemy session events, after the commit);
- in every process of the node at once: the committing process appends the changed rows to a
  small ring in a memory-mapped file of the data directory (``auth-invalidations``) before its
  request answers, and every process reads the ring's 8-byte counter on each lookup (one memory
  read; the ring itself only when the counter moved);
- on other nodes within a second through PostgreSQL LISTEN/NOTIFY (SQLite is one host by nature,
  so its processes share the data directory and the ring); while a node's listener is not
  connected, its cache is off rather than possibly stale.

A miss loads outside the cache's lock (in a thread, or on the loop); an invalidation committed
between the load and the store must not leave the loaded value behind. So each miss takes a
``ticket`` (the cache's generation, which every invalidation moves) before loading, and ``put``
drops the value when the generation moved meanwhile.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

log = logging.getLogger("keycrew.auth.cache")
CHANNEL = "keycrew_auth"
SHARED_FILE = "auth-invalidations"


class Cached(Protocol):
    """What the cache keeps: anything that names the rows it was built from (by kind and id)."""

    def depends_on(self) -> tuple[tuple[str, int], ...]: ...


V = TypeVar("V", bound=Cached)


class AuthCache(Generic[V]):
    """Values by credential digest, each dropped when a row it ``depends_on`` changes.

    A miss is filled as ``ticket = cache.ticket()``, load, ``cache.put(digest, value, ticket)``:
    the value is stored only if no invalidation happened since the ticket was taken.
    """

    def __init__(self, ttl: float = 10.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, V]] = {}
        self._lock = threading.Lock()
        # Moves with every invalidation this process applies (local, shared ring, NOTIFY).
        self._generation = 0
        self._shared: SharedInvalidations | None = None
        self._shared_count: memoryview | None = None  # the shared counter, read in place
        self._shared_seen = 0
        # Off while this node could miss invalidations (its LISTEN connection is down).
        self._suspended = False
        # A test seam: called between the load and the store of a miss.
        self.before_store: Callable[[str], None] | None = None

    def share(self, shared: SharedInvalidations) -> None:
        """Follow (and so apply) the invalidations every process of the node publishes."""
        with self._lock:
            self._shared = shared
            self._shared_count = shared.counter
            self._shared_seen = shared.count()

    def get(self, digest: str) -> V | None:
        count = self._shared_count
        if count is not None and count[0] != self._shared_seen:
            self._catch_up()
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(digest, None)
            return None
        return entry[1]

    def ticket(self) -> int:
        """Taken before loading a missed value; ``put`` needs it."""
        if self._shared is not None:
            self._catch_up()
        return self._generation

    def put(self, digest: str, value: V, ticket: int) -> bool:
        """Store ``value`` unless an invalidation happened since ``ticket`` (then it may be stale:
        the next lookup loads again). Returns whether it was stored."""
        if self.before_store is not None:
            self.before_store(digest)
        if self._shared is not None:
            self._catch_up()
        with self._lock:
            if self._generation != ticket or self._suspended:
                return False
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl, value)
            return True

    def invalidate(self, changed: set[tuple[str, int]]) -> None:
        if not changed:
            return
        with self._lock:
            self._invalidate_locked(changed)

    def clear(self) -> None:
        with self._lock:
            self._clear_locked()

    def suspend(self) -> None:
        """Stop caching (and forget everything) until ``resume``."""
        with self._lock:
            self._suspended = True
            self._clear_locked()

    def resume(self) -> None:
        with self._lock:
            self._suspended = False
            self._clear_locked()

    def __len__(self) -> int:
        return len(self._entries)

    def _invalidate_locked(self, changed: set[tuple[str, int]]) -> None:
        self._generation += 1
        for digest, (_expiry, value) in list(self._entries.items()):
            if any(row in changed for row in value.depends_on()):
                self._entries.pop(digest, None)

    def _clear_locked(self) -> None:
        self._generation += 1
        self._entries.clear()

    def _catch_up(self) -> None:
        """Apply what other processes of the node published since we last looked. The usual case
        costs one 8-byte read of shared memory."""
        shared = self._shared
        assert shared is not None
        if shared.count() == self._shared_seen:
            return
        with self._lock:
            seen, count = self._shared_seen, shared.count()
            if count == seen:
                return
            published = shared.read(seen, count)
            self._shared_seen = count
            if published is None or published[1]:
                self._clear_locked()
            else:
                self._invalidate_locked(published[0])


class SharedInvalidations:
    """The node's recent invalidations: a ring of (kind, row id) slots in a memory-mapped file that
    every process of the node maps, behind a counter of all entries ever written.

    Writers (a commit that changed tokens or users, rare) take an exclusive ``flock`` and write the
    slots before the counter; readers read the counter on every lookup and the slots only when it
    moved. A reader that fell more than a ring behind (or finds the file reset) clears its cache.
    """

    HEADER = 16  # bytes before the slots; the first 8 count the entries ever written
    SLOT = struct.Struct("=qq")  # kind letter's code (0: everything) and row id
    SLOTS = 4096
    SIZE = HEADER + SLOTS * SLOT.size

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._pid = 0
        self._fd = -1
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._map = mmap.mmap(fd, self.SIZE)
        # The counter as an 8-byte integer in place: one aligned load per read.
        self.counter = memoryview(self._map)[:8].cast("Q")

    def _open(self) -> int:
        """This process's descriptor of the file (flock locks belong to an open file description,
        so a forked process opens its own)."""
        if self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def count(self) -> int:
        value: int = self.counter[0]
        return value

    def publish(self, rows: set[tuple[str, int]], everything: bool) -> None:
        entries = [(0, 0)] if everything or len(rows) > self.SLOTS // 2 else [(ord(k), i) for k, i in rows]
        with self._lock:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                start = self.count()
                for offset, (kind, row_id) in enumerate(entries):
                    slot = (start + offset) % self.SLOTS
                    self.SLOT.pack_into(self._map, self.HEADER + slot * self.SLOT.size, kind, row_id)
                # The slots first, then the counter (one aligned 8-byte store) that reveals them.
                self.counter[0] = start + len(entries)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def read(self, since: int, until: int) -> tuple[set[tuple[str, int]], bool] | None:
        """The rows published in [since, until) and whether one meant everything; None when some
        were overwritten already (or the counter went back: the file was reset)."""
        if not 0 <= until - since <= self.SLOTS:
            return None
        rows: set[tuple[str, int]] = set()
        everything = False
        for n in range(since, until):
            kind, row_id = self.SLOT.unpack_from(self._map, self.HEADER + (n % self.SLOTS) * self.SLOT.size)
            if kind == 0:
                everything = True
            else:
                rows.add((chr(kind), row_id))
        if self.count() - since > self.SLOTS:  # lapped while we read
            return None
        return rows, everything

    def close(self) -> None:
        self.counter.release()
        self._map.close()
        if self._pid == os.getpid() and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


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
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.shared = SharedInvalidations(data_dir / SHARED_FILE)
        cache.share(self.shared)
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        if self.postgres:
            # Other nodes' changes arrive by NOTIFY only: no caching until the listener listens.
            cache.suspend()

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
        # SQLAlchemy also says "before/after commit" and "after rollback" for a savepoint: the
        # changes are published when, and only when, the outermost transaction commits.
        if session.in_nested_transaction():
            return
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
        if session.in_nested_transaction():
            return
        changes = session.info.pop(_PENDING, None)
        if changes is None or not _pending(changes):
            return
        if changes["all"]:
            self.cache.clear()
        else:
            self.cache.invalidate(changes["rows"])
        # Before the request that committed answers: every process of the node applies it on its
        # next lookup.
        self.shared.publish(changes["rows"], changes["all"])

    def _after_rollback(self, session: Session) -> None:
        # A savepoint rolled back: what was changed before it is still to be published (what it
        # undid stays marked too, which only costs a reload).
        if session.in_nested_transaction():
            return
        session.info.pop(_PENDING, None)

    # -- other nodes: PostgreSQL LISTEN -------------------------------------------------------------
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
                # TCP keepalives: a connection that died silently is noticed within seconds.
                with psycopg.connect(
                    url,
                    autocommit=True,
                    keepalives=1,
                    keepalives_idle=5,
                    keepalives_interval=2,
                    keepalives_count=2,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Anything may have changed while we were not listening: start afresh.
                    self.cache.resume()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            rows, everything = parse_payload(note.payload)
                            if everything:
                                self.cache.clear()
                            else:
                                self.cache.invalidate(rows)
            except Exception:
                log.warning("auth cache listener lost its connection; caching off until it reconnects")
                self.cache.suspend()
                self._stop.wait(1.0)
