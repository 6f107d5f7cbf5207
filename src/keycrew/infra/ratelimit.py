"""Failed-authentication throttling per client IP, for the git and registry adapters.

Correct credentials are never slowed: only failures count, and a success does not consume the
budget. After ``limit`` failures within ``window`` seconds an IP is banned for ``ban`` seconds
(GitLab's git IP ban: 30 failures in 60 s, banned for an hour; our defaults are gentler).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    banned_until: float = 0.0


class FailedAuthThrottle:
    def __init__(self, limit: int = 30, window: float = 60.0, ban: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self.ban = ban
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def retry_after(self, ip: str | None, now: float | None = None) -> int:
        """Seconds the IP must wait (0: it may try)."""
        if ip is None:
            return 0
        now = time.monotonic() if now is None else now
        record = self._records.get(ip)
        if record is None or record.banned_until <= now:
            return 0
        return max(1, int(record.banned_until - now + 0.999))

    def failed(self, ip: str | None, now: float | None = None) -> None:
        if ip is None:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            record = self._records.setdefault(ip, _Record())
            record.failures.append(now)
            while record.failures and record.failures[0] < now - self.window:
                record.failures.popleft()
            if len(record.failures) >= self.limit:
                record.banned_until = now + self.ban
                record.failures.clear()
            if len(self._records) > 100_000:  # bounded memory under a spray of addresses
                self._records.clear()

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
