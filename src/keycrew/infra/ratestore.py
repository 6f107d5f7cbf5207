"""Counters for rate limits, shared by every worker and node through Redis, or kept in-process.

Two operations serve every limit: ``hit`` counts one event in a fixed, epoch-aligned window (as
GitLab's Rack::Attack) and returns the window's count; ``ban``/``banned_for`` hold a flag for a
while (the failed-authentication ban). With Redis each operation is one round trip (INCR and
EXPIRE in one pipeline). When Redis cannot be reached the store fails open: nothing is counted,
every request may pass, a warning is logged (at most once a minute), and Redis is not asked
again for a few seconds, so that an outage costs no time per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import redis
import redis.asyncio

log = logging.getLogger("keycrew.ratelimit")

MAX_MEMORY_KEYS = 100_000
T = TypeVar("T")  # bounded memory under a spray of addresses


class RateStore(Protocol):
    """Every operation comes twice: plain for threads, ``a``-prefixed for the event loop (where
    a Redis round trip must not hold up the other requests)."""

    def hit(self, key: str, period: int) -> tuple[int, int]:
        """Count one event for ``key`` in the current ``period``-second window.

        Returns (the window's count after this one, the window's end as Unix seconds); (0, end)
        when the store cannot count (fail open)."""
        ...

    def count(self, key: str, window: int) -> int:
        """Count one event for ``key`` in a window of ``window`` seconds that starts at its first
        event; returns the count (0 when the store cannot count)."""
        ...

    def ban(self, key: str, seconds: int) -> None: ...

    def banned_for(self, key: str) -> float:
        """Seconds left on ``key``'s ban (0: not banned)."""
        ...

    def clear(self, key: str) -> None: ...

    async def ahit(self, key: str, period: int) -> tuple[int, int]: ...

    async def acount(self, key: str, window: int) -> int: ...

    async def aban(self, key: str, seconds: int) -> None: ...

    async def abanned_for(self, key: str) -> float: ...


def window_of(now: float, period: int) -> tuple[int, int]:
    """The index of the epoch-aligned window ``now`` falls in, and that window's end."""
    index = int(now // period)
    return index, (index + 1) * period


class MemoryStore:
    """The store of one process (without ``KEYCREW_REDIS_URL``)."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self._counts: dict[str, tuple[int, float]] = {}  # key → (count, expires at)
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        if len(self._counts) >= MAX_MEMORY_KEYS:
            for key in [k for k, (_c, expires) in self._counts.items() if expires <= now]:
                del self._counts[key]
            if len(self._counts) >= MAX_MEMORY_KEYS // 2:
                # A spray of addresses: forget everything rather than scan again on the next hit.
                self._counts.clear()

    def hit(self, key: str, period: int) -> tuple[int, int]:
        now = self.now()
        index, end = window_of(now, period)
        name = f"{key}:{index}"
        with self._lock:
            count, _expires = self._counts.get(name, (0, end))
            self._prune(now)
            self._counts[name] = (count + 1, end)
        return count + 1, end

    def count(self, key: str, window: int) -> int:
        now = self.now()
        with self._lock:
            count, expires = self._counts.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + window
            self._prune(now)
            self._counts[key] = (count + 1, expires)
        return count + 1

    def ban(self, key: str, seconds: int) -> None:
        with self._lock:
            self._prune(self.now())
            self._counts[key] = (1, self.now() + seconds)

    def banned_for(self, key: str) -> float:
        found = self._counts.get(key)
        if found is None:
            return 0.0
        return max(0.0, found[1] - self.now())

    def clear(self, key: str) -> None:
        with self._lock:
            self._counts.pop(key, None)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    # In memory nothing waits: the event loop calls the same code.
    async def ahit(self, key: str, period: int) -> tuple[int, int]:
        return self.hit(key, period)

    async def acount(self, key: str, window: int) -> int:
        return self.count(key, window)

    async def aban(self, key: str, seconds: int) -> None:
        self.ban(key, seconds)

    async def abanned_for(self, key: str) -> float:
        return self.banned_for(key)


# INCR, and EXPIRE on the first event only: a window that starts at the first event.
_COUNT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


class RedisStore:
    """The store every worker and node shares (``KEYCREW_REDIS_URL``); keys start with ``prefix``.

    Two clients on one URL: a blocking one for threads, an asyncio one for the event loop."""

    def __init__(
        self,
        url: str,
        prefix: str = "keycrew:",
        *,
        timeout: float = 0.25,
        pause: float = 5.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.prefix = prefix
        self.pause = pause
        self.now = now
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "health_check_interval": 30,
        }
        self.client: redis.Redis = redis.Redis.from_url(url, **options)
        self.aclient: redis.asyncio.Redis = redis.asyncio.Redis.from_url(url, **options)
        self._count = self.client.register_script(_COUNT)
        self._acount = self.aclient.register_script(_COUNT)
        self._paused_until = 0.0
        self._warned_at = 0.0

    def _paused(self) -> bool:
        return bool(self._paused_until) and time.monotonic() < self._paused_until

    def _down(self, exc: Exception) -> None:
        now = time.monotonic()
        self._paused_until = now + self.pause
        if now - self._warned_at >= 60 or self._warned_at == 0.0:
            self._warned_at = now
            log.warning("rate limits are not enforced: Redis cannot be reached (%s)", type(exc).__name__)

    def _call(self, operation: Callable[[], T], fallback: T) -> T:
        if self._paused():
            return fallback
        try:
            return operation()
        except (redis.RedisError, OSError) as exc:
            self._down(exc)
            return fallback

    async def _acall(self, operation: Callable[[], Awaitable[T]], fallback: T) -> T:
        if self._paused():
            return fallback
        try:
            return await operation()
        except (redis.RedisError, OSError) as exc:
            self._down(exc)
            return fallback

    def _window(self, key: str, period: int) -> tuple[str, int]:
        index, end = window_of(self.now(), period)
        return f"{self.prefix}{key}:{index}", end

    def hit(self, key: str, period: int) -> tuple[int, int]:
        name, end = self._window(key, period)

        def run() -> tuple[int, int]:
            pipe = self.client.pipeline(transaction=False)
            pipe.incr(name)
            pipe.expire(name, period + 1)
            count, _ = pipe.execute()
            return int(count), end

        return self._call(run, (0, end))

    async def ahit(self, key: str, period: int) -> tuple[int, int]:
        name, end = self._window(key, period)

        async def run() -> tuple[int, int]:
            pipe = self.aclient.pipeline(transaction=False)
            pipe.incr(name)
            pipe.expire(name, period + 1)
            count, _ = await pipe.execute()
            return int(count), end

        return await self._acall(run, (0, end))

    def count(self, key: str, window: int) -> int:
        return self._call(lambda: int(self._count(keys=[self.prefix + key], args=[window])), 0)

    async def acount(self, key: str, window: int) -> int:
        async def run() -> int:
            return int(await self._acount(keys=[self.prefix + key], args=[window]))

        return await self._acall(run, 0)

    def ban(self, key: str, seconds: int) -> None:
        self._call(lambda: bool(self.client.set(self.prefix + key, b"1", ex=max(1, seconds))), False)

    async def aban(self, key: str, seconds: int) -> None:
        async def run() -> bool:
            return bool(await self.aclient.set(self.prefix + key, b"1", ex=max(1, seconds)))

        await self._acall(run, False)

    @staticmethod
    def _seconds(milliseconds: Any) -> float:
        return int(milliseconds) / 1000 if isinstance(milliseconds, int) and milliseconds > 0 else 0.0

    def banned_for(self, key: str) -> float:
        return self._seconds(self._call(lambda: self.client.pttl(self.prefix + key), -2))

    async def abanned_for(self, key: str) -> float:
        async def run() -> Any:
            return await self.aclient.pttl(self.prefix + key)

        return self._seconds(await self._acall(run, -2))

    def clear(self, key: str) -> None:
        self._call(lambda: int(self.client.delete(self.prefix + key)), 0)

    def clear_prefix(self) -> None:
        """Delete every key of this store's prefix (tests, and ``reset``)."""

        def run() -> None:
            names = list(self.client.scan_iter(match=self.prefix + "*", count=1000))
            if names:
                self.client.delete(*names)

        self._call(run, None)

    def reset(self) -> None:
        self.clear_prefix()

    def close(self) -> None:
        self.client.close()


def make_store(redis_url: str | None, prefix: str = "keycrew:") -> MemoryStore | RedisStore:
    return RedisStore(redis_url, prefix) if redis_url else MemoryStore()
