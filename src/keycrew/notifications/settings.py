"""Notification settings: a user's level globally and per group or project (GitLab's
``NotificationSetting``), read and changed by the user, and the effective level that decides
whether a user receives an e-mail about a group or project."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.exc import IntegrityError

from keycrew.audit.events import Event
from keycrew.audit.service import Changes, Entity, record_update
from keycrew.context import Ctx
from keycrew.errors import Forbidden, Invalid, Rejected
from keycrew.identity.models import User
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project, chain
from keycrew.notifications.models import NotificationSetting


class Level(IntEnum):
    """GitLab's ``NotificationSetting.levels``."""

    DISABLED = 0
    PARTICIPATING = 1
    WATCH = 2
    GLOBAL = 3
    MENTION = 4
    CUSTOM = 5

    @property
    def label(self) -> str:
        return self.name.lower()


LEVEL_NAMES: tuple[str, ...] = tuple(level.label for level in Level)
_BY_NAME = {level.label: level for level in Level}

# GitLab's EMAIL_EVENTS (CE), in its order: the custom level's switches.
EMAIL_EVENTS: tuple[str, ...] = (
    "new_release",
    "new_note",
    "new_issue",
    "reopen_issue",
    "close_issue",
    "reassign_issue",
    "issue_due",
    "new_merge_request",
    "push_to_merge_request",
    "reopen_merge_request",
    "close_merge_request",
    "reassign_merge_request",
    "change_reviewer_merge_request",
    "merge_merge_request",
    "failed_pipeline",
    "fixed_pipeline",
    "success_pipeline",
    "moved_project",
    "merge_when_pipeline_succeeds",
)
# Events that read as on while nobody set them (GitLab: failed and fixed pipelines).
_ON_BY_DEFAULT = frozenset({"failed_pipeline", "fixed_pipeline"})

# With no row: participating globally, and "global" (follow the level above) for a group or project.
DEFAULT_GLOBAL = Level.PARTICIPATING
DEFAULT_SOURCE = Level.GLOBAL

Source = Project | Namespace


@dataclass(frozen=True)
class SettingView:
    """A setting as the API shows it: the level, every custom event's value when the level is
    custom, and (global setting only) the address the user's e-mail goes to."""

    level: Level
    events: dict[str, bool] | None
    notification_email: str | None = None


def level_named(name: str) -> Level:
    """The level called ``name``; GitLab's 400 ``'x' is not a valid level`` for any other word."""
    found = _BY_NAME.get(name)
    if found is None:
        raise Rejected(f"'{name}' is not a valid level")
    return found


def _source_key(source: Source | None) -> tuple[str | None, int | None]:
    if source is None:
        return None, None
    if isinstance(source, Project):
        return SourceType.PROJECT.value, source.id
    return SourceType.NAMESPACE.value, source.id


def _acting_user(ctx: Ctx) -> User:
    user = ctx.actor.user
    if user is None:
        raise Forbidden()
    return user


def _row(ctx: Ctx, user_id: int, source: Source | None) -> NotificationSetting | None:
    source_type, source_id = _source_key(source)
    query = select(NotificationSetting).where(NotificationSetting.user_id == user_id)
    if source_type is None:
        query = query.where(NotificationSetting.source_type.is_(None))
    else:
        query = query.where(
            NotificationSetting.source_type == source_type, NotificationSetting.source_id == source_id
        )
    return ctx.db.scalars(query).first()


def events_of(stored: dict[str, Any] | None) -> dict[str, bool]:
    """Every custom event's value: as the user set it, else its default."""
    stored = stored or {}
    return {event: bool(stored.get(event, event in _ON_BY_DEFAULT)) for event in EMAIL_EVENTS}


def _view(level: Level, stored: dict[str, Any] | None, email: str | None = None) -> SettingView:
    return SettingView(level, events_of(stored) if level is Level.CUSTOM else None, email)


def notification_email(user: User) -> str:
    """Where ``user``'s e-mail goes (GitLab's ``notification_email_or_default``): the primary
    address, the only verified address a keycrew user has."""
    return user.email


def _default(source: Source | None) -> Level:
    return DEFAULT_GLOBAL if source is None else DEFAULT_SOURCE


def get_setting(ctx: Ctx, source: Source | None = None) -> SettingView:
    """The acting user's setting, global (``source`` None) or for a group or project."""
    user = _acting_user(ctx)
    row = _row(ctx, user.id, source)
    level = Level(row.level) if row is not None else _default(source)
    return _view(
        level, None if row is None else row.events, notification_email(user) if source is None else None
    )


def _ensure_row(ctx: Ctx, user: User, source: Source | None) -> NotificationSetting:
    """The user's row for ``source``, created with the default level if there is none (a
    concurrent creation of the same row wins; this one then reads it)."""
    row = _row(ctx, user.id, source)
    if row is not None:
        return row
    source_type, source_id = _source_key(source)
    now = ctx.now()
    row = NotificationSetting(
        user_id=user.id,
        source_type=source_type,
        source_id=source_id,
        level=int(_default(source)),
        events={},
        created_at=now,
        updated_at=now,
    )
    try:
        with ctx.db.begin_nested():
            ctx.db.add(row)
            ctx.db.flush()
    except IntegrityError:
        found = _row(ctx, user.id, source)
        assert found is not None
        return found
    return row


def update_setting(
    ctx: Ctx,
    source: Source | None = None,
    *,
    level: str | None = None,
    events: dict[str, bool] | None = None,
    email: str | None = None,
) -> SettingView:
    """Change the acting user's setting (GitLab's PUT ``notification_settings``): the level, any
    custom event, and (global only) the notification e-mail, which must be one of the user's
    verified addresses. One transaction with its audit event (when something changed)."""
    user = _acting_user(ctx)
    if email is not None and source is None and email.strip().lower() != notification_email(user).lower():
        raise Invalid.field("notification_email", "must be an email you have verified")
    found = _row(ctx, user.id, source)
    old_level = Level(found.level) if found is not None else _default(source)
    stored = dict(found.events or {}) if found is not None else {}
    changes = Changes()
    new_level = old_level if level is None else level_named(level)
    changes.note("level", old_level.label, new_level.label)
    merged = dict(stored)
    for event, value in (events or {}).items():
        if event in EMAIL_EVENTS and stored.get(event) != value:
            changes.note(event, stored.get(event), value)
            merged[event] = value
    if not changes:
        # Nothing to change: no row is written (one with the defaults is as good as none).
        return _view(old_level, stored, notification_email(user) if source is None else None)
    row = found if found is not None else _ensure_row(ctx, user, source)
    row.level = int(new_level)
    row.events = merged
    row.updated_at = ctx.now()
    source_type, source_id = _source_key(source)
    record_update(
        ctx,
        Event.NOTIFICATION_SETTINGS_UPDATED,
        Entity("User", user.id, user.username),
        changes,
        source_type=source_type,
        source_id=source_id,
    )
    ctx.db.flush()
    return _view(new_level, merged, notification_email(user) if source is None else None)


# -- effective levels: who wants e-mail about a group or project --------------------------------


def effective_levels(ctx: Ctx, user_ids: Iterable[int], source: Source | None = None) -> dict[int, Level]:
    """Each user's level for ``source`` (a project, a group, or None for the global one): the
    source's own setting unless it is "global", then the nearest group's above it that is not,
    then the user's global setting (participating by default). One query."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    # The sources from the nearest to the farthest.
    order: list[tuple[str, int]] = []
    if isinstance(source, Project):
        order.append((SourceType.PROJECT.value, source.id))
        order.extend((SourceType.NAMESPACE.value, ns.id) for ns in chain(source.namespace) if ns.is_group)
    elif isinstance(source, Namespace):
        order.extend((SourceType.NAMESPACE.value, ns.id) for ns in chain(source) if ns.is_group)
    wanted: list[ColumnElement[bool]] = [NotificationSetting.source_type.is_(None)]
    by_type: dict[str, list[int]] = {}
    for kind, source_id in order:
        by_type.setdefault(kind, []).append(source_id)
    wanted.extend(
        and_(NotificationSetting.source_type == kind, NotificationSetting.source_id.in_(source_ids))
        for kind, source_ids in by_type.items()
    )
    rows = ctx.db.execute(
        select(
            NotificationSetting.user_id,
            NotificationSetting.source_type,
            NotificationSetting.source_id,
            NotificationSetting.level,
        ).where(NotificationSetting.user_id.in_(ids), or_(*wanted))
    ).all()
    found: dict[tuple[int, str | None, int | None], int] = {(r[0], r[1], r[2]): r[3] for r in rows}
    levels: dict[int, Level] = {}
    for user_id in ids:
        level: Level | None = None
        for kind, source_id in order:
            value = found.get((user_id, kind, source_id))
            if value is not None and value != Level.GLOBAL:
                level = Level(value)
                break
        if level is None:
            value = found.get((user_id, None, None))
            level = DEFAULT_GLOBAL if value is None or value == Level.GLOBAL else Level(value)
        levels[user_id] = level
    return levels
