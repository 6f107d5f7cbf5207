"""Credential usage recorded off the request path and coalesced.

Requests only note a use in memory. A background thread writes what is due through the domain's
``write`` function, one transaction per credential, and only as often as the domain's
``UsagePolicy`` calls for: a new use time every ``used_every``, a new client IP every ``ips_every``.

The same notes feed the token-hygiene facts (``UseFacts``), aggregated in memory and handed to the
domain's ``write_facts`` in the same transaction: the (scope, method) pairs a credential exercised
(a pair not seen before is due at once; there are few), the distinct client IPs of each day (one
new for the day is due as a new IP is, at most every ``ips_every``), and per UTC day the hours it
was used in and its request count. Those ride along with the writes that are due anyway, or are
written once the credential has not been written for ``used_every`` (and all at shutdown).
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

# Distinct client IPs remembered per credential and day (beyond them, new ones are not counted).
MAX_DAY_IPS = 256


@dataclass
class UseFacts:
    """What a credential did since its last write, for the hygiene report."""

    at: dt.datetime

    # (scope, HTTP method) pairs not written before: the least scope the request needed.
    uses: list[tuple[str, str]] = field(default_factory=list)
    # Per UTC day: client IPs not written before for that day.
    ips: dict[dt.date, list[str]] = field(default_factory=dict)
    # Per UTC day: (bit mask of the hours used in, requests counted).
    days: dict[dt.date, tuple[int, int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.uses or self.ips or self.days)


# Writes one credential's hygiene facts in the transaction of its use.
WriteFacts = Callable[[Session, int, UseFacts], None]


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
    # Hygiene facts: what is stored (as far as this process knows) and what waits.
    known_uses: set[tuple[str, str]] = field(default_factory=set)
    pending_uses: list[tuple[str, str]] = field(default_factory=list)
    day: dt.date | None = None
    day_ips: set[str] = field(default_factory=set)  # the client IPs of ``day`` (written or pending)
    pending_day_ips: dict[dt.date, list[str]] = field(default_factory=dict)
    pending_days: dict[dt.date, list[int]] = field(default_factory=dict)  # day -> [hours, requests]
    last_use: dt.datetime | None = None


class UsageRecorder:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        write: WriteUse,
        policy: UsagePolicy,
        interval: float = 1.0,
        write_facts: WriteFacts | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.write = write
        self.write_facts = write_facts
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
            if self.write_facts is not None and self._count(seen, now, ip):
                # A client IP new for the day: written as soon as an IP may be (``ips_every``).
                due_ip = due_ip or seen.ips_written is None or now - seen.ips_written >= self.policy.ips_every
            if due_time or due_ip:
                seen.pending_at = now
                if due_ip and ip is not None:
                    seen.pending_ips.append(ip)

    def _count(self, seen: _Seen, now: dt.datetime, ip: str | None) -> bool:
        """Count one use in the day's facts (its hour, the request); True when its client IP is
        new for the day. Holds the lock."""
        seen.last_use = now
        today = now.date()
        if seen.day != today:
            seen.day, seen.day_ips = today, set()
        entry = seen.pending_days.get(today)
        if entry is None:
            entry = seen.pending_days[today] = [0, 0]
        entry[0] |= 1 << now.hour
        entry[1] += 1
        if ip is not None and ip not in seen.day_ips and len(seen.day_ips) < MAX_DAY_IPS:
            seen.day_ips.add(ip)
            seen.pending_day_ips.setdefault(today, []).append(ip)
            return True
        return False

    def exercise(self, token_id: int, scope: str, method: str) -> None:
        """Called when a request's scope check passed: the least scope the request needed and its
        HTTP method. Memory only; a pair the credential never exercised before is due at once."""
        if self.write_facts is None:
            return
        use = (scope, method)
        known = self._seen.get(token_id)
        if known is not None and use in known.known_uses:  # the common case, read without the lock
            return
        with self._lock:
            seen = self._seen.get(token_id)
            if seen is None:
                seen = self._seen[token_id] = _Seen()
            if use in seen.known_uses:
                return
            seen.known_uses.add(use)
            seen.pending_uses.append(use)
            seen.pending_at = seen.pending_at or self.clock.now()

    def pending(self) -> int:
        """Credentials whose use waits to be written (read-only, for the metrics endpoint)."""
        with self._lock:
            return sum(1 for seen in self._seen.values() if seen.pending_at is not None)

    def flush(self, everything: bool = False) -> int:
        """Write what is due (``everything``: also the counts not due yet, as at shutdown);
        returns the number of tokens updated."""
        with self._flushing:
            return self._flush(everything)

    def _flush(self, everything: bool = False) -> int:
        now = self.clock.now()
        due: dict[int, tuple[dt.datetime, list[str], UseFacts]] = {}
        with self._lock:
            for tid, seen in self._seen.items():
                at = seen.pending_at
                if at is None and seen.pending_days and seen.last_use is not None:
                    # Counts of a credential not written for a while are due too.
                    idle = seen.last_written is None or now - seen.last_written >= self.policy.used_every
                    if everything or idle:
                        at = seen.last_use
                if at is None:
                    continue
                facts = UseFacts(
                    at,
                    seen.pending_uses,
                    seen.pending_day_ips,
                    {day: (hours, count) for day, (hours, count) in seen.pending_days.items()},
                )
                due[tid] = (at, list(seen.pending_ips), facts)
                seen.pending_at = None
                seen.pending_ips = []
                seen.pending_uses = []
                seen.pending_day_ips = {}
                seen.pending_days = {}
        written = 0
        for token_id, (at, ips, facts) in due.items():
            if self._write(token_id, at, ips, facts):
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
                and not seen.pending_days
                and (seen.last_written is None or now - seen.last_written >= self.policy.used_every)
            ]
            for token_id in idle:
                del self._seen[token_id]

    def tracked(self) -> int:
        """Credentials held in memory (read-only, for tests and the metrics endpoint)."""
        with self._lock:
            return len(self._seen)

    def _write(self, token_id: int, at: dt.datetime, ips: list[str], facts: UseFacts | None = None) -> bool:
        """One credential's use, in a transaction of its own."""
        with self.sessions() as db, db.begin():
            stored_ips = self.write(db, token_id, at, ips)
            if stored_ips is None:
                return False  # deleted meanwhile
            if facts and self.write_facts is not None:
                self.write_facts(db, token_id, facts)
            with self._lock:
                seen = self._seen.setdefault(token_id, _Seen())
                seen.last_written = at
                if ips or (facts is not None and facts.ips):
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
            self.flush(everything=True)
        except Exception:
            log.debug("final usage flush failed", exc_info=True)
