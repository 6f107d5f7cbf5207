"""The composition root: settings → engine → sessions → instance facts, and first-boot seeding."""

from __future__ import annotations

import secrets as pysecrets
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from keycrew.clock import Clock, SystemClock
from keycrew.config import Settings
from keycrew.context import Actor, Ctx, Instance, LazySession
from keycrew.db.engine import make_engine, make_sessionmaker
from keycrew.db.reads import HeldReads, PoolReads, Reader
from keycrew.identity.models import User
from keycrew.identity.users import create_user
from keycrew.infra.auth_cache import AuthCache, Invalidation
from keycrew.infra.metrics import Metrics
from keycrew.infra.ratelimit import FailedAuthThrottle
from keycrew.infra.usage import UsageRecorder
from keycrew.instance.settings import instance_settings
from keycrew.migrations import upgrade
from keycrew.tokens.metrics import tokens_by_expiry
from keycrew.tokens.personal import create_personal_access_token
from keycrew.tokens.principal import WATCHED_ROWS, Principal
from keycrew.tokens.scopes import ROOT_TOKEN_SCOPES
from keycrew.tokens.usage import token_usage_recorder


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
    metrics: Metrics = field(default_factory=Metrics)
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

    def stop_background(self) -> None:
        if self.usage is not None:
            self.usage.stop()
        if self.invalidation is not None:
            self.invalidation.stop()
        held, self._held_reads = self._held_reads, None
        if held is not None:
            held.release()


def build(settings: Settings, clock: Clock | None = None) -> Runtime:
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url, pool_size=settings.db_pool_size)
    instance = Instance(
        external_url=settings.external_url,
        host=settings.host_name,
        secret_key=settings.resolved_secret_key,
        token_prefix=settings.instance_token_prefix,
        repositories_dir=(settings.data_dir / "repositories").resolve(),
        packages_dir=(settings.data_dir / "packages").resolve(),
        session_expire_minutes=settings.session_expire_delay,
    )
    clock = clock or SystemClock()
    sessions = make_sessionmaker(engine)
    cache: AuthCache[Principal] = AuthCache()
    invalidation = Invalidation(cache, engine, settings.data_dir, WATCHED_ROWS)
    invalidation.install(sessions)
    usage = token_usage_recorder(sessions, clock)
    return Runtime(
        settings,
        engine,
        sessions,
        instance,
        clock,
        cache,
        invalidation,
        usage,
        metrics=build_metrics(engine, sessions, clock, usage),
    )


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
