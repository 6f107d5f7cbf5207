"""The rate limits' store (infra/ratestore.py), in memory and on a real Redis, and the limiter and
failed-authentication throttle on top of it (infra/ratelimit.py)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from keycrew.infra.ratelimit import (
    AUTHENTICATED_API,
    ConfigCache,
    FailedAuthThrottle,
    Limit,
    RateLimiter,
    ThrottleConfig,
)
from keycrew.infra.ratestore import MemoryStore, RateStore, RedisStore
from tests.support.backends import redis_url_or_skip


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_store() -> Iterator[RedisStore]:
    store = RedisStore(redis_url_or_skip(), prefix=f"keycrew-test:{uuid.uuid4().hex}:")
    try:
        yield store
    finally:
        store.clear_prefix()
        store.close()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> RateStore:
    if request.param == "memory":
        return MemoryStore()
    found: RedisStore = request.getfixturevalue("redis_store")
    return found


def test_hit_counts_in_a_fixed_epoch_aligned_window() -> None:
    clock = Clock(1_000_000.0)  # a multiple of 10
    memory = MemoryStore(clock)
    assert memory.hit("k", 10) == (1, 1_000_010)
    clock.now += 9.9
    assert memory.hit("k", 10) == (2, 1_000_010)
    clock.now += 0.1  # the next window starts from zero
    assert memory.hit("k", 10) == (1, 1_000_020)
    assert memory.hit("other", 10) == (1, 1_000_020)


def test_count_window_starts_at_the_first_event() -> None:
    clock = Clock()
    memory = MemoryStore(clock)
    assert [memory.count("f", 60) for _ in range(3)] == [1, 2, 3]
    clock.now += 61
    assert memory.count("f", 60) == 1


def test_counters_are_shared_and_separate(store: RateStore) -> None:
    assert [store.hit("a", 3600)[0] for _ in range(3)] == [1, 2, 3]
    assert store.hit("b", 3600)[0] == 1
    assert [store.count("c", 60) for _ in range(2)] == [1, 2]
    store.clear("c")
    assert store.count("c", 60) == 1


def test_ban_lasts_its_time(store: RateStore) -> None:
    assert store.banned_for("ip") == 0
    store.ban("ip", 30)
    assert 0 < store.banned_for("ip") <= 30
    store.clear("ip")
    assert store.banned_for("ip") == 0


def test_two_redis_clients_share_one_counter(redis_store: RedisStore) -> None:
    other = RedisStore(redis_url_or_skip(), prefix=redis_store.prefix)
    try:
        assert redis_store.hit("shared", 3600)[0] == 1
        assert other.hit("shared", 3600)[0] == 2
        redis_store.ban("x", 60)
        assert other.banned_for("x") > 0
    finally:
        other.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_redis_down_fails_open_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    store = RedisStore(f"redis://127.0.0.1:{_closed_port()}/0", prefix="keycrew-test:down:")
    limiter = RateLimiter(store, ConfigCache(lambda: ThrottleConfig(authenticated_api=Limit(1, 60))))
    throttle = FailedAuthThrottle(limit=1, store=store)
    with caplog.at_level(logging.WARNING, logger="keycrew.ratelimit"):
        for _ in range(5):
            refused, _headers = limiter.api(7, "203.0.113.1")
            assert refused is None
            throttle.failed("203.0.113.1")
            assert throttle.retry_after("203.0.113.1") == 0
    warnings = [r for r in caplog.records if "Redis cannot be reached" in r.getMessage()]
    assert len(warnings) == 1


def test_limiter_refuses_over_the_limit_with_gitlab_headers() -> None:
    limiter = RateLimiter(
        MemoryStore(), ConfigCache(lambda: ThrottleConfig(authenticated_api=Limit(2, 3600)))
    )
    for remaining in ("1", "0"):
        refused, headers = limiter.api(7, None)
        assert refused is None
        assert headers is not None
        assert headers["RateLimit-Remaining"] == remaining
        assert headers["RateLimit-Limit"] == "1"  # 2 per hour, per minute rounded up
    refused, _headers = limiter.api(7, None)
    assert refused is not None
    assert refused.headers["RateLimit-Name"] == AUTHENTICATED_API
    assert refused.headers["RateLimit-Observed"] == "3"
    assert int(refused.headers["Retry-After"]) == refused.retry_after > 0
    # Another user, and anonymous callers (no unauthenticated throttle here), are not limited.
    assert limiter.api(8, None)[0] is None
    assert limiter.api(None, "203.0.113.1") == (None, None)


def test_overrides_replace_the_instance_limit_and_apply_when_it_is_off() -> None:
    config = ThrottleConfig(overrides={7: Limit(1, 3600)})
    limiter = RateLimiter(MemoryStore(), ConfigCache(lambda: config))
    assert limiter.api(7, None)[0] is None
    assert limiter.api(7, None)[0] is not None
    assert limiter.api(8, None) == (None, None)  # no instance limit, no override
    assert limiter.git_http(7)[0] is None  # its own counter


def test_disabled_limits_cost_nothing() -> None:
    class Untouchable(MemoryStore):
        def hit(self, key: str, period: int) -> tuple[int, int]:
            raise AssertionError("a disabled throttle must not count")

    limiter = RateLimiter(Untouchable())
    assert limiter.api(7, "203.0.113.1") == (None, None)
    assert limiter.git_http(7) == (None, None)


def test_config_cache_keeps_the_last_configuration_when_loading_fails() -> None:
    configs = [ThrottleConfig(authenticated_api=Limit(5, 60))]

    def load() -> ThrottleConfig:
        if not configs:
            raise OSError("database down")
        return configs.pop()

    cache = ConfigCache(load, ttl=3600)
    assert cache.get().authenticated_api == Limit(5, 60)
    cache.invalidate()
    assert cache.get().authenticated_api == Limit(5, 60)


def test_failed_auth_bans_after_the_limit(store: RateStore) -> None:
    throttle = FailedAuthThrottle(limit=3, window=60, ban=30, store=store)
    for _ in range(2):
        throttle.failed("203.0.113.5")
        assert throttle.retry_after("203.0.113.5") == 0
    throttle.failed("203.0.113.5")
    assert 0 < throttle.retry_after("203.0.113.5") <= 30
    assert throttle.retry_after("203.0.113.6") == 0
    assert throttle.retry_after(None) == 0


def test_config_cache_refreshes_a_stale_configuration_without_waiting() -> None:
    release = threading.Event()
    loads = [ThrottleConfig(authenticated_api=Limit(1, 60)), ThrottleConfig(authenticated_api=Limit(2, 60))]

    def load() -> ThrottleConfig:
        if len(loads) == 1:  # the refresh: waits until the test has seen the stale value
            assert release.wait(10)
        return loads.pop(0)

    cache = ConfigCache(load, ttl=0)
    assert cache.get().authenticated_api == Limit(1, 60)  # the first load is made at once
    assert cache.get().authenticated_api == Limit(1, 60)  # stale: served while a thread refreshes
    release.set()
    for _ in range(500):
        if cache.get().authenticated_api == Limit(2, 60):
            break
        time.sleep(0.01)
    assert cache.get().authenticated_api == Limit(2, 60)


def test_the_event_loop_operations_share_the_counters(store: RateStore) -> None:
    async def run() -> None:
        assert (await store.ahit("loop", 3600))[0] == 1
        assert store.hit("loop", 3600)[0] == 2  # the thread's operation sees the same counter
        assert [await store.acount("lf", 60) for _ in range(2)] == [1, 2]
        await store.aban("lb", 30)
        assert 0 < await store.abanned_for("lb") <= 30
        assert store.banned_for("lb") > 0

    asyncio.run(run())


def test_the_event_loop_limiter_and_throttle(store: RateStore) -> None:
    limiter = RateLimiter(store, ConfigCache(lambda: ThrottleConfig(authenticated_git_http=Limit(1, 3600))))
    throttle = FailedAuthThrottle(limit=2, store=store)

    async def run() -> None:
        assert (await limiter.agit_http(7))[0] is None
        refused, _headers = await limiter.agit_http(7)
        assert refused is not None
        assert refused.headers["RateLimit-Name"] == "throttle_authenticated_git_http"
        assert await limiter.aapi(7, None) == (None, None)  # no API throttle configured
        await throttle.afailed("203.0.113.9")
        assert await throttle.aretry_after("203.0.113.9") == 0
        await throttle.afailed("203.0.113.9")
        assert await throttle.aretry_after("203.0.113.9") > 0

    asyncio.run(run())


def test_redis_down_fails_open_on_the_event_loop_too() -> None:
    store = RedisStore(f"redis://127.0.0.1:{_closed_port()}/0", prefix="keycrew-test:down:")
    limiter = RateLimiter(store, ConfigCache(lambda: ThrottleConfig(authenticated_api=Limit(1, 60))))

    async def run() -> None:
        for _ in range(3):
            assert (await limiter.aapi(7, None))[0] is None

    asyncio.run(run())
