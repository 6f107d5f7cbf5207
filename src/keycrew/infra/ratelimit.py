"""Rate limits: request throttles (GitLab's Rack::Attack) and failed-authentication bans.

Both count in a ``RateStore`` (infra/ratestore.py): Redis shared by every worker and node, or the
process's memory.

Request throttles (``throttle_authenticated_api``, ``throttle_unauthenticated_api``,
``throttle_authenticated_git_http``) count requests per user (authenticated) or per client IP in
fixed, epoch-aligned windows of ``period`` seconds; the request that goes over ``limit`` is refused
with 429 and the headers GitLab sends (``RateLimit-*``, ``Retry-After``).

Failed authentications (``FailedAuthThrottle``): correct credentials are never slowed, only
failures count. After ``limit`` failures within a ``window``-second window an IP is banned for
``ban`` seconds (GitLab's git IP ban: 30 failures in 60 s, banned for an hour; our ban is gentler).
"""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from keycrew.infra.ratestore import MemoryStore, RateStore
from keycrew.infra.refresh import Refreshed

log = logging.getLogger("keycrew.ratelimit")

AUTHENTICATED_API = "throttle_authenticated_api"
UNAUTHENTICATED_API = "throttle_unauthenticated_api"
AUTHENTICATED_GIT_HTTP = "throttle_authenticated_git_http"


@dataclass(frozen=True)
class Limit:
    """``requests`` per ``period`` seconds."""

    requests: int
    period: int


@dataclass(frozen=True)
class Throttled:
    """A request over its limit: what the 429 carries."""

    headers: dict[str, str]
    retry_after: int


@dataclass(frozen=True)
class ThrottleConfig:
    """The throttles' settings (from the instance settings) and the per-user overrides."""

    authenticated_api: Limit | None = None  # None: disabled
    unauthenticated_api: Limit | None = None
    authenticated_git_http: Limit | None = None
    overrides: dict[int, Limit] | None = None

    @property
    def active(self) -> bool:
        return bool(
            self.authenticated_api
            or self.unauthenticated_api
            or self.authenticated_git_http
            or self.overrides
        )

    def user_limit(self, default: Limit | None, user_id: int) -> Limit | None:
        """A user's limit for a per-user throttle: their override, else the instance's."""
        if self.overrides:
            override = self.overrides.get(user_id)
            if override is not None:
                return override
        return default


DISABLED = ThrottleConfig()
# A counted request: its refusal (None: it may pass) and its RateLimit-* headers.
Decision = tuple[Throttled | None, dict[str, str]]


def rate_headers(name: str, limit: Limit, observed: int, reset: int) -> dict[str, str]:
    """GitLab's RateLimit-* headers: the limit normalised to a minute, the raw remainder."""
    return {
        "RateLimit-Name": name,
        "RateLimit-Limit": str(math.ceil(limit.requests * 60 / limit.period)),
        "RateLimit-Observed": str(observed),
        "RateLimit-Remaining": str(max(limit.requests - observed, 0)),
        "RateLimit-Reset": str(reset),
    }


class ConfigCache(Refreshed[ThrottleConfig]):
    """The throttles' configuration (``Refreshed``: a stale one is refreshed in the background,
    a local commit reloads it at once). If loading fails the previous configuration stays, else
    none: the limits fail open, never a 500."""

    def __init__(self, load: Callable[[], ThrottleConfig], ttl: float = 5.0) -> None:
        super().__init__(
            load, fallback=DISABLED, ttl=ttl, thread_name="keycrew-rate-limits", what="rate limit settings"
        )


class RateLimiter:
    """Counts requests against the throttles; shared by the API and git adapters. The ``a``-
    prefixed methods are for the event loop (a Redis round trip does not hold it up)."""

    def __init__(self, store: RateStore, config: ConfigCache | None = None) -> None:
        self.store = store
        self.config = config or ConfigCache(lambda: DISABLED, ttl=3600)

    def _api_throttle(self, user_id: int | None, ip: str | None) -> tuple[str, Limit, str] | None:
        """Which throttle counts an API request, its limit and the counter's discriminator."""
        config = self.config.get()
        if not config.active:
            return None
        if user_id is not None:
            limit = config.user_limit(config.authenticated_api, user_id)
            return None if limit is None else (AUTHENTICATED_API, limit, f"user:{user_id}")
        if config.unauthenticated_api is None or ip is None:
            return None
        return UNAUTHENTICATED_API, config.unauthenticated_api, f"ip:{ip}"

    def _git_throttle(
        self, user_id: int | None, deploy_token_id: int | None
    ) -> tuple[str, Limit, str] | None:
        """A user's git request (their override applies), or a deploy token's, counted apart as
        GitLab's ``deploy_token:<id>``."""
        config = self.config.get()
        if not config.active:
            return None
        if deploy_token_id is not None:
            limit = config.authenticated_git_http
            discriminator = f"deploy_token:{deploy_token_id}"
        elif user_id is not None:
            limit = config.user_limit(config.authenticated_git_http, user_id)
            discriminator = f"user:{user_id}"
        else:
            return None
        return None if limit is None else (AUTHENTICATED_GIT_HTTP, limit, discriminator)

    @staticmethod
    def _key(name: str, limit: Limit, discriminator: str) -> str:
        return f"{name}:{limit.period}:{discriminator}"

    @staticmethod
    def _decide(name: str, limit: Limit, observed: int, reset: int) -> Decision:
        """The refusal (None when the request may pass) and the headers to send."""
        headers = rate_headers(name, limit, observed, reset)
        if observed <= limit.requests:
            return None, headers
        retry_after = max(1, reset - int(time.time()))
        headers["RateLimit-ResetTime"] = email.utils.formatdate(reset, usegmt=True)
        headers["Retry-After"] = str(retry_after)
        return Throttled(headers, retry_after), headers

    def _check(self, throttle: tuple[str, Limit, str] | None) -> Decision | tuple[None, None]:
        if throttle is None:
            return None, None
        name, limit, discriminator = throttle
        return self._decide(name, limit, *self.store.hit(self._key(name, limit, discriminator), limit.period))

    async def _acheck(self, throttle: tuple[str, Limit, str] | None) -> Decision | tuple[None, None]:
        if throttle is None:
            return None, None
        name, limit, discriminator = throttle
        counted = await self.store.ahit(self._key(name, limit, discriminator), limit.period)
        return self._decide(name, limit, *counted)

    def api(self, user_id: int | None, ip: str | None) -> Decision | tuple[None, None]:
        """Count an API request: per user when authenticated, else per IP."""
        return self._check(self._api_throttle(user_id, ip))

    async def aapi(self, user_id: int | None, ip: str | None) -> Decision | tuple[None, None]:
        return await self._acheck(self._api_throttle(user_id, ip))

    def git_http(
        self, user_id: int | None, deploy_token_id: int | None = None
    ) -> Decision | tuple[None, None]:
        """Count an authenticated git smart HTTP request of ``user_id`` or of a deploy token."""
        return self._check(self._git_throttle(user_id, deploy_token_id))

    async def agit_http(
        self, user_id: int | None, deploy_token_id: int | None = None
    ) -> Decision | tuple[None, None]:
        return await self._acheck(self._git_throttle(user_id, deploy_token_id))


class FailedAuthThrottle:
    """See the module's docstring; ``aretry_after`` and ``afailed`` are for the event loop."""

    def __init__(
        self, limit: int = 30, window: float = 60.0, ban: float = 60.0, store: RateStore | None = None
    ) -> None:
        self.limit = limit
        self.window = window
        self.ban = ban
        self.store: RateStore = store if store is not None else MemoryStore()

    @staticmethod
    def _wait(left: float) -> int:
        return max(1, math.ceil(left)) if left > 0 else 0

    def retry_after(self, ip: str | None) -> int:
        """Seconds the IP must wait (0: it may try)."""
        return 0 if ip is None else self._wait(self.store.banned_for(f"authban:{ip}"))

    async def aretry_after(self, ip: str | None) -> int:
        return 0 if ip is None else self._wait(await self.store.abanned_for(f"authban:{ip}"))

    def failed(self, ip: str | None) -> None:
        if ip is None:
            return
        if self.store.count(f"authfail:{ip}", max(1, math.ceil(self.window))) >= self.limit:
            self.store.ban(f"authban:{ip}", max(1, math.ceil(self.ban)))
            self.store.clear(f"authfail:{ip}")

    async def afailed(self, ip: str | None) -> None:
        if ip is None:
            return
        if await self.store.acount(f"authfail:{ip}", max(1, math.ceil(self.window))) >= self.limit:
            await self.store.aban(f"authban:{ip}", max(1, math.ceil(self.ban)))
            self.store.clear(f"authfail:{ip}")  # rare: once per ban

    def reset(self) -> None:
        reset = getattr(self.store, "reset", None)
        if reset is not None:
            reset()
