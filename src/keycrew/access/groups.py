"""Use cases on groups: create, update (rename/move paths), and the listings. Deleting one crosses
packages (projects, repositories, bots): keycrew.actions.groups."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Select, select

from keycrew.access import queries
from keycrew.access.levels import AccessLevel
from keycrew.access.models import Member
from keycrew.access.policy import can_read_group, effective_group_level
from keycrew.audit.events import Event
from keycrew.audit.service import Changes, Entity, Target, record, record_update
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.db.text import contains
from keycrew.errors import Forbidden, Invalid, MissingParameter, NotFound, Unauthenticated
from keycrew.identity import validation
from keycrew.namespaces import paths
from keycrew.namespaces.kinds import SourceType, Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import NamespaceLike

GROUP_ORDERS = ("name", "path", "id", "similarity")


def group_entity(group: Namespace) -> Entity:
    return Entity("Group", group.id, group.full_path)


# How a use case locks namespace rows: "share" (FOR KEY SHARE: it changes or creates something
# inside, which must not vanish or move meanwhile), "change" (FOR NO KEY UPDATE: changes of the
# group's Owners queue up), "exclusive" (FOR UPDATE: a deletion or a change of the group itself,
# which waits for all of them, and they for it).
LockMode = Literal["share", "change", "exclusive"]


def lock_namespaces(ctx: Ctx, ids: list[int], mode: LockMode) -> list[int]:
    """Lock these namespace rows (PostgreSQL; SQLite's writers run one at a time anyway), in the
    one order every use case takes them: ancestors before descendants, then by id (the lock order
    of docs/development.md). Returns the ids still there: a concurrent deletion removed the others.
    """
    if not ids:
        return []
    rows = ctx.db.execute(
        select(Namespace.id, Namespace.full_path).where(Namespace.id.in_(sorted(set(ids))))
    ).all()
    found: list[int] = []
    for ns_id, _path in sorted(rows, key=lambda row: (str(row[1]).count("/"), int(row[0]))):
        # The row is read again once locked, into the session's object if it holds one: a move or a
        # rename committed while we waited must not leave the caller building on the old paths.
        query = select(Namespace).where(Namespace.id == ns_id).execution_options(populate_existing=True)
        if mode == "share":
            query = query.with_for_update(read=True, key_share=True, of=Namespace)
        else:
            query = query.with_for_update(key_share=mode == "change", of=Namespace)
        locked = ctx.db.scalars(query).first()
        if locked is not None:
            found.append(locked.id)
    return found


def chain_ids(ns: Namespace) -> list[int]:
    """The ids of ``ns`` and of the groups above it."""
    return [ns.id, *(parent.id for parent in ns.ancestors())]


def _chain_now(ctx: Ctx, ns: Namespace) -> list[int]:
    """The ids of ``ns`` and of the groups above it, by the parent links the session holds now
    (fresh for the rows ``lock_namespaces`` re-read)."""
    ids = [ns.id]
    parent_id = ns.parent_id
    while parent_id is not None and parent_id not in ids:
        ids.append(parent_id)
        parent = ctx.db.get(Namespace, parent_id)
        parent_id = None if parent is None else parent.parent_id
    return ids


def lock_chain(ctx: Ctx, ns: Namespace, mode: LockMode, *, tries: int = 5) -> bool:
    """Lock ``ns`` and every group above it as they are once locked: a move committed while we
    waited may have put a new group above, which must be locked too, before the groups below it
    (the lock order). The locks are taken in a savepoint; when the chain changed they are
    released (rolled back) and taken again along the new chain, so that a rename of the new
    parent waiting on our rows can finish first. False when ``ns`` was deleted meanwhile."""
    for _ in range(tries - 1):
        ids = _chain_now(ctx, ns)
        savepoint = ctx.db.begin_nested()
        if ns.id not in lock_namespaces(ctx, ids, mode):
            savepoint.commit()
            return False
        if _chain_now(ctx, ns) == ids:
            savepoint.commit()
            return True
        savepoint.rollback()
    return ns.id in lock_namespaces(ctx, _chain_now(ctx, ns), mode)


def lock_group(ctx: Ctx, group: Namespace) -> None:
    """Lock ``group`` and the groups above it (whose Owners count too) for a change of its Owners,
    top first. Raises NotFound("Group") when a concurrent request deleted it."""
    if group.id not in lock_namespaces(ctx, chain_ids(group), "change"):
        raise NotFound("Group")


def _check_visibility_fits_parent(visibility: Visibility, parent: Namespace | None) -> None:
    if parent is not None and visibility.level > parent.visibility_level:
        raise Invalid.field(
            "visibility_level",
            f"{visibility.value} is not allowed since the parent group has a "
            f"{Visibility.from_level(parent.visibility_level).value} visibility.",
        )


def _check_visibility_fits_children(ctx: Ctx, group: Namespace, visibility: Visibility) -> None:
    """A group may not become less visible than something inside it (GitLab's two messages)."""
    subtree = queries.descendants_of(group)
    if ctx.db.scalar(
        select(Project.id)
        .join(Namespace, Project.namespace_id == Namespace.id)
        .where(Project.visibility_level > visibility.level)
        .where((Namespace.id == group.id) | subtree)
        .limit(1)
    ):
        raise Invalid.field(
            "visibility_level",
            f"{visibility.value} is not allowed since this group contains projects with higher visibility.",
        )
    if ctx.db.scalar(
        select(Namespace.id).where(subtree, Namespace.visibility_level > visibility.level).limit(1)
    ):
        raise Invalid.field(
            "visibility_level",
            f"{visibility.value} is not allowed since there are sub-groups with higher visibility.",
        )


def create_group(
    ctx: Ctx,
    *,
    name: str,
    path: str,
    parent_id: int | None = None,
    visibility: Visibility | None = None,
    description: str = "",
) -> Namespace:
    """Create a group (top-level, or a subgroup of ``parent_id``); the creator becomes its Owner.

    Raises Invalid (bad/taken name or path), NotFound (parent not visible), Forbidden.
    """
    user = ctx.actor.user
    if user is None:
        raise Unauthenticated()
    parent: Namespace | None = None
    if parent_id is not None:
        parent = ctx.db.get(Namespace, parent_id) if 0 < parent_id <= MAX_ID else None
        if (
            parent is None
            or parent.kind != "group"
            or not can_read_group(ctx.reads, ctx.actor, parent, ctx.today())
        ):
            raise NotFound("Parent Group")
        if effective_group_level(ctx.reads, ctx.actor, parent, ctx.today()) < AccessLevel.MAINTAINER:
            raise Forbidden()
        if parent.id not in lock_namespaces(ctx, chain_ids(parent), "share"):
            raise NotFound("Parent Group")  # deleted meanwhile
    elif not (user.can_create_group or ctx.actor.is_admin):
        raise Forbidden()
    visibility = visibility or Visibility.PRIVATE
    errors: dict[str, list[str]] = {}
    if e := validation.name_errors(name):
        errors["name"] = e
    if e := validation.namespace_path_errors(path, top_level=parent is None):
        errors["path"] = e
    full_path = path if parent is None else f"{parent.full_path}/{path}"
    full_name = name if parent is None else f"{parent.full_name} / {name}"
    if "path" not in errors and paths.route_taken(ctx.db, full_path):
        errors["path"] = ["has already been taken"]
    if errors:
        raise Invalid("", errors)
    _check_visibility_fits_parent(visibility, parent)
    now = ctx.now()
    group = Namespace(
        kind="group",
        name=name,
        path=path,
        full_path=full_path,
        full_name=full_name,
        parent_id=None if parent is None else parent.id,
        visibility_level=visibility.level,
        description=description or "",
        created_at=now,
        updated_at=now,
    )
    group.parent = parent
    ctx.db.add(group)
    ctx.db.flush()
    paths.claim(ctx.db, SourceType.NAMESPACE, group.id, full_path, full_name)
    ctx.db.add(
        Member(
            source_type=SourceType.NAMESPACE.value,
            source_id=group.id,
            user_id=user.id,
            access_level=int(AccessLevel.OWNER),
            created_by_id=user.id,
            created_at=now,
            updated_at=now,
        )
    )
    record(
        ctx,
        Event.GROUP_CREATED,
        group_entity(group),
        target=Target("Group", group.id, full_path),
        visibility=visibility.value,
    )
    ctx.db.flush()
    return group


UPDATABLE = ("name", "path", "description", "visibility")


def update_group(
    ctx: Ctx,
    group: Namespace,
    *,
    name: str | None = None,
    path: str | None = None,
    description: str | None = None,
    visibility: Visibility | None = None,
    resource_access_token_creation_allowed: bool | None = None,
) -> Namespace:
    """Change a group's name, path, description, visibility or whether project and group access
    tokens may be created in it (Owner or admin; only a top-level group may forbid them).

    Renaming rewrites the full paths and names of every subgroup and project under it. Raises
    MissingParameter (nothing to change), Forbidden, Invalid; NotFound("Group") when a concurrent
    request deleted it (the group is locked first, after the groups above it).
    """
    token_setting = resource_access_token_creation_allowed
    if name is None and path is None and description is None and visibility is None and token_setting is None:
        raise MissingParameter(f"{', '.join(UPDATABLE)} are missing, at least one parameter must be provided")
    if effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) < AccessLevel.OWNER:
        raise Forbidden()
    lock_namespaces(ctx, chain_ids(group)[1:], "share")
    if not lock_namespaces(ctx, [group.id], "exclusive"):
        raise NotFound("Group")
    ctx.db.refresh(group)
    parent = group.parent
    errors: dict[str, list[str]] = {}
    if name is not None and (e := validation.name_errors(name)):
        errors["name"] = e
    if path is not None:
        if e := validation.namespace_path_errors(path, top_level=parent is None):
            errors["path"] = e
        else:
            new_full = path if parent is None else f"{parent.full_path}/{path}"
            if paths.route_taken(ctx.db, new_full, except_source=(SourceType.NAMESPACE, group.id)):
                errors["path"] = ["has already been taken"]
    if token_setting is False and parent is not None:
        errors["resource_access_token_creation_allowed"] = [
            "is not allowed since the group is not top-level group."
        ]
    if errors:
        raise Invalid("", errors)
    if visibility is not None and visibility.level != group.visibility_level:
        _check_visibility_fits_parent(visibility, parent)
        _check_visibility_fits_children(ctx, group, visibility)

    changes = Changes()
    new_name = group.name if name is None else name
    new_path = group.path if path is None else path
    if new_name != group.name or new_path != group.path:
        full_path = new_path if parent is None else f"{parent.full_path}/{new_path}"
        full_name = new_name if parent is None else f"{parent.full_name} / {new_name}"
        changes.note("name", group.name, new_name)
        if new_path != group.path:
            changes.note("path", group.full_path, full_path)
        paths.move_prefix(ctx.db, group.full_path, full_path, group.full_name, full_name)
        group.name, group.path, group.full_path, group.full_name = new_name, new_path, full_path, full_name
        route = paths.route_of(ctx.db, SourceType.NAMESPACE, group.id)
        if route is not None:
            route.path, route.path_lower, route.name = full_path, full_path.lower(), full_name
    if changes.note("description", group.description, description):
        assert description is not None
        group.description = description
    if visibility is not None and visibility.level != group.visibility_level:
        changes.note("visibility", Visibility.from_level(group.visibility_level).value, visibility.value)
        group.visibility_level = visibility.level
    if token_setting is not None and changes.note(
        "resource_access_token_creation_allowed", group.resource_access_token_creation_allowed, token_setting
    ):
        group.resource_access_token_creation_allowed = token_setting
    if changes:
        group.updated_at = ctx.now()
        record_update(ctx, Event.GROUP_UPDATED, group_entity(group), changes)
        ctx.db.flush()
    return group


def groups_query(
    ctx: Ctx,
    *,
    all_available: bool | None = None,
    search: str | None = None,
    owned: bool = False,
    min_access_level: int | None = None,
    top_level_only: bool = False,
    skip_groups: list[int] | None = None,
    order_by: str = "name",
    sort: str = "asc",
    parent: NamespaceLike | None = None,
    descendants_of: NamespaceLike | None = None,
) -> Select[Any]:
    """The groups a listing shows the actor, filtered and ordered as GitLab's GroupsFinder does.

    ``owned`` and ``min_access_level`` take precedence over ``all_available``.
    """
    actor, today = ctx.actor, ctx.today()
    query = select(Namespace).where(Namespace.kind == "group")
    user = actor.facts
    if owned:
        owned_ones = queries.groups_owned_directly(ctx.reads, user.id, today) if user else Namespace.id < 0
        query = query.where(owned_ones)
    elif min_access_level is not None:
        query = query.where(
            queries.groups_reached(ctx.reads, user.id, today, min_access_level) if user else Namespace.id < 0
        )
    else:
        query = query.where(queries.visible_groups(ctx.reads, actor, today, all_available=all_available))
    if parent is not None:
        query = query.where(Namespace.parent_id == parent.id)
    if descendants_of is not None:
        query = query.where(queries.descendants_of(descendants_of))
    if top_level_only:
        query = query.where(Namespace.parent_id.is_(None))
    if skip_groups:
        query = query.where(Namespace.id.not_in(skip_groups))
    if search:
        query = query.where(contains(Namespace.name, search) | contains(Namespace.path, search))
    column = {
        "name": Namespace.name,
        "path": Namespace.path,
        "id": Namespace.id,
        "similarity": Namespace.name,
    }[order_by]
    ordered = column.desc() if sort == "desc" else column.asc()
    # Ties (same name) are broken by id so that pages never overlap.
    return query.order_by(ordered, Namespace.id.desc() if sort == "desc" else Namespace.id.asc())
