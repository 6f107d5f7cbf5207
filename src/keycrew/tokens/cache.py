"""A positive cache for token authentication, invalidated on change on every node.

Lookups by digest hit memory; a miss costs one indexed query. Entries live at most ``ttl`` seconds
(the safety net). Any committed change to a token or a user invalidates the affected entries at
once in this process (SQLAlchemy session events) and, through the database's notification
channel, in every other process within a second (PostgreSQL LISTEN/NOTIFY; on SQLite, which is
one host by nature, a generation file in the data directory that workers stat at most every 100 ms).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from keycrew.identity.models import User
from keycrew.tokens.models import PersonalAccessToken

log = logging.getLogger("keycrew.auth.cache")
CHANNEL = "keycrew_auth"


@dataclass(frozen=True)
class TokenSnapshot:
    id: int
    user_id: int
    name: str
    description: str | None
    scopes: tuple[str, ...]
    revoked: bool
    expires_at: dt.date | None
    impersonation: bool
    created_at: dt.datetime
    last_used_at: dt.datetime | None

    @classmethod
    def of(cls, token: PersonalAccessToken) -> TokenSnapshot:
        return cls(
            token.id,
            token.user_id,
            token.name,
            token.description,
            tuple(token.scopes),
            token.revoked,
            token.expires_at,
            token.impersonation,
            token.created_at,
            token.last_used_at,
        )

    def is_expired(self, today: dt.date) -> bool:
        return self.expires_at is not None and self.expires_at <= today

    def is_active(self, today: dt.date) -> bool:
        return not self.revoked and not self.is_expired(today)


@dataclass(frozen=True)
class UserSnapshot:
    id: int
    username: str
    name: str
    state: str
    user_type: int
    admin: bool
    external: bool

    @classmethod
    def of(cls, user: User) -> UserSnapshot:
        return cls(user.id, user.username, user.name, user.state, user.user_type, user.admin, user.external)


@dataclass(frozen=True)
class Principal:
    """Who a token value belongs to, as of when it was cached.

    ``rendered`` lets an adapter keep what it renders from this principal (for instance a JSON
    body per day); a changed token or user is a new Principal, so nothing stale survives.
    """

    token: TokenSnapshot
    user: UserSnapshot
    rendered: dict[object, bytes] = field(default_factory=dict, compare=False, repr=False)


class AuthCache:
    def __init__(self, ttl: float = 10.0, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        self._generation_check: Callable[[], bool] | None = None

    def get(self, digest: str) -> Principal | None:
        if self._generation_check is not None and self._generation_check():
            self.clear()
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(digest, None)
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[digest] = (time.monotonic() + self.ttl, principal)

    def invalidate(self, token_ids: set[int], user_ids: set[int]) -> None:
        if not token_ids and not user_ids:
            return
        with self._lock:
            for digest, (_expiry, principal) in list(self._entries.items()):
                if principal.token.id in token_ids or principal.user.id in user_ids:
                    self._entries.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# -- change tracking: which tokens and users a transaction touched --------------------------------

_PENDING = "keycrew_auth_changes"


def _changes(session: Session) -> dict[str, Any]:
    changes: dict[str, Any] = session.info.setdefault(
        _PENDING, {"tokens": set(), "users": set(), "all": False}
    )
    return changes


def _payload(changes: dict[str, Any]) -> str:
    if changes["all"]:
        return "*"
    parts = [f"t{i}" for i in sorted(changes["tokens"])] + [f"u{i}" for i in sorted(changes["users"])]
    text_payload = ",".join(parts)
    # NOTIFY payloads are limited to 8000 bytes; a huge change just clears every cache.
    return text_payload if len(text_payload) < 7000 else "*"


def parse_payload(payload: str) -> tuple[set[int], set[int], bool]:
    if payload == "*":
        return set(), set(), True
    tokens: set[int] = set()
    users: set[int] = set()
    for part in payload.split(","):
        if part[:1] == "t" and part[1:].isdigit():
            tokens.add(int(part[1:]))
        elif part[:1] == "u" and part[1:].isdigit():
            users.add(int(part[1:]))
    return tokens, users, False


class Invalidation:
    """Wires a sessionmaker so that committed token/user changes reach every node's cache."""

    def __init__(self, cache: AuthCache, engine: Engine, data_dir: Path) -> None:
        self.cache = cache
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
            if isinstance(obj, PersonalAccessToken):
                changes["tokens"].add(obj.id)
            elif isinstance(obj, User):
                changes["users"].add(obj.id)

    def _on_execute(self, state: ORMExecuteState) -> None:
        bulk = state.is_update or state.is_delete
        if bulk and state.bind_mapper is not None and state.bind_mapper.class_ in (PersonalAccessToken, User):
            # A bulk statement: we cannot tell which rows, so every cache starts over.
            _changes(state.session)["all"] = True

    def _before_commit(self, session: Session) -> None:
        changes = session.info.get(_PENDING)
        if not changes or not (changes["tokens"] or changes["users"] or changes["all"]):
            return
        if self.postgres:
            # Delivered to every listener when (and only if) this transaction commits.
            session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": _payload(changes)},
            )

    def _after_commit(self, session: Session) -> None:
        changes = session.info.pop(_PENDING, None)
        if not changes or not (changes["tokens"] or changes["users"] or changes["all"]):
            return
        if changes["all"]:
            self.cache.clear()
        else:
            self.cache.invalidate(changes["tokens"], changes["users"])
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
                            tokens, users, everything = parse_payload(note.payload)
                            if everything:
                                self.cache.clear()
                            else:
                                self.cache.invalidate(tokens, users)
            except Exception:
                log.warning("auth cache listener lost its connection; clearing and reconnecting")
                self.cache.clear()
                self._stop.wait(1.0)
