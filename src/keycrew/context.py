"""What every use case receives: the session, the explicit actor, the clock, instance facts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from keycrew.clock import Clock, SystemClock

if TYPE_CHECKING:
    from keycrew.identity.models import User


@dataclass(frozen=True)
class Instance:
    """Facts about this keycrew instance that rules depend on."""

    external_url: str = "http://127.0.0.1:8080"
    host: str = "127.0.0.1"
    secret_key: bytes = b"insecure-test-key"
    token_prefix: str = ""
    # Where projects' bare repositories live (None: no repositories, e.g. a bare unit-test Ctx).
    repositories_dir: Path | None = None
    # Where the package registry keeps its files (None: nowhere, e.g. a bare unit-test Ctx).
    packages_dir: Path | None = None
    # How long a web session lives without use (GitLab's session_expire_delay, in minutes).
    session_expire_minutes: int = 10080


@dataclass(frozen=True)
class Actor:
    """Who acts, with which credential, from where. ``user`` None is an anonymous visitor."""

    user: User | None
    token_id: int | None = None
    ip: str | None = None
    # The scopes of the token used; None when acting without a token (CLI, system, session).
    scopes: frozenset[str] | None = None
    # The admin behind a sudo request, if any.
    impersonator: User | None = None
    via: str = "api"

    @property
    def is_admin(self) -> bool:
        return self.user is not None and self.user.admin

    @property
    def user_id(self) -> int | None:
        return None if self.user is None else self.user.id

    @property
    def is_anonymous(self) -> bool:
        return self.user is None

    @classmethod
    def system(cls, user: User | None = None) -> Actor:
        return cls(user=user, via="system")


@dataclass
class Ctx:
    db: Session
    actor: Actor
    instance: Instance = field(default_factory=Instance)
    clock: Clock = field(default_factory=SystemClock)

    def now(self) -> dt.datetime:
        return self.clock.now()

    def today(self) -> dt.date:
        return self.clock.now().date()

    def as_actor(self, actor: Actor) -> Ctx:
        return Ctx(self.db, actor, self.instance, self.clock)
