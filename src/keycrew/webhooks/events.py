"""From state changes to hook deliveries: an audit listener (installed by keycrew.bootstrap).

Each audit event that GitLab fires hooks for queues its deliveries in the same transaction:
system hooks (``user_create``, ``user_add_to_team``, ``project_create``, ``group_create``...),
group hooks' ``Member Hook``, ``Project Hook`` and ``Subgroup Hook``, and project and group
hooks' ``Push Hook`` / ``Tag Push Hook``. The deliveries commit or roll back with the change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from keycrew.access.models import Member
from keycrew.audit.events import Event
from keycrew.audit.models import AuditEvent
from keycrew.context import Ctx
from keycrew.identity.models import User
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project
from keycrew.repos import storage
from keycrew.webhooks import payloads, service
from keycrew.webhooks.models import WebHook


def _user(ctx: Ctx, user_id: int | None) -> User | None:
    return None if user_id is None else ctx.db.get(User, user_id)


def _owner(ctx: Ctx, project: Project) -> User | None:
    namespace = project.namespace
    if namespace.kind != "group" and namespace.owner_id is not None:
        return _user(ctx, namespace.owner_id)
    return _user(ctx, project.creator_id)


def _queue_all(ctx: Ctx, hooks: list[WebHook], trigger: str, payload: dict[str, Any]) -> None:
    for hook in hooks:
        service.queue(ctx, hook, trigger, payload)


def _system(ctx: Ctx, payload: dict[str, Any]) -> None:
    _queue_all(ctx, service.system_hooks(ctx), "system_hooks", payload)


def _level(value: Any) -> int:
    if isinstance(value, dict):
        value = value.get("to")
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else 0


def _expiry(value: Any) -> dt.date | None:
    if isinstance(value, dict):
        value = value.get("to")
    try:
        return None if not value else dt.date.fromisoformat(str(value))
    except ValueError:
        return None


def _member(ctx: Ctx, row: AuditEvent, verb: str) -> None:
    user = _user(ctx, row.target_id)
    if user is None:
        return
    details = row.details
    now = row.created_at
    if row.entity_type == "Project":
        project = ctx.db.get(Project, row.entity_id)
        if project is None:
            return
        level = _level(details.get("access_level")) or _current_level(
            ctx, SourceType.PROJECT.value, project.id, user.id
        )
        names = {
            "add": "user_add_to_team",
            "remove": "user_remove_from_team",
            "update": "user_update_for_team",
        }
        _system(ctx, payloads.team_member_event(names[verb], project, user, level, now))
        return
    if row.entity_type != "Group":
        return
    group = ctx.db.get(Namespace, row.entity_id)
    if group is None:
        return
    level = _level(details.get("access_level")) or _current_level(
        ctx, SourceType.NAMESPACE.value, group.id, user.id
    )
    name = {
        "add": "user_add_to_group",
        "remove": "user_remove_from_group",
        "update": "user_update_for_group",
    }[verb]
    _system(ctx, payloads.group_member_event(name, group, user, level, now))
    expires = _expiry(details.get("expires_at"))
    if expires is None and verb == "update":
        expires = _current_expiry(ctx, group.id, user.id)
    member_hook = payloads.group_member_event(
        name, group, user, level, now, expires_at=expires, member_hook=True
    )
    _queue_all(ctx, service.group_hooks(ctx, group, "member_events"), "member_hooks", member_hook)


def _current_level(ctx: Ctx, source_type: str, source_id: int, user_id: int) -> int:
    member = _find_member(ctx, source_type, source_id, user_id)
    return 0 if member is None else int(member.access_level)


def _current_expiry(ctx: Ctx, group_id: int, user_id: int) -> dt.date | None:
    member = _find_member(ctx, SourceType.NAMESPACE.value, group_id, user_id)
    return None if member is None else member.expires_at


def _find_member(ctx: Ctx, source_type: str, source_id: int, user_id: int) -> Member | None:
    return ctx.db.scalar(
        select(Member).where(
            Member.source_type == source_type, Member.source_id == source_id, Member.user_id == user_id
        )
    )


def _project_lifecycle(event_name: str) -> Callable[[Ctx, AuditEvent], None]:
    """``project_create`` / ``project_destroy``: the system hooks, and the group hooks (with
    ``project_events``) of the project's group and the groups above it."""

    def react(ctx: Ctx, row: AuditEvent) -> None:
        project = ctx.db.get(Project, row.entity_id)
        if project is None:
            return
        owner = _owner(ctx, project)
        _system(ctx, payloads.project_event(event_name, project, owner))
        group_payload = payloads.project_event(event_name, project, owner, for_group_hook=True)
        hooks = service.group_hooks(ctx, project.namespace, "project_events")
        _queue_all(ctx, hooks, "project_hooks", group_payload)

    return react


def _project_transferred(ctx: Ctx, row: AuditEvent) -> None:
    project = ctx.db.get(Project, row.entity_id)
    if project is None:
        return
    old = row.details.get("from")
    _system(
        ctx,
        payloads.project_event(
            "project_transfer",
            project,
            _owner(ctx, project),
            old_path_with_namespace=str(old) if old else None,
        ),
    )


def _group_created(ctx: Ctx, row: AuditEvent) -> None:
    group = ctx.db.get(Namespace, row.entity_id)
    if group is None:
        return
    _system(ctx, payloads.group_event("group_create", group))
    parent = group.parent
    if parent is not None:
        payload = payloads.subgroup_event("subgroup_create", group, parent)
        _queue_all(ctx, service.group_hooks(ctx, parent, "subgroup_events"), "subgroup_hooks", payload)


def _group_deleted(ctx: Ctx, row: AuditEvent) -> None:
    group = ctx.db.get(Namespace, row.entity_id)
    if group is None:
        return
    _system(ctx, payloads.group_event("group_destroy", group))
    parent = group.parent
    if parent is not None:
        payload = payloads.subgroup_event("subgroup_destroy", group, parent)
        _queue_all(ctx, service.group_hooks(ctx, parent, "subgroup_events"), "subgroup_hooks", payload)


def _user_event(name: str) -> Callable[[Ctx, AuditEvent], None]:
    def react(ctx: Ctx, row: AuditEvent) -> None:
        user = _user(ctx, row.target_id)
        if user is not None:
            _system(ctx, payloads.user_event(name, user))

    return react


def _pushed(ctx: Ctx, row: AuditEvent) -> None:
    project = ctx.db.get(Project, row.entity_id)
    refs = row.details.get("refs") or []
    if project is None or not refs:
        return
    user = _user(ctx, row.author_id)
    external = ctx.instance.external_url
    root = ctx.instance.repositories_dir
    repository = None if root is None else storage.repository_path(root, project.id)
    changes = [r for r in refs if isinstance(r, dict) and {"ref", "before", "after"} <= set(r)]
    project_hooks_by_flag = {
        flag: service.project_hooks(ctx, project, flag) + service.group_hooks(ctx, project.namespace, flag)
        for flag in ("push_events", "tag_push_events")
    }
    system_by_flag = {flag: service.system_hooks(ctx, flag) for flag in ("push_events", "tag_push_events")}
    for change in changes:
        ref = str(change["ref"])
        tag = ref.startswith("refs/tags/")
        flag = "tag_push_events" if tag else "push_events"
        trigger = "tag_push_hooks" if tag else "push_hooks"
        hooks = [
            h for h in project_hooks_by_flag[flag] + system_by_flag[flag] if service.branch_matches(h, ref)
        ]
        if not hooks:
            continue
        payload = payloads.push_event(
            project, user, ref, str(change["before"]), str(change["after"]), external, repository
        )
        _queue_all(ctx, hooks, trigger, payload)
    updates = service.system_hooks(ctx, "repository_update_events")
    if updates:
        payload = payloads.repository_update_event(project, user, changes, external)
        _queue_all(ctx, updates, "repository_update_hooks", payload)


_REACTIONS: dict[str, Callable[[Ctx, AuditEvent], None]] = {
    Event.USER_CREATED.value: _user_event("user_create"),
    Event.USER_DELETED.value: _user_event("user_destroy"),
    Event.MEMBER_ADDED.value: lambda ctx, row: _member(ctx, row, "add"),
    Event.MEMBER_REMOVED.value: lambda ctx, row: _member(ctx, row, "remove"),
    Event.MEMBER_ACCESS_LEVEL_CHANGED.value: lambda ctx, row: _member(ctx, row, "update"),
    Event.MEMBER_EXPIRY_CHANGED.value: lambda ctx, row: _member(ctx, row, "update"),
    Event.PROJECT_CREATED.value: _project_lifecycle("project_create"),
    Event.PROJECT_DELETED.value: _project_lifecycle("project_destroy"),
    Event.PROJECT_TRANSFERRED.value: _project_transferred,
    Event.GROUP_CREATED.value: _group_created,
    Event.GROUP_DELETED.value: _group_deleted,
    Event.GIT_PUSH.value: _pushed,
}


def on_audit_event(ctx: Ctx, row: AuditEvent) -> None:
    """The audit listener: queue the deliveries the event calls for (nothing for most events)."""
    react = _REACTIONS.get(row.event_name)
    if react is not None:
        react(ctx, row)
