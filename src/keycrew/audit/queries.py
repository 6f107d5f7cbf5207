"""Reading audit events: who may read which, and the filtered, newest-first queries.

The audit package sits below access in the layers, so callers pass in the viewer's access level
on the group or project (computed by keycrew.access); the rules on what that level grants live here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, false, func, select

from keycrew.audit.models import AuditEvent
from keycrew.audit.service import INSTANCE_ENTITY
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.errors import Forbidden, NotFound

# GitLab's access levels (the same integers as keycrew.access.levels.AccessLevel).
DEVELOPER = 30
MAINTAINER = 40
OWNER = 50


ENTITY_TYPES = ("User", "Group", "Project", INSTANCE_ENTITY)


@dataclass(frozen=True)
class EventFilter:
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    entity_type: str | None = None
    entity_id: int | None = None
    # The admin area's filters (the API passes none of them):
    # the actor's username as the event recorded it (any case, with or without "@"),
    author_username: str | None = None
    # text found anywhere in the target's details (any case),
    target: str | None = None
    # and one event name (an audit.events.Event value).
    event_name: str | None = None


def _like(value: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(query: Select[Any], flt: EventFilter) -> Select[Any]:
    if flt.author_username is not None:
        author = flt.author_username.removeprefix("@").lower()
        query = query.where(func.lower(AuditEvent.author_name) == author)
    if flt.target is not None:
        query = query.where(func.lower(AuditEvent.target_details).like(_like(flt.target), escape="\\"))
    if flt.event_name is not None:
        query = query.where(AuditEvent.event_name == flt.event_name)
    if flt.created_after is not None:
        query = query.where(AuditEvent.created_at >= flt.created_after)
    if flt.created_before is not None:
        query = query.where(AuditEvent.created_at <= flt.created_before)
    if flt.entity_type is not None:
        query = query.where(AuditEvent.entity_type == flt.entity_type)
    if flt.entity_id is not None:
        query = query.where(AuditEvent.entity_id == flt.entity_id if 0 < flt.entity_id <= MAX_ID else false())
    return query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())


def _require_admin(ctx: Ctx) -> None:
    if not ctx.actor.is_admin:
        raise Forbidden()


def instance_events(ctx: Ctx, flt: EventFilter) -> Select[Any]:
    """Every event, for admins only (Forbidden otherwise)."""
    _require_admin(ctx)
    return _filtered(select(AuditEvent), flt)


def instance_event(ctx: Ctx, event_id: int) -> AuditEvent:
    """One event by id, for admins only. Raises Forbidden, NotFound("Audit Event")."""
    _require_admin(ctx)
    event = ctx.db.get(AuditEvent, event_id) if 0 < event_id <= MAX_ID else None
    if event is None:
        raise NotFound("Audit Event")
    return event


def _scoped(
    ctx: Ctx, entity_type: str, entity_id: int, level: int, all_from: int, flt: EventFilter
) -> Select[Any]:
    """Events of one group/project: everyone's from ``all_from`` up, one's own from Developer up."""
    if ctx.actor.is_admin or level >= all_from:
        query = select(AuditEvent)
    elif level >= DEVELOPER and ctx.actor.user_id is not None:
        query = select(AuditEvent).where(AuditEvent.author_id == ctx.actor.user_id)
    else:
        raise Forbidden()
    query = query.where(AuditEvent.entity_type == entity_type, AuditEvent.entity_id == entity_id)
    return _filtered(query, EventFilter(flt.created_after, flt.created_before))


def group_events(ctx: Ctx, group_id: int, level: int, flt: EventFilter) -> Select[Any]:
    """A group's events for a viewer with ``level`` on it: Owners and admins see all,
    Developers and Maintainers only their own actions, others are Forbidden."""
    return _scoped(ctx, "Group", group_id, level, OWNER, flt)


def project_events(ctx: Ctx, project_id: int, level: int, flt: EventFilter) -> Select[Any]:
    """A project's events: Maintainers+ and admins see all, Developers their own, others Forbidden."""
    return _scoped(ctx, "Project", project_id, level, MAINTAINER, flt)


def _scoped_event(
    ctx: Ctx, entity_type: str, entity_id: int, level: int, needed: int, event_id: int
) -> AuditEvent:
    if not ctx.actor.is_admin and level < needed:
        raise Forbidden()
    event = ctx.db.get(AuditEvent, event_id) if 0 < event_id <= MAX_ID else None
    if event is None or event.entity_type != entity_type or event.entity_id != entity_id:
        raise NotFound("Audit Event")
    return event


def group_event(ctx: Ctx, group_id: int, level: int, event_id: int) -> AuditEvent:
    """One of a group's events: group Owners and admins only."""
    return _scoped_event(ctx, "Group", group_id, level, OWNER, event_id)


def project_event(ctx: Ctx, project_id: int, level: int, event_id: int) -> AuditEvent:
    """One of a project's events: project Maintainers+ and admins only."""
    return _scoped_event(ctx, "Project", project_id, level, MAINTAINER, event_id)
