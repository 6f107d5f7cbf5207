"""Deletions that cascade: a user, a project, a group, a resource bot, in the caller's transaction.

Deleting a user, in one transaction, as GitLab's Users::DestroyService does.

A soft delete (the default) moves what the user authored to the Ghost User; a hard delete
removes it. Either way the user's tokens and memberships go, their personal namespace and its
projects go, and groups they solely own go too when allowed (always on a hard delete).

A user with more than ``DEFER_OVER`` records is deleted in two steps, as GitLab always does: the
request blocks the user, removes their tokens, memberships, personal projects and solely owned
groups, and leaves a ``ghost_user_migrations`` row; the ``ghost-migration`` job
(keycrew.automation.ghost) then moves the records a batch at a time and calls
``finish_deletion``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from keycrew.access import queries
from keycrew.access.groups import chain_ids, group_entity, lock_namespaces
from keycrew.access.levels import AccessLevel
from keycrew.access.members import has_other_owner
from keycrew.access.models import Member
from keycrew.access.policy import live
from keycrew.activity.kinds import ISSUE, NOTE
from keycrew.activity.service import delete_events, move_events
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Actor, Ctx
from keycrew.errors import Conflict, Forbidden, NotFound
from keycrew.identity.admins import keep_an_admin
from keycrew.identity.internal import ghost
from keycrew.identity.models import User
from keycrew.identity.queries import lock_user
from keycrew.identity.types import UserState, UserType
from keycrew.identity.users import user_entity
from keycrew.infra.transactions import after_commit, forget
from keycrew.namespaces import paths
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project
from keycrew.packages import storage as package_files
from keycrew.records.ghost import delete_records_of, move_records_to
from keycrew.records.ghost_migrations import GhostUserMigration, pending_migration, records_left
from keycrew.records.models import Issue, Note
from keycrew.repos import storage as repos
from keycrew.tokens.models import PersonalAccessToken

SOLE_OWNER = "User cannot be removed while is the sole-owner of a group"

# A user who authored more records than this (issues, edit marks, notes, events; counted with a
# bounded query) is deleted in the background by the ghost-migration job; fewer, at once.
DEFER_OVER = 1000


@dataclass
class Deletion:
    """What a deletion removed or moved, for the audit trail and the caller."""

    user_id: int
    username: str
    hard_delete: bool
    ghost_id: int | None = None
    records: dict[str, int] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    tokens: int = 0
    memberships: int = 0
    # Contribution events moved to the Ghost User, or deleted on a hard delete.
    events: int = 0
    # True: the user is blocked and the ghost-migration job finishes the deletion.
    deferred: bool = False


def solo_owned_groups(ctx: Ctx, user: User) -> list[int]:
    """Ids of the groups ``user`` owns directly and nobody else owns (there or above, bots aside)."""

    today = ctx.today()
    owned = ctx.db.scalars(
        select(Namespace)
        .join(Member, (Member.source_id == Namespace.id) & (Member.source_type == SourceType.NAMESPACE.value))
        .where(
            Namespace.kind == "group",
            Member.user_id == user.id,
            Member.access_level >= AccessLevel.OWNER,
            live(today),
        )
    ).all()
    return [group.id for group in owned if not has_other_owner(ctx, group, except_user_id=user.id)]


def can_be_removed(ctx: Ctx, user: User) -> bool:
    """GitLab's User#can_be_removed?: not the sole owner of any group."""
    return not solo_owned_groups(ctx, user)


def destroy_user(
    ctx: Ctx,
    user: User,
    *,
    hard_delete: bool = False,
    delete_solo_owned_groups: bool | None = None,
    skip_authorization: bool = False,
    reason: str | None = None,
    defer: bool | None = None,
) -> Deletion:
    """Delete ``user`` (GitLab's DELETE /users/:id, and every system deletion).

    Soft (default): issues, notes and the rest of their records move to the Ghost User (created
    on first need). ``hard_delete``: those records are deleted instead, and so are the groups the
    user solely owns (``delete_solo_owned_groups`` defaults to ``hard_delete``). Raises Forbidden
    (not an admin, unless ``skip_authorization``; internal users and the last active
    administrator can never be deleted) and Conflict when the user solely owns a group that may
    not be deleted.

    ``defer`` (default: whether the user has more than ``DEFER_OVER`` records): block the user
    now and leave the records to the ghost-migration job (``Deletion.deferred``). A user whose
    deletion is already under way is left to it (a hard delete asked meanwhile applies to the
    records not yet moved).
    """
    if user.is_internal:
        raise Forbidden("Internal users cannot be deleted")
    if not skip_authorization and not ctx.actor.is_admin:
        raise Forbidden()
    keep_an_admin(ctx, user, "deleted")
    # Two deletions of one user queue up here; the second finds nobody (NotFound).
    user = lock_user(ctx, user)
    under_way = pending_migration(ctx, user.id)
    if under_way is not None:
        if hard_delete and not under_way.hard_delete:
            under_way.hard_delete = True
            under_way.updated_at = ctx.now()
            ctx.db.flush()
        return Deletion(user.id, user.username, under_way.hard_delete, deferred=True)
    if not user.is_bot:
        _lock_owned_groups(ctx, user)
    if delete_solo_owned_groups is None:
        delete_solo_owned_groups = hard_delete
    solo = solo_owned_groups(ctx, user)
    if solo and not delete_solo_owned_groups:
        raise Conflict(SOLE_OWNER)
    done = Deletion(user.id, user.username, hard_delete)
    entity = user_entity(user)
    target_id, target_details = user.id, user.username
    heir = None if hard_delete else ghost(ctx)

    if defer is None:
        defer = records_left(ctx, user.id, hard_delete=hard_delete, limit=DEFER_OVER) > DEFER_OVER

    for group_id in solo:
        _purge_group_tree(ctx, group_id, done)
    if defer:
        return _schedule(ctx, user, done, reason)
    done.projects += _purge_personal_namespace(ctx, user.id)

    if heir is not None:
        done.ghost_id = heir.id
        done.records = move_records_to(ctx, user.id, heir.id)
        done.events = move_events(ctx, user.id, heir.id)
        record(
            ctx,
            Event.USER_RECORDS_GHOSTED,
            entity,
            target=Target("User", target_id, target_details),
            ghost_user_id=heir.id,
            moved=done.records,
        )
    else:
        # The events by the user, and those about the issues and notes that go with them.
        own_issues = select(Issue.id).where(Issue.author_id == user.id)
        done.events = delete_events(
            ctx,
            author_id=user.id,
            targets={
                ISSUE: own_issues,
                NOTE: select(Note.id).where((Note.author_id == user.id) | Note.issue_id.in_(own_issues)),
            },
        )
        done.records = delete_records_of(ctx, user.id)

    done.tokens = _delete_tokens(ctx, user.id)
    done.memberships = _delete_memberships(ctx, user.id)
    record(
        ctx,
        Event.USER_DELETED,
        entity,
        target=Target("User", target_id, target_details),
        hard_delete=hard_delete,
        reason=reason,
        user_type=user.user_type,
        deleted_groups=done.groups or None,
        deleted_projects=done.projects or None,
        records=done.records or None,
        tokens=done.tokens,
        memberships=done.memberships,
    )
    ctx.db.delete(user)
    ctx.db.flush()
    return done


def _schedule(ctx: Ctx, user: User, done: Deletion, reason: str | None) -> Deletion:
    """The first step of a deferred deletion: what GitLab's DestroyService does at once."""
    done.deferred = True
    old_state = user.state
    # Blocked (a change the authentication caches of every node hear of), with no token left.
    user.state = UserState.BLOCKED.value
    user.updated_at = ctx.now()
    ctx.db.flush()
    done.projects += _purge_personal_projects(ctx, user.id)
    done.tokens = _delete_tokens(ctx, user.id)
    done.memberships = _delete_memberships(ctx, user.id)
    now = ctx.now()
    ctx.db.add(
        GhostUserMigration(
            user_id=user.id,
            initiator_user_id=ctx.actor.user_id,
            hard_delete=done.hard_delete,
            reason=None if reason is None else reason[:255],
            created_at=now,
            updated_at=now,
            consume_after=now,
            moved={},
            attempts=0,
        )
    )
    record(
        ctx,
        Event.USER_DELETION_SCHEDULED,
        user_entity(user),
        target=Target("User", user.id, user.username),
        hard_delete=done.hard_delete,
        reason=reason,
        user_type=user.user_type,
        **{"from": old_state, "to": user.state},
        deleted_groups=done.groups or None,
        deleted_projects=done.projects or None,
        tokens=done.tokens,
        memberships=done.memberships,
    )
    ctx.db.flush()
    return done


def finish_deletion(ctx: Ctx, migration: GhostUserMigration) -> Deletion:
    """The last step of a deferred deletion, once the job has moved every record: delete the
    user with what is left of theirs, and the migration row, with GitLab's user.deleted event
    authored by whoever asked for the deletion (the job's actor when that user is gone too)."""
    user = ctx.db.get(User, migration.user_id)
    if user is None:
        raise NotFound("User")
    user = lock_user(ctx, user)
    initiator = None if migration.initiator_user_id is None else ctx.db.get(User, migration.initiator_user_id)
    if initiator is not None and initiator.id != user.id:
        ctx = ctx.as_actor(Actor(user=initiator, via="system"))
    moved = {key: int(value) for key, value in (migration.moved or {}).items()}
    done = Deletion(user.id, user.username, migration.hard_delete)
    done.events = moved.pop("events", 0)
    done.records = moved
    entity = user_entity(user)
    target = Target("User", user.id, user.username)
    done.projects += _purge_personal_namespace(ctx, user.id)
    # Anything given to the blocked user meanwhile.
    done.tokens = _delete_tokens(ctx, user.id)
    done.memberships = _delete_memberships(ctx, user.id)
    if not migration.hard_delete:
        heir = ghost(ctx)
        done.ghost_id = heir.id
        record(
            ctx,
            Event.USER_RECORDS_GHOSTED,
            entity,
            target=target,
            ghost_user_id=heir.id,
            moved=done.records,
            events=done.events,
        )
    record(
        ctx,
        Event.USER_DELETED,
        entity,
        target=target,
        hard_delete=migration.hard_delete,
        reason=migration.reason,
        user_type=user.user_type,
        deleted_projects=done.projects or None,
        records=done.records or None,
        events=done.events,
        tokens=done.tokens,
        memberships=done.memberships,
    )
    ctx.db.delete(migration)
    ctx.db.flush()
    ctx.db.delete(user)
    ctx.db.flush()
    return done


def _lock_owned_groups(ctx: Ctx, user: User) -> None:
    """Lock the groups ``user`` owns directly, with the groups above them, as a change of their
    Owners does (``access.members.lock_source``): two Owners deleted at once, or one deleted while
    the other leaves, queue up, and the second sees that the group has no other Owner left."""
    owned = ctx.db.scalars(
        select(Namespace)
        .join(Member, (Member.source_id == Namespace.id) & (Member.source_type == SourceType.NAMESPACE.value))
        .where(Namespace.kind == "group", Member.user_id == user.id, Member.access_level >= AccessLevel.OWNER)
    ).all()
    lock_namespaces(ctx, [ns_id for group in owned for ns_id in chain_ids(group)], "change")


def _delete_tokens(ctx: Ctx, user_id: int) -> int:
    tokens = ctx.db.scalars(select(PersonalAccessToken).where(PersonalAccessToken.user_id == user_id)).all()
    for token in tokens:
        # One by one so that the authentication cache drops exactly these tokens.
        ctx.db.delete(token)
    return len(tokens)


def _delete_memberships(ctx: Ctx, user_id: int) -> int:

    members = ctx.db.scalars(select(Member).where(Member.user_id == user_id)).all()
    for member in members:
        ctx.db.delete(member)
    return len(members)


def _purge_projects(ctx: Ctx, namespace_ids: list[int]) -> list[str]:
    """Delete the projects of these namespaces (routes, memberships, issues, notes, their bots)."""

    if not namespace_ids:
        return []
    rows = ctx.db.execute(
        select(Project.id, Project.full_path).where(Project.namespace_id.in_(namespace_ids))
    ).all()
    for project_id, full_path in rows:
        record(
            ctx,
            Event.PROJECT_DELETED,
            Entity("Project", project_id, full_path),
            target=Target("Project", project_id, full_path),
            reason="owner deleted",
        )
    purge_projects(ctx, [int(r[0]) for r in rows])
    return [str(r[1]) for r in rows]


def _purge_personal_projects(ctx: Ctx, user_id: int) -> list[str]:
    """The projects of the user's personal namespace; the namespace (and its path) stays with the
    user until the user goes."""
    namespaces = ctx.db.scalars(
        select(Namespace).where(Namespace.kind == "user", Namespace.owner_id == user_id)
    ).all()
    ids = lock_namespaces(ctx, [ns.id for ns in namespaces], "exclusive")
    return _purge_projects(ctx, ids)


def _purge_personal_namespace(ctx: Ctx, user_id: int) -> list[str]:

    namespaces = ctx.db.scalars(
        select(Namespace).where(Namespace.kind == "user", Namespace.owner_id == user_id)
    ).all()
    ids = lock_namespaces(ctx, [ns.id for ns in namespaces], "exclusive")
    removed = _purge_projects(ctx, ids)
    paths.release_many(ctx.db, SourceType.NAMESPACE, ids)
    for ns in namespaces:
        ctx.db.delete(ns)
    ctx.db.flush()
    return removed


def _purge_group_tree(ctx: Ctx, group_id: int, done: Deletion) -> None:
    """Delete a solely owned group with everything under it (the owner's deletion is authorized)."""

    root = ctx.db.get(Namespace, group_id)
    if root is None:
        return  # already gone with an ancestor
    groups, projects = purge_group(ctx, root, reason="sole owner deleted")
    done.groups += groups
    done.projects += projects


def delete_bot(ctx: Ctx, bot: User, *, reason: str) -> None:
    """Delete a project/group bot now; its records move to the Ghost User."""
    destroy_user(ctx, bot, skip_authorization=True, reason=reason)


def purge_projects(ctx: Ctx, project_ids: list[int]) -> None:
    """Remove projects and what hangs off them; no permission check (callers have made it).

    Their repositories, package files and uploads are removed once the transaction commits.
    """
    if not project_ids:
        return
    _lock_projects(ctx, project_ids)
    if ctx.instance.repositories_dir is not None:
        repos.remove_after_commit(ctx.db, ctx.instance.repositories_dir, project_ids)
    packages_dir = ctx.instance.packages_dir
    if packages_dir is not None:
        ids = list(project_ids)
        after_commit(ctx.db, lambda: package_files.PackageStore(packages_dir).remove_projects(ids))
    uploads_dir = ctx.instance.uploads_dir
    if uploads_dir is not None:
        folders = [uploads_dir / str(project_id) for project_id in project_ids]

        def remove_uploads() -> None:
            for folder in folders:
                shutil.rmtree(folder, ignore_errors=True)

        after_commit(ctx.db, remove_uploads)
    ctx.db.flush()
    ctx.db.execute(
        delete(Member)
        .where(Member.source_type == SourceType.PROJECT.value, Member.source_id.in_(project_ids))
        .execution_options(synchronize_session=False)
    )
    paths.release_many(ctx.db, SourceType.PROJECT, project_ids)
    # Issues and notes (and anything else keyed on projects.id with ON DELETE CASCADE) go with it.
    ctx.db.execute(
        delete(Project).where(Project.id.in_(project_ids)).execution_options(synchronize_session=False)
    )
    forget(ctx.db, Project, project_ids)
    delete_bots_of(ctx, SourceType.PROJECT, project_ids)


def _lock_projects(ctx: Ctx, project_ids: list[int]) -> None:
    """Lock the projects about to go, by id (after their namespaces, before users and tokens: the
    lock order of docs/development.md), so that an update or a membership change of one of them
    finishes first or finds it gone."""
    for project_id in sorted(set(project_ids)):
        ctx.db.execute(select(Project.id).where(Project.id == project_id).with_for_update(of=Project))


def delete_bots_of(ctx: Ctx, source_type: SourceType, source_ids: list[int]) -> None:
    """Delete the bot users of resource access tokens made for these projects or groups.

    Called once the resources' memberships are gone, so that no bot counts as a group's Owner.
    """
    if not source_ids:
        return

    bots = ctx.db.scalars(
        select(User).where(
            User.user_type == int(UserType.PROJECT_BOT),
            User.bot_resource_type == source_type.value,
            User.bot_resource_id.in_(source_ids),
        )
    ).all()
    for bot in bots:
        delete_bot(ctx, bot, reason="Resource deleted")


def purge_group(ctx: Ctx, group: Namespace, *, reason: str | None = None) -> tuple[list[str], list[str]]:
    """Delete ``group`` and everything under it, and its bots, with one group.deleted event.

    No permission check (callers have made theirs). Returns the full paths of the groups and of
    the projects that went. Raises NotFound("Group") when a concurrent request deleted it first.
    """
    # The group first: once it is locked nothing new is created under it; then what lies under it.
    if not lock_namespaces(ctx, [group.id], "exclusive"):
        raise NotFound("Group")
    subtree = queries.namespace_subtree(group)
    lock_namespaces(ctx, list(ctx.db.scalars(select(Namespace.id).where(subtree))), "exclusive")
    ns_rows = ctx.db.execute(select(Namespace.id, Namespace.full_path).where(subtree)).all()
    ns_ids = [int(r[0]) for r in ns_rows]
    project_rows = ctx.db.execute(
        select(Project.id, Project.full_path).where(Project.namespace_id.in_(ns_ids))
    ).all()
    project_ids = [int(r[0]) for r in project_rows]
    purge_projects(ctx, project_ids)
    ctx.db.execute(
        delete(Member)
        .where(Member.source_type == SourceType.NAMESPACE.value, Member.source_id.in_(ns_ids))
        .execution_options(synchronize_session=False)
    )
    paths.release_many(ctx.db, SourceType.NAMESPACE, ns_ids)
    record(
        ctx,
        Event.GROUP_DELETED,
        group_entity(group),
        target=Target("Group", group.id, group.full_path),
        subgroups=sorted(str(r[1]) for r in ns_rows if r[0] != group.id) or None,
        projects=sorted(str(r[1]) for r in project_rows) or None,
        reason=reason,
    )
    # Deepest first, so that no row ever points at a parent already gone (whatever the backend's
    # cascade order).
    for ns_id, _ in sorted(ns_rows, key=lambda r: -str(r[1]).count("/")):
        ctx.db.execute(
            delete(Namespace).where(Namespace.id == ns_id).execution_options(synchronize_session=False)
        )
    forget(ctx.db, Namespace, ns_ids)
    delete_bots_of(ctx, SourceType.NAMESPACE, ns_ids)
    return [str(r[1]) for r in ns_rows], [str(r[1]) for r in project_rows]


# Project and group purges delete their resource bots, and a user's deletion purges their projects
# and solely owned groups: the cascade is one module because each step may call the others.
