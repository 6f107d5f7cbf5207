"""Transfers: a project to another namespace, a group under another parent or to the top level.

Everything addressed by path follows at once, in the one transaction: the routes (which git, the
package registry and the container registry's token service resolve paths through), the full paths
and names of the group, every group and project under it. Repositories and package files are
stored by project id (repos/storage.py, packages/storage.py), so nothing moves on disk and a crash
cannot leave a repository unreachable. Memberships stay as they are; inherited access is computed
from the tree on every request (access/policy.py), and the authentication cache holds only tokens
and users, so no access survives a move.

Service accounts of a group stay within its top-level group (access/members.py): a transfer that
would take a membership of one outside it is refused (``SERVICE_ACCOUNTS_STAY``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update

from keycrew.access import queries
from keycrew.access.compliance import drop_foreign_frameworks
from keycrew.access.groups import LockMode, chain_ids, group_entity, groups_query, lock_namespaces
from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import find_group
from keycrew.access.models import Member
from keycrew.access.namespaces import find_namespace
from keycrew.access.policy import effective_group_level, effective_project_level, live
from keycrew.access.projects import lock_project, project_entity
from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Ctx
from keycrew.errors import Forbidden, Invalid, NotFound, Rejected, Unauthenticated
from keycrew.identity import validation
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces import paths
from keycrew.namespaces.kinds import SourceType, Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import NamespaceLike, ProjectLike

# GitLab's messages (Projects::TransferService, Groups::TransferService), in their check order.
PROJECT_ALREADY_THERE = "Project is already in this namespace."
PROJECT_TARGET_FORBIDDEN = "You don't have permission to transfer projects into that namespace."
PROJECT_CLASH = "Project with same name or path in target namespace already exists"
GROUP_FAILED = "Transfer failed: "
GROUP_ALREADY_ROOT = "Group is already a root group."
GROUP_SAME_PARENT = "Group is already associated to the parent group."
GROUP_FORBIDDEN = "You don't have enough permissions."
GROUP_CLASH = "The parent group already has a subgroup or a project with the same path."
GROUP_INTO_SUBGROUP = "Cannot transfer group to one of its subgroup."
# keycrew's own rule (GitLab has no message for it): service accounts never leave the top-level
# group that made them.
SERVICE_ACCOUNTS_STAY = (
    "Service accounts of its top-level group are members, and they cannot leave that top-level group."
)


def _root_id(ns: Namespace) -> int:
    return ns.root.id


def _service_accounts_leaving(ctx: Ctx, new_root_id: int, sources: Any) -> bool:
    """Whether a live membership in ``sources`` (a condition on Member) belongs to a group's service
    account whose top-level group is not ``new_root_id``."""
    found = ctx.db.scalar(
        select(Member.id)
        .join(User, User.id == Member.user_id)
        .where(
            sources,
            User.user_type == int(UserType.SERVICE_ACCOUNT),
            User.provisioned_by_group_id.is_not(None),
            User.provisioned_by_group_id != new_root_id,
            live(ctx.today()),
        )
        .limit(1)
    )
    return found is not None


# -- projects ------------------------------------------------------------------------------------


def _may_transfer_into(ctx: Ctx, target: Namespace) -> bool:
    """GitLab's ``transfer_projects``: Maintainer+ in a group, or one's own personal namespace
    (admins: any person's, never a bot's or a service account's)."""
    if target.is_group:
        return effective_group_level(ctx.reads, ctx.actor, target, ctx.today()) >= AccessLevel.MAINTAINER
    if target.owner_id is not None and target.owner_id == ctx.actor.user_id:
        return True
    if not ctx.actor.is_admin or target.owner_id is None:
        return False
    owner = ctx.db.get(User, target.owner_id)
    return owner is not None and owner.user_type == UserType.HUMAN


def _project_clash(ctx: Ctx, project: Project, target: Namespace) -> bool:
    same = ctx.db.scalar(
        select(Project.id)
        .where(
            Project.namespace_id == target.id,
            Project.id != project.id,
            or_(func.lower(Project.path) == project.path.lower(), Project.name == project.name),
        )
        .limit(1)
    )
    if same is not None:
        return True
    new_full = f"{target.full_path}/{project.path}"
    return paths.route_taken(ctx.db, new_full, except_source=(SourceType.PROJECT, project.id))


def _ensure_owner_membership(ctx: Ctx, source_type: SourceType, source_id: int, user_id: int) -> None:
    """``user_id`` holds a live Owner membership of the source afterwards (GitLab's add_owner)."""
    member = ctx.db.scalars(
        select(Member).where(
            Member.source_type == source_type.value,
            Member.source_id == source_id,
            Member.user_id == user_id,
        )
    ).first()
    now = ctx.now()
    if member is None:
        ctx.db.add(
            Member(
                source_type=source_type.value,
                source_id=source_id,
                user_id=user_id,
                access_level=int(AccessLevel.OWNER),
                created_by_id=ctx.actor.user_id,
                created_at=now,
                updated_at=now,
            )
        )
    elif member.access_level != AccessLevel.OWNER or (
        member.expires_at is not None and member.expires_at <= ctx.today()
    ):
        member.access_level = int(AccessLevel.OWNER)
        member.expires_at = None
        member.updated_at = now


def check_may_transfer_project(ctx: Ctx, project: ProjectLike) -> None:
    """GitLab's ``change_namespace``: the project's Owners and admins. Raises Forbidden."""
    if effective_project_level(ctx.reads, ctx.actor, project, ctx.today()) < AccessLevel.OWNER:
        raise Forbidden()


def transfer_project(ctx: Ctx, project: Project, namespace_ref: str | int) -> Project:
    """Move ``project`` into the namespace ``namespace_ref`` names (an id or a full path).

    Its full path, route and name follow; its visibility drops to the group's when the group is
    less visible; moved into a personal namespace, that namespace's holder becomes its Owner.
    Raises Forbidden (not the project's Owner), NotFound("Namespace") (no such namespace, or one the
    actor does not belong to), Invalid with GitLab's ``new_namespace`` message (already there, no
    permission in the target, name or path taken, service accounts that may not leave).
    """
    if ctx.actor.user is None:
        raise Unauthenticated()
    check_may_transfer_project(ctx, project)
    found = find_namespace(ctx, namespace_ref)
    target = ctx.db.get(Namespace, found.id)
    if target is None:
        raise NotFound("Namespace")
    old_ns = project.namespace
    # Lock order (docs/development.md): both namespaces and the groups above them, then the project;
    # each row is read again once locked (renamed or moved meanwhile?).
    locked = lock_namespaces(ctx, [*chain_ids(old_ns), *chain_ids(target)], "share")
    if target.id not in locked:
        raise NotFound("Namespace")
    project = lock_project(ctx, project)
    old_ns = project.namespace

    def refuse(message: str) -> Invalid:
        return Invalid.field("new_namespace", message)

    if target.id == project.namespace_id:
        raise refuse(PROJECT_ALREADY_THERE)
    if not _may_transfer_into(ctx, target):
        raise refuse(PROJECT_TARGET_FORBIDDEN)
    if _project_clash(ctx, project, target):
        raise refuse(PROJECT_CLASH)
    on_project = and_(Member.source_type == SourceType.PROJECT.value, Member.source_id == project.id)
    if _service_accounts_leaving(ctx, _root_id(target), on_project):
        raise refuse(SERVICE_ACCOUNTS_STAY)

    old_full = project.full_path
    new_full = f"{target.full_path}/{project.path}"
    details: dict[str, Any] = {
        "change": "namespace",
        "from": old_full,
        "to": new_full,
        "old_namespace_id": old_ns.id,
        "new_namespace_id": target.id,
    }
    if target.is_group and project.visibility_level > target.visibility_level:
        details["visibility"] = {
            "from": Visibility.from_level(project.visibility_level).value,
            "to": Visibility.from_level(target.visibility_level).value,
        }
        project.visibility_level = target.visibility_level
    project.namespace_id = target.id
    project.namespace = target
    project.full_path = new_full
    project.updated_at = ctx.now()
    route = paths.route_of(ctx.db, SourceType.PROJECT, project.id)
    if route is not None:
        route.path, route.path_lower = new_full, new_full.lower()
        route.name = f"{target.full_name} / {project.name}"
    if not target.is_group and target.owner_id is not None:
        _ensure_owner_membership(ctx, SourceType.PROJECT, project.id, target.owner_id)
    # Compliance frameworks belong to a top-level group: leaving it, the project loses them.
    if dropped := drop_foreign_frameworks(ctx, [project.id], _root_id(target) if target.is_group else None):
        details["compliance_frameworks_removed"] = dropped
    record(
        ctx,
        Event.PROJECT_TRANSFERRED,
        project_entity(project),
        target=Target("Project", project.id, new_full),
        **details,
    )
    ctx.db.flush()
    return project


def project_transfer_locations(ctx: Ctx, project: ProjectLike, *, search: str | None = None) -> Select[Any]:
    """GET /projects/:id/transfer_locations: the groups the actor may move ``project`` into
    (Maintainer+, GitLab's ``transfer_projects``) but its own. Raises Forbidden (not its Owner)."""
    check_may_transfer_project(ctx, project)
    skip = [project.namespace_id] if project.namespace.is_group else None
    return groups_query(ctx, min_access_level=AccessLevel.MAINTAINER, search=search, skip_groups=skip)


# -- groups ----------------------------------------------------------------------------------------


def check_may_transfer_group(ctx: Ctx, group: NamespaceLike) -> None:
    """GitLab's ``admin_group``: the group's Owners and admins. Raises Forbidden."""
    if effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) < AccessLevel.OWNER:
        raise Forbidden()


def _lock_for_move(ctx: Ctx, group: Namespace, shared: list[int]) -> set[int]:
    """Lock ``group`` exclusively (it changes, and everything under it moves) and ``shared`` (the
    groups above it now and afterwards) for share, in the one order of docs/development.md:
    ancestors before descendants, then by id; each row is read again once locked (renamed or moved
    meanwhile?). Returns the ids still there."""
    ids = {group.id, *shared}
    rows = ctx.db.execute(select(Namespace.id, Namespace.full_path).where(Namespace.id.in_(ids))).all()
    found: set[int] = set()
    for ns_id, _path in sorted(rows, key=lambda row: (str(row[1]).count("/"), int(row[0]))):
        mode: LockMode = "exclusive" if ns_id == group.id else "share"
        found.update(lock_namespaces(ctx, [int(ns_id)], mode))
    return found


def _has_owner(ctx: Ctx, group: Namespace) -> bool:
    """Whether the group itself has a live Owner membership that is not a bot's."""
    found = ctx.db.scalar(
        select(Member.id)
        .join(User, User.id == Member.user_id)
        .where(
            Member.source_type == SourceType.NAMESPACE.value,
            Member.source_id == group.id,
            Member.access_level >= int(AccessLevel.OWNER),
            User.user_type != int(UserType.PROJECT_BOT),
            live(ctx.today()),
        )
        .limit(1)
    )
    return found is not None


def _lower_visibility(ctx: Ctx, group: Namespace, level: int) -> None:
    """Bring the group, its subgroups and their projects down to ``level`` (before paths move)."""
    subtree = queries.namespace_subtree(group)
    ids = select(Namespace.id).where(subtree).scalar_subquery()
    ctx.db.execute(
        update(Namespace)
        .where(subtree, Namespace.visibility_level > level)
        .values(visibility_level=level)
        .execution_options(synchronize_session=False)
    )
    ctx.db.execute(
        update(Project)
        .where(Project.namespace_id.in_(ids), Project.visibility_level > level)
        .values(visibility_level=level)
        .execution_options(synchronize_session=False)
    )
    group.visibility_level = level


def transfer_group(ctx: Ctx, group: Namespace, parent_ref: str | int | None) -> Namespace:
    """Move ``group`` under the group ``parent_ref`` names, or to the top level when None.

    Every subgroup and project under it moves with it (paths, names, routes); visibility drops to
    the new parent's where higher; a group made top-level with no Owner of its own gets the actor
    as Owner. Raises Forbidden (not the group's Owner), NotFound("Group") (no such parent, or one
    the actor may not see), Rejected("Transfer failed: ...") with GitLab's messages.
    """
    user = ctx.actor.user
    if user is None:
        raise Unauthenticated()
    check_may_transfer_group(ctx, group)
    parent = find_group(ctx, parent_ref) if parent_ref is not None else None
    old_above = chain_ids(group)[1:]
    new_above = chain_ids(parent) if parent is not None else []
    locked = _lock_for_move(ctx, group, [*old_above, *new_above])
    if group.id not in locked:
        raise NotFound("Group")
    if parent is not None and parent.id not in locked:
        raise NotFound("Group")

    def refuse(message: str) -> Rejected:
        return Rejected(GROUP_FAILED + message)

    if parent is None and group.parent_id is None:
        raise refuse(GROUP_ALREADY_ROOT)
    if parent is not None and parent.id == group.parent_id:
        raise refuse(GROUP_SAME_PARENT)
    if parent is not None:
        allowed = effective_group_level(ctx.reads, ctx.actor, parent, ctx.today()) >= AccessLevel.MAINTAINER
    else:
        allowed = ctx.actor.is_admin or user.can_create_group
    if not allowed:
        raise refuse(GROUP_FORBIDDEN)
    new_full = group.path if parent is None else f"{parent.full_path}/{group.path}"
    if paths.route_taken(ctx.db, new_full, except_source=(SourceType.NAMESPACE, group.id)):
        raise refuse(GROUP_CLASH)
    if parent is not None and (
        parent.id == group.id or parent.full_path.lower().startswith(group.full_path.lower() + "/")
    ):
        raise refuse(GROUP_INTO_SUBGROUP)
    subtree_ids = select(Namespace.id).where(queries.namespace_subtree(group)).scalar_subquery()
    in_subtree = or_(
        and_(Member.source_type == SourceType.NAMESPACE.value, Member.source_id.in_(subtree_ids)),
        and_(
            Member.source_type == SourceType.PROJECT.value,
            Member.source_id.in_(select(Project.id).where(Project.namespace_id.in_(subtree_ids))),
        ),
    )
    new_root = group.id if parent is None else _root_id(parent)
    if _service_accounts_leaving(ctx, new_root, in_subtree):
        raise refuse(SERVICE_ACCOUNTS_STAY)
    if parent is None and (errors := validation.namespace_path_errors(group.path, top_level=True)):
        # A subgroup's path may be one a top-level group may not have ("api", "groups", ...).
        raise refuse("Validation failed: " + ", ".join(f"Group URL {error}" for error in errors))

    old_full, old_name = group.full_path, group.full_name
    new_name = group.name if parent is None else f"{parent.full_name} / {group.name}"
    details: dict[str, Any] = {
        "change": "parent",
        "from": old_full,
        "to": new_full,
        "old_parent_id": group.parent_id,
        "new_parent_id": None if parent is None else parent.id,
    }
    if parent is not None and parent.visibility_level < group.visibility_level:
        details["visibility"] = {
            "from": Visibility.from_level(group.visibility_level).value,
            "to": Visibility.from_level(parent.visibility_level).value,
        }
        _lower_visibility(ctx, group, parent.visibility_level)
    paths.move_prefix(ctx.db, old_full, new_full, old_name, new_name)
    group.parent_id = None if parent is None else parent.id
    group.parent = parent
    group.full_path, group.full_name = new_full, new_name
    group.updated_at = ctx.now()
    route = paths.route_of(ctx.db, SourceType.NAMESPACE, group.id)
    if route is not None:
        route.path, route.path_lower, route.name = new_full, new_full.lower(), new_name
    if parent is None and not _has_owner(ctx, group):
        _ensure_owner_membership(ctx, SourceType.NAMESPACE, group.id, user.id)
    moved_projects = list(ctx.db.scalars(select(Project.id).where(Project.namespace_id.in_(subtree_ids))))
    if dropped := drop_foreign_frameworks(ctx, moved_projects, new_root):
        details["compliance_frameworks_removed"] = dropped
    entity = group_entity(group)
    record(ctx, Event.GROUP_TRANSFERRED, entity, target=entity.as_target(), **details)
    ctx.db.flush()
    return group


def group_transfer_locations(ctx: Ctx, group: NamespaceLike, *, search: str | None = None) -> Select[Any]:
    """GET /groups/:id/transfer_locations: the groups the actor owns, but ``group``, the groups
    under it and its current parent. Raises Forbidden (not its Owner)."""
    check_may_transfer_group(ctx, group)
    query = groups_query(ctx, min_access_level=AccessLevel.OWNER, search=search)
    query = query.where(~queries.namespace_subtree(group))
    if group.parent_id is not None:
        query = query.where(Namespace.id != group.parent_id)
    return query
