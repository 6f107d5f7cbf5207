"""Writing audit events, always inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keycrew.audit.events import Event
from keycrew.audit.models import AuditEvent
from keycrew.context import Ctx

INSTANCE_ENTITY = "Gitlab::Audit::InstanceScope"

# What reacts to a state change (webhooks, e-mail): called with each audit event as it is added,
# inside the same transaction, so that a reaction's rows (a hook delivery, an outbox message)
# commit or roll back with the change. Installed once by the composition root
# (``keycrew.bootstrap``), since the reacting packages sit above this one.
Listener = Callable[[Ctx, AuditEvent], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    """Call ``listener`` for every audit event recorded from now on (idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)


@dataclass(frozen=True)
class Entity:
    """Where an event belongs: a User, Group or Project, or the instance (id 1)."""

    type: str
    id: int
    path: str | None = None

    @classmethod
    def instance(cls) -> Entity:
        return cls(INSTANCE_ENTITY, 1, None)

    def as_target(self) -> Target:
        """The entity itself as an event's target (a group updated, a user blocked)."""
        return Target(self.type, self.id, self.path)


@dataclass(frozen=True)
class Target:
    """What an event is about: its type (GitLab's class name), id and a readable name."""

    type: str
    id: int | None
    details: str | None = None


def record(
    ctx: Ctx,
    event: Event,
    entity: Entity,
    target: Target | None = None,
    **details: Any,
) -> AuditEvent:
    """Add one audit event to the current transaction (it commits or rolls back with the change)."""
    actor = ctx.actor
    user = actor.user
    row = AuditEvent(
        created_at=ctx.now(),
        event_name=event.value,
        author_id=None if user is None else user.id,
        author_name="(system)" if user is None else user.username,
        token_id=actor.token_id,
        entity_type=entity.type,
        entity_id=entity.id,
        entity_path=entity.path,
        target_type=None if target is None else target.type,
        target_id=None if target is None else target.id,
        target_details=None if target is None else target.details,
        ip_address=actor.ip,
        impersonated_by_id=None if actor.impersonator is None else actor.impersonator.id,
        details={k: v for k, v in details.items() if v is not None},
    )
    ctx.db.add(row)
    for listener in _listeners:
        listener(ctx, row)
    return row


class Changes(dict[str, Any]):
    """What an update changed, as its audit event records it: field -> {"from": old, "to": new}."""

    def note(self, field: str, old: Any, new: Any) -> bool:
        """Record ``field`` going from ``old`` to ``new``; False (nothing noted) when ``new`` is None
        (not given) or equal to ``old``."""
        if new is None or new == old:
            return False
        self[field] = {"from": old, "to": new}
        return True


def record_update(ctx: Ctx, event: Event, entity: Entity, changes: Changes, **details: Any) -> AuditEvent:
    """The event of an update to ``entity`` itself, with what changed."""
    return record(ctx, event, entity, entity.as_target(), changes=dict(changes), **details)
