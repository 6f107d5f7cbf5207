"""Token usage (last_used_at, last 5 IPs, the owner's last_activity_on), recorded off the request
path and coalesced.

Requests only note a use in memory. A background thread writes at most one UPDATE per token per
minute, and only when GitLab's rules call for it: last_used_at when it is unset or older than 10
minutes; the IP list (5 newest, no duplicates) when an unseen IP arrives and the previous IP update
is at least a minute old.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from keycrew.clock import Clock
from keycrew.identity.models import User
from keycrew.tokens.models import PersonalAccessToken

log = logging.getLogger("keycrew.auth.usage")

LAST_USED_EVERY = dt.timedelta(minutes=10)
IPS_EVERY = dt.timedelta(minutes=1)
KEEP_IPS = 5


@dataclass
class _Seen:
    last_written: dt.datetime | None = None
    ips_written: dt.datetime | None = None
    known_ips: list[str] = field(default_factory=list)
    pending_at: dt.datetime | None = None
    pending_ips: list[str] = field(default_factory=list)


class UsageRecorder:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock, interval: float = 1.0) -> None:
        self.sessions = sessions
        self.clock = clock
        self.interval = interval
        self._seen: dict[int, _Seen] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, token_id: int, ip: str | None) -> None:
        """Called on every authenticated request: memory only, no I/O."""
        now = self.clock.now()
        with self._lock:
            seen = self._seen.get(token_id)
            if seen is None:
                seen = self._seen[token_id] = _Seen()
            due_time = seen.last_written is None or now - seen.last_written >= LAST_USED_EVERY
            new_ip = ip is not None and ip not in seen.known_ips and ip not in seen.pending_ips
            due_ip = new_ip and (seen.ips_written is None or now - seen.ips_written >= IPS_EVERY)
            if due_time or due_ip:
                seen.pending_at = now
                if due_ip and ip is not None:
                    seen.pending_ips.append(ip)

    def flush(self) -> int:
        """Write what is due; returns the number of tokens updated."""
        with self._lock:
            due = {tid: (s.pending_at, list(s.pending_ips)) for tid, s in self._seen.items() if s.pending_at}
            for seen in self._seen.values():
                seen.pending_at = None
                seen.pending_ips = []
        if not due:
            return 0
        written = 0
        for token_id, (at, ips) in due.items():
            if at is not None and self._write(token_id, at, ips):
                written += 1
        return written

    def _write(self, token_id: int, at: dt.datetime, ips: list[str]) -> bool:
        """One token's use, in a transaction of its own.

        Locks in the order every use case does (the owner's row, then the token's): a deletion
        holds the user's row lock while it deletes the tokens, and writing the token first here
        would deadlock with it on PostgreSQL.
        """
        with self.sessions() as db, db.begin():
            user_id = db.scalar(select(PersonalAccessToken.user_id).where(PersonalAccessToken.id == token_id))
            if user_id is None:
                return False
            owner = db.scalars(_locked(select(User).where(User.id == user_id))).first()
            token = db.scalars(
                _locked(select(PersonalAccessToken).where(PersonalAccessToken.id == token_id))
            ).first()
            if owner is None or token is None:
                return False  # deleted meanwhile
            if token.last_used_at is None or at - token.last_used_at >= LAST_USED_EVERY or ips:
                token.last_used_at = at
            merged = list(token.last_used_ips or [])
            for ip in ips:
                if ip in merged:
                    merged.remove(ip)
                merged.append(ip)
            token.last_used_ips = merged[-KEEP_IPS:]
            # The owner's last_activity_on (GitLab's dormant-user clock) moves at most daily.
            if owner.last_activity_on != at.date():
                owner.last_activity_on = at.date()
            with self._lock:
                seen = self._seen.setdefault(token_id, _Seen())
                seen.last_written = at
                if ips:
                    seen.ips_written = at
                seen.known_ips = list(token.last_used_ips)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:
                log.warning("could not record token usage", exc_info=True)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="keycrew-token-usage", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except Exception:
            log.debug("final usage flush failed", exc_info=True)


def _locked(query: Select[Any]) -> Select[Any]:
    # Row lock on PostgreSQL (SQLite ignores it: its writers already run one at a time).
    return query.with_for_update().execution_options(populate_existing=True)
