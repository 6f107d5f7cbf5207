"""What every use case receives: the session, the explicit actor, the clock, instance facts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.orm import Session

from keycrew.clock import Clock, SystemClock
from keycrew.db.reads import Reader, SessionReads

if TYPE_CHECKING:
    from keycrew.identity.models import User
    from keycrew.identity.views import UserView


@dataclass(frozen=True)
class LiveSettings:
    """The instance settings that every request consults, as a cache holds them (read from the
    settings row at most every second, never per request; see ``keycrew.instance.live``)."""

    # Admin Mode: admins act as admins only with an admin_mode token or a re-authenticated session.
    admin_mode: bool = False
    # The instance prefix an admin set for new tokens; None: the operator's (``Instance``).
    token_prefix: str | None = None
    # Whether any compliance framework exists: while none does, no project has one, and the
    # project entity's ``compliance_frameworks`` needs no statement (True when unknown).
    compliance_frameworks: bool = True


DEFAULT_LIVE_SETTINGS = LiveSettings()


def _no_live_settings() -> LiveSettings:
    return DEFAULT_LIVE_SETTINGS


@dataclass(frozen=True)
class Instance:
    """Facts about this keycrew instance that rules depend on."""

    external_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    secret_key: bytes = b"insecure-test-key"
    # KEYCREW_INSTANCE_TOKEN_PREFIX; an admin's personal_access_token_prefix replaces it.
    configured_token_prefix: str = ""
    # Where projects' bare repositories live (None: no repositories, e.g. a bare unit-test Ctx).
    repositories_dir: Path | None = None
    # Where the package registry keeps its files (None: nowhere, e.g. a bare unit-test Ctx).
    packages_dir: Path | None = None
    # Where files that came with e-mail (Service Desk) are kept, a folder per project (None: nowhere).
    uploads_dir: Path | None = None
    # How long a web session lives without use (GitLab's session_expire_delay, in minutes).
    session_expire_minutes: int = 10080
    # How direct transfer reads a source instance (KEYCREW_IMPORT_SOURCE_TIMEOUT, _RETRIES, _BACKOFF).
    import_source_timeout: float = 30.0
    import_source_retries: int = 5
    import_source_backoff: float = 1.0
    # The cached settings every request consults (a bare Instance: the defaults).
    live: Callable[[], LiveSettings] = field(default=_no_live_settings, compare=False, repr=False)

    @property
    def token_prefix(self) -> str:
        """What new tokens start with before their kind's prefix: the admin's setting if there
        is one, else the operator's. Tokens issued under an earlier prefix keep working (a token
        is found by its digest, whatever its prefix)."""
        prefix = self.live().token_prefix
        return self.configured_token_prefix if prefix is None else prefix

    @property
    def admin_mode(self) -> bool:
        return self.live().admin_mode


class UserFacts(Protocol):
    """What rules read of the acting user without its row: a loaded User or a cached snapshot."""

    @property
    def id(self) -> int: ...

    @property
    def admin(self) -> bool: ...

    @property
    def external(self) -> bool: ...

    @property
    def user_type(self) -> int: ...


class Actor:
    """Who acts, with which credential, from where. ``user`` None is an anonymous visitor.

    An actor authenticated by a cached principal knows the ``facts`` rules need (id, admin,
    external, user type) without reading the user's row; ``user``, the row itself, is loaded the
    first time something asks for it (``Actor.deferred``), so a request that only checks access
    does not read it.
    """

    __slots__ = (
        "_cached",
        "_load",
        "_user",
        "admin_powers",
        "facts",
        "impersonator",
        "ip",
        "scopes",
        "token_id",
        "via",
    )

    def __init__(
        self,
        user: User | None,
        token_id: int | None = None,
        ip: str | None = None,
        scopes: frozenset[str] | None = None,
        impersonator: User | None = None,
        via: str = "api",
        admin_powers: bool = True,
    ) -> None:
        self._user = user
        self._load: Callable[[], User] | None = None
        self._cached: UserView | None = None
        self.facts: UserFacts | None = user
        self.token_id = token_id
        self.ip = ip
        # The scopes of the token used; None when acting without a token (CLI, system, session).
        self.scopes = scopes
        # The admin behind a sudo request, if any.
        self.impersonator = impersonator
        self.via = via
        # Whether an admin acts as one: False under Admin Mode without an admin_mode token or a
        # re-authenticated session (the user is still an admin, with no admin powers).
        self.admin_powers = admin_powers

    @classmethod
    def deferred(
        cls,
        facts: UserFacts,
        load: Callable[[], User],
        *,
        cached: UserView | None = None,
        token_id: int | None,
        ip: str | None,
        scopes: frozenset[str] | None,
        admin_powers: bool = True,
    ) -> Actor:
        """An actor whose row ``load`` reads (and checks) when first needed; ``cached``, a copy
        of the row held by a cache, serves ``user_to_render`` meanwhile."""
        actor = cls(None, token_id=token_id, ip=ip, scopes=scopes, admin_powers=admin_powers)
        actor.facts = facts
        actor._load = load
        actor._cached = cached
        return actor

    @property
    def user(self) -> User | None:
        if self._load is not None:
            load, self._load = self._load, None
            self._user = load()
        return self._user

    @property
    def user_to_render(self) -> User | UserView | None:
        """The user for showing only (never to change or add to a session): the row if it was
        loaded, else the cached copy the actor was made with, else the row, loaded now."""
        if self._load is not None and self._cached is not None:
            return self._cached
        return self.user

    @property
    def is_admin(self) -> bool:
        """Whether the actor acts with admin powers (an admin, not held back by Admin Mode)."""
        return self.facts is not None and self.facts.admin and self.admin_powers

    @property
    def user_id(self) -> int | None:
        return None if self.facts is None else self.facts.id

    @property
    def is_anonymous(self) -> bool:
        return self.facts is None

    @classmethod
    def system(cls, user: User | None = None) -> Actor:
        return cls(user=user, via="system")

    def __repr__(self) -> str:
        return f"Actor(user_id={self.user_id}, token_id={self.token_id}, via={self.via!r})"


class LazySession:
    """A session opened the first time something asks for it: a read request whose reads all go
    through ``Ctx.reads`` never opens one."""

    __slots__ = ("_open", "session")

    def __init__(self, open_session: Callable[[], Session]) -> None:
        self._open = open_session
        self.session: Session | None = None

    def get(self) -> Session:
        if self.session is None:
            self.session = self._open()
        return self.session


class Ctx:
    """What every use case receives. ``db``, the session, for what changes something; ``reads``
    for rules and read models that only read (``keycrew.db.reads``): the session's own connection
    unless the request is a read, whose reads run on a connection of their own."""

    __slots__ = ("_session", "actor", "clock", "instance", "reads")

    def __init__(
        self,
        db: Session | LazySession,
        actor: Actor,
        instance: Instance | None = None,
        clock: Clock | None = None,
        reads: Reader | None = None,
    ) -> None:
        self._session = db
        self.actor = actor
        self.instance = instance if instance is not None else Instance()
        self.clock = clock if clock is not None else SystemClock()
        self.reads: Reader = reads if reads is not None else SessionReads(self._get_db)

    @property
    def db(self) -> Session:
        return self._get_db()

    def _get_db(self) -> Session:
        session = self._session
        return session.get() if isinstance(session, LazySession) else session

    def now(self) -> dt.datetime:
        return self.clock.now()

    def today(self) -> dt.date:
        return self.clock.now().date()

    def as_actor(self, actor: Actor) -> Ctx:
        return Ctx(self._session, actor, self.instance, self.clock, self.reads)

    def __repr__(self) -> str:
        return f"Ctx(actor={self.actor!r})"
