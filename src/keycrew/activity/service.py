"""Writing contribution events, always inside the transaction of the change they describe, and
moving or deleting them with the users, issues and notes they are about."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, or_, select, update

from keycrew.activity.kinds import Action, PushAction, RefType
from keycrew.activity.models import ActivityEvent, PushEventPayload
from keycrew.context import Ctx

TITLE_MAX = 255
COMMIT_TITLE_MAX = 70


@dataclass(frozen=True)
class EventTarget:
    """What an event is about: GitLab's class name, the id, its title (None: the project itself)."""

    type: str
    id: int
    title: str | None = None


@dataclass(frozen=True)
class PushData:
    """One ref of a push (or, with ``ref_count``, a bulk push of that many refs of one kind)."""

    action: PushAction
    ref_type: RefType
    commit_count: int = 0
    commit_from: str | None = None
    commit_to: str | None = None
    ref: str | None = None
    commit_title: str | None = None
    ref_count: int | None = None


def commit_title(message: str | None) -> str | None:
    """GitLab's push title: the first line, stripped, at most 70 characters ("..." when cut)."""
    if not message:
        return None
    first = message.split("\n", 1)[0].strip()
    if len(first) > COMMIT_TITLE_MAX:
        first = first[: COMMIT_TITLE_MAX - 3] + "..."
    return first


def record_event(
    ctx: Ctx,
    action: Action,
    project_id: int,
    *,
    author_id: int | None = None,
    target: EventTarget | None = None,
    push: PushData | None = None,
) -> ActivityEvent | None:
    """Add one event to the current transaction, by ``author_id`` (default: the acting user, a bot
    when a bot acts). Nothing is written without an author (a system action with no user)."""
    author = ctx.actor.user_id if author_id is None else author_id
    if author is None:
        return None
    now = ctx.now()
    title = None if target is None or target.title is None else target.title[:TITLE_MAX]
    event = ActivityEvent(
        project_id=project_id,
        author_id=author,
        action=int(action),
        target_type=None if target is None else target.type,
        target_id=None if target is None else target.id,
        target_title=title,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(event)
    if push is not None:
        ctx.db.flush()
        ctx.db.add(
            PushEventPayload(
                event_id=event.id,
                commit_count=push.commit_count,
                action=int(push.action),
                ref_type=int(push.ref_type),
                commit_from=push.commit_from,
                commit_to=push.commit_to,
                ref=push.ref,
                commit_title=push.commit_title,
                ref_count=push.ref_count,
            )
        )
    return event


def _count(result: object) -> int:
    rowcount = getattr(result, "rowcount", None)
    return int(rowcount) if rowcount is not None and rowcount >= 0 else 0


def move_events(ctx: Ctx, from_user_id: int, to_user_id: int) -> int:
    """Credit ``from_user_id``'s events to ``to_user_id`` (the Ghost User); returns how many."""
    return _count(
        ctx.db.execute(
            update(ActivityEvent)
            .where(ActivityEvent.author_id == from_user_id)
            .values(author_id=to_user_id)
            .execution_options(synchronize_session=False)
        )
    )


def delete_events(
    ctx: Ctx,
    *,
    author_id: int | None = None,
    targets: dict[str, Select[Any] | list[int]] | None = None,
) -> int:
    """Delete the events by ``author_id`` and those about the given targets (class name -> ids, or
    a select of ids), with their push payloads; returns how many."""
    conditions = []
    if author_id is not None:
        conditions.append(ActivityEvent.author_id == author_id)
    for target_type, ids in (targets or {}).items():
        conditions.append((ActivityEvent.target_type == target_type) & ActivityEvent.target_id.in_(ids))
    if not conditions:
        return 0
    where = or_(*conditions)
    # The payloads first: SQLite cascades only with its foreign keys on, PostgreSQL always.
    ctx.db.execute(
        delete(PushEventPayload)
        .where(PushEventPayload.event_id.in_(select(ActivityEvent.id).where(where)))
        .execution_options(synchronize_session=False)
    )
    return _count(
        ctx.db.execute(delete(ActivityEvent).where(where).execution_options(synchronize_session=False))
    )
