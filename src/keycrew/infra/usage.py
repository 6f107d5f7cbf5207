"""Credential usage recorded off the request path and coalesced.

Requests only note a use in memory. A background thread writes what is due through the domain's
``write`` function, one transaction per credential, and only as often as the domain's
``UsagePolicy`` calls for: a new use time every ``used_every``, a new client IP every ``ips_every``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from keycrew.clock import Clock

log = logging.getLogger("keycrew.auth.usage")

# Writes one credential's use (id, time, new client IPs) in the given transaction; returns the IP
# list now stored, or None when the credential is gone.
WriteUse = Callable[[Session, int, dt.datetime, list[str]], "list[str] | None"]


@dataclass(frozen=True)
class UsagePolicy:
    used_every: dt.timedelta
    ips_every: dt.timedelta


@dataclass
class _Seen:
    last_written: dt.datetime | None = None
    ips_written: dt.datetime | None = None
    known_ips: list[str] = field(default_factory=list)
    pending_at: dt.datetime | None = None
    pending_ips: list[str] = field(default_factory=list)


class UsageRecorder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        write: WriteUse,
        policy: UsagePolicy,
        interval: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.write = write
        self.policy = policy
        self.interval = interval
        self._seen: dict[int, _Seen] = {}
        self._lock = threading.Lock()
        # One flush at a time: a flush that finds the queue taken by the writer thread's waits
        # for its writes, so that everything noted before flush() was called is stored when it
        # returns (shutdown, tests).
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, token_id: int, ip: str | None) -> None:
        """Called on every authenticated request: memory only, no I/O."""
        now = self.clock.now()
        with self._lock:
            seen = self._seen.get(token_id)
            if seen is None:
                seen = self._seen[token_id] = _Seen()
            due_time = seen.last_written is None or now - seen.last_written >= self.policy.used_every
            new_ip = ip is not None and ip not in seen.known_ips and ip not in seen.pending_ips
            due_ip = new_ip and (seen.ips_written is None or now - seen.ips_written >= self.policy.ips_every)
            if due_time or due_ip:
                seen.pending_at = now
                if due_ip and ip is not None:
                    seen.pending_ips.append(ip)

    def pending(self) -> int:
        """Credentials whose use waits to be written (read-only, for the metrics endpoint)."""
        with self._lock:
            return sum(1 for seen in self._seen.values() if seen.pending_at is not None)

    def flush(self) -> int:
        """Write what is due; returns the number of tokens updated."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            due = {tid: (s.pending_at, list(s.pending_ips)) for tid, s in self._seen.items() if s.pending_at}
            for seen in self._seen.values():
                seen.pending_at = None
                seen.pending_ips = []
        written = 0
        for token_id, (at, ips) in due.items():
            if at is not None and self._write(token_id, at, ips):
                written += 1
        self._forget_idle()
        return written

    def _forget_idle(self) -> None:
        """Keep memory to the credentials used lately: one not written for ``used_every`` is due
        again on its next use anyway, so forgetting it loses nothing but its known IPs (the next
        write merges them with the stored ones)."""
        now = self.clock.now()
        with self._lock:
            idle = [
                token_id
                for token_id, seen in self._seen.items()
                if seen.pending_at is None
                and (seen.last_written is None or now - seen.last_written >= self.policy.used_every)
            ]
            for token_id in idle:
                del self._seen[token_id]

    def tracked(self) -> int:
        """Credentials held in memory (read-only, for tests and the metrics endpoint)."""
        with self._lock:
            return len(self._seen)

    def _write(self, token_id: int, at: dt.datetime, ips: list[str]) -> bool:
        """One credential's use, in a transaction of its own."""
        with self.sessions() as db, db.begin():
            stored_ips = self.write(db, token_id, at, ips)
            if stored_ips is None:
                return False  # deleted meanwhile
            with self._lock:
                seen = self._seen.setdefault(token_id, _Seen())
                seen.last_written = at
                if ips:
                    seen.ips_written = at
                seen.known_ips = list(stored_ips)
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
