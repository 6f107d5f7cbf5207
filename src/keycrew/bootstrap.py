"""The composition root: settings → engine → sessions → instance facts, and first-boot seeding."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets as pysecrets
import stat
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, func, make_url, select
from sqlalchemy.orm import Session, sessionmaker

from keycrew.access.compliance import ComplianceFramework, any_frameworks
from keycrew.alerts import service as alerts
from keycrew.audit.service import subscribe
from keycrew.automation.scheduler import Scheduler
from keycrew.clock import Clock, SystemClock
from keycrew.config import SECRET_KEY_FILE, Settings
from keycrew.context import Actor, Ctx, Instance, LazySession, LiveSettings
from keycrew.db.engine import make_engine, make_sessionmaker
from keycrew.db.reads import HeldReads, PoolReads, Reader
from keycrew.identity.models import User
from keycrew.identity.users import create_user
from keycrew.imports.bulk import BulkImport
from keycrew.infra.auth_cache import AuthCache, Invalidation
from keycrew.infra.metrics import Metrics
from keycrew.infra.ratelimit import ConfigCache, FailedAuthThrottle, RateLimiter, ThrottleConfig
from keycrew.infra.ratestore import MemoryStore, RateStore, make_store
from keycrew.infra.refresh import on_commit_of
from keycrew.infra.usage import UsageRecorder
from keycrew.instance.live import LiveSettingsCache, load_live_settings
from keycrew.instance.models import InstanceSettings, RateLimitOverride
from keycrew.instance.settings import instance_settings, throttle_config
from keycrew.migrations import upgrade
from keycrew.notifications import lifecycle as token_mail
from keycrew.outbox.models import FAILED, PENDING, OutboxMessage
from keycrew.servicedesk import mails as service_desk_mail
from keycrew.tokens.metrics import tokens_by_expiry
from keycrew.tokens.personal import create_personal_access_token
from keycrew.tokens.principal import WATCHED_ROWS, Principal
from keycrew.tokens.scopes import ROOT_TOKEN_SCOPES
from keycrew.tokens.usage import token_usage_recorder
from keycrew.webhooks import events as webhook_events
from keycrew.webhooks.delivery import DeliveryWorker
from keycrew.webhooks.models import WebHookDelivery


class Service(Protocol):
    """Something a serving process runs beside the requests (a delivery worker, the scheduler)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    instance: Instance
    clock: Clock = field(default_factory=SystemClock)
    auth_cache: AuthCache[Principal] = field(default_factory=AuthCache)
    invalidation: Invalidation | None = None
    usage: UsageRecorder | None = None
    # Failed Basic authentications per client IP, shared by the git and registry adapters.
    auth_throttle: FailedAuthThrottle = field(default_factory=FailedAuthThrottle)
    # Request throttles (API, git HTTP); its store is the auth throttle's (Redis or memory).
    rate_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(MemoryStore()))
    metrics: Metrics = field(default_factory=Metrics)
    # Started with the server after the built-in threads, stopped before them, in reverse order.
    services: list[Service] = field(default_factory=list)
    _held_reads: HeldReads | None = field(default=None, init=False, repr=False)

    @property
    def reads_inline(self) -> bool:
        """Whether reads run on the event loop rather than in the threadpool (``KEYCREW_READS``):
        by default on SQLite, whose queries take microseconds and never wait on a lock in WAL mode
        (a thread hop would cost more than the query); PostgreSQL's round trips stay off the loop
        unless the operator chooses otherwise."""
        if self.settings.reads == "auto":
            return self.engine.dialect.name == "sqlite"
        return self.settings.reads == "inline"

    def loop_reads(self) -> PoolReads | HeldReads:
        """The reads of a request served on the event loop: on SQLite the connection the loop
        keeps (``HeldReads``: no pool checkout per request), else a ``PoolReads``."""
        if self.engine.dialect.name != "sqlite":
            return PoolReads(self.engine)
        held = self._held_reads
        if held is None:
            held = self._held_reads = HeldReads(self.engine)
        return held.reads()

    def read_session(self) -> Session:
        """A session for a read: on SQLite its transaction begins DEFERRED (readers never queue
        behind writers), and, like every session's, only when a statement first needs one."""
        return self.sessions(bind=self._read_bind)

    @cached_property
    def _read_bind(self) -> Engine:
        return self.engine.execution_options(sqlite_begin="DEFERRED")

    def ctx(self, db: Session | LazySession, actor: Actor, reads: Reader | None = None) -> Ctx:
        return Ctx(db, actor, self.instance, self.clock, reads)

    def start_background(self) -> None:
        """Threads a serving process needs: cache invalidation listener, token usage writer."""
        if self.invalidation is not None:
            self.invalidation.start()
        if self.usage is not None:
            self.usage.start()
        for service in self.services:
            service.start()

    def stop_background(self) -> None:
        for service in reversed(self.services):
            service.stop()
        if self.usage is not None:
            self.usage.stop()
        if self.invalidation is not None:
            self.invalidation.stop()
        held, self._held_reads = self._held_reads, None
        if held is not None:
            held.release()


log = logging.getLogger(__name__)

# What keycrew keeps at the top of its data directory that nobody else may read: the SQLite
# database with its journals, and the secrets (the server key, the registry's signing keys).
_PRIVATE_FILES = ("keycrew.sqlite3", "keycrew.sqlite3-wal", "keycrew.sqlite3-shm", "keycrew.sqlite3-journal")
_PRIVATE_SECRETS = (SECRET_KEY_FILE, "registry-token.key", "registry-token.key.next")


def _tighten(path: Path, mode: int) -> None:
    """Take group and other permissions away from ``path`` (ours) if it has any."""
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return
    if current & 0o077 and not path.is_symlink():
        try:
            path.chmod(current & mode)
        except PermissionError:
            log.warning("cannot restrict the permissions of %s (mode %o): it is not ours", path, current)


def secure_data_dir(settings: Settings) -> None:
    """Make the data directory private to keycrew's user: created 0700, or tightened to 0700 when it
    already existed; the SQLite database created 0600 before SQLite opens it (its -wal and -shm
    files take the database's permissions), and the database, its journals and the secrets of an
    earlier, looser installation tightened to 0600."""
    data_dir = settings.data_dir
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(data_dir, 0o700)
    for name in (*_PRIVATE_FILES, *_PRIVATE_SECRETS):
        _tighten(data_dir / name, 0o600)
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        database = Path(url.database)
        for suffix in ("", "-wal", "-shm", "-journal"):
            _tighten(database.with_name(database.name + suffix), 0o600)
        if database.parent.is_dir():
            with contextlib.suppress(FileExistsError):
                os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def build(settings: Settings, clock: Clock | None = None) -> Runtime:
    secure_data_dir(settings)
    engine = make_engine(
        settings.sqlalchemy_url, pool_size=settings.db_pool_size, busy_timeout=settings.db_busy_timeout
    )
    sessions = make_sessionmaker(engine)
    live = build_live_settings(sessions)
    instance = Instance(
        external_url=settings.external_url,
        host=settings.host_name,
        secret_key=settings.resolved_secret_key,
        configured_token_prefix=settings.instance_token_prefix,
        repositories_dir=(settings.data_dir / "repositories").resolve(),
        packages_dir=(settings.data_dir / "packages").resolve(),
        uploads_dir=(settings.data_dir / "uploads").resolve(),
        session_expire_minutes=settings.session_expire_delay,
        import_source_timeout=settings.import_source_timeout,
        import_source_retries=settings.import_source_retries,
        import_source_backoff=settings.import_source_backoff,
        live=live.get,
    )
    clock = clock or SystemClock()
    cache: AuthCache[Principal] = AuthCache()
    invalidation = Invalidation(cache, engine, settings.data_dir, WATCHED_ROWS)
    invalidation.install(sessions)
    usage = token_usage_recorder(sessions, clock)
    subscribe(token_mail.on_audit_event)  # token created/rotated/revoked e-mails
    subscribe(webhook_events.on_audit_event)  # hook deliveries queued with the change
    subscribe(alerts.on_audit_event)  # closing an incident resolves its alerts
    service_desk_mail.configure(settings)
    subscribe(service_desk_mail.on_audit_event)  # public notes e-mailed to Service Desk participants
    webhook_worker = DeliveryWorker(sessions, instance, clock)
    on_commit_of(sessions, (WebHookDelivery,), webhook_worker.wake)
    store = make_store(settings.redis_url or None, settings.redis_key_prefix)
    # A direct transfer left half done by a stop or a crash resumes as soon as the node is up.
    scheduler: Scheduler | None = None
    if settings.jobs == "on":
        scheduler = Scheduler(sessions, instance, clock, wake_on_start=("bulk-imports",))
    if scheduler is not None:
        # A direct transfer created (or changed) here starts now, not at the job's next minute.
        on_commit_of(sessions, (BulkImport,), lambda: scheduler.fire_soon("bulk-imports"))
    return Runtime(
        settings,
        engine,
        sessions,
        instance,
        clock,
        cache,
        invalidation,
        usage,
        auth_throttle=FailedAuthThrottle(store=store),
        rate_limiter=build_rate_limiter(sessions, store),
        metrics=build_metrics(engine, sessions, clock, usage),
        # The scheduler of background jobs, unless this node runs none (KEYCREW_JOBS=off).
        services=[webhook_worker, *([scheduler] if scheduler is not None else [])],
    )


def build_live_settings(sessions: sessionmaker[Session]) -> LiveSettingsCache:
    """The settings every request consults (Admin Mode, the token prefix, whether any compliance
    framework exists), read at most every second (and at once after a change committed in this
    process)."""

    def load() -> LiveSettings:
        with sessions() as db:
            db.connection(execution_options={"sqlite_begin": "DEFERRED"})
            return replace(load_live_settings(db), compliance_frameworks=any_frameworks(db))

    cache = LiveSettingsCache(load)
    on_commit_of(sessions, (InstanceSettings, ComplianceFramework), cache.invalidate)
    return cache


def build_rate_limiter(sessions: sessionmaker[Session], store: RateStore) -> RateLimiter:
    """The request throttles, their settings read at most every few seconds (and at once after a
    change committed in this process)."""

    def load() -> ThrottleConfig:
        with sessions() as db:
            db.connection(execution_options={"sqlite_begin": "DEFERRED"})
            return throttle_config(db)

    config = ConfigCache(load)
    on_commit_of(sessions, (InstanceSettings, RateLimitOverride), config.invalidate)
    return RateLimiter(store, config)


def build_metrics(
    engine: Engine, sessions: sessionmaker[Session], clock: Clock, usage: UsageRecorder
) -> Metrics:
    """The figures of /-/metrics: requests and authentications are counted by the adapters."""
    metrics = Metrics()
    metrics.watch_engine(engine)

    def tokens() -> dict[tuple[str, ...], float]:
        with sessions() as db:
            db.connection(execution_options={"sqlite_begin": "DEFERRED"})
            counts = tokens_by_expiry(db, clock.now().date())
        return {key: float(count) for key, count in counts.items()}

    metrics.add_reading(
        "keycrew_tokens", "Live (not revoked) tokens by kind and expiry", ["kind", "bucket"], tokens
    )
    metrics.add_reading(
        "keycrew_token_usage_pending",
        "Tokens whose last use waits to be written",
        [],
        lambda: {(): float(usage.pending())},
    )

    def outbox(status: str) -> dict[tuple[str, ...], float]:
        with sessions() as db:
            db.connection(execution_options={"sqlite_begin": "DEFERRED"})
            count = db.scalar(select(func.count()).where(OutboxMessage.status == status))
        return {(): float(count or 0)}

    metrics.add_reading(
        "keycrew_outbox_pending", "E-mail in the outbox waiting to be sent", [], lambda: outbox(PENDING)
    )
    metrics.add_reading(
        "keycrew_outbox_failed",
        "E-mail in the outbox given up on after its last attempt",
        [],
        lambda: outbox(FAILED),
    )
    return metrics


@dataclass(frozen=True)
class RootCredentials:
    password: str
    token: str
    password_generated: bool
    token_generated: bool


def migrate(runtime: Runtime) -> None:
    upgrade(runtime.engine)


def seed(runtime: Runtime) -> RootCredentials | None:
    """On an empty database create root (id 1, admin) with a password and a token; else None."""
    settings = runtime.settings
    with runtime.sessions() as db, db.begin():
        if db.scalar(select(func.count()).select_from(User)):
            return None
        ctx = runtime.ctx(db, Actor.system())
        instance_settings(ctx)
        given_password = settings.initial_root_password
        password = given_password.get_secret_value() if given_password else pysecrets.token_urlsafe(18)
        root = create_user(
            ctx,
            username="root",
            email="admin@example.com",
            name="Administrator",
            password=password,
            admin=True,
        )
        given_token = settings.initial_root_token
        issued = create_personal_access_token(
            ctx.as_actor(Actor.system(root)),
            root,
            name="initial root token",
            scopes=list(ROOT_TOKEN_SCOPES),
            value=given_token.get_secret_value() if given_token else None,
        )
        return RootCredentials(password, issued.value, given_password is None, given_token is None)
