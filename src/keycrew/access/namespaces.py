"""Namespaces: every user has a personal one at the path of their username; groups are the others."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, or_, select

from keycrew.access import paths, queries
from keycrew.access.levels import AccessLevel, SourceType, Visibility
from keycrew.access.lookup import get_namespace
from keycrew.access.models import Namespace, Route
from keycrew.access.policy import contains, group_level
from keycrew.context import Ctx
from keycrew.errors import NotFound
from keycrew.identity.models import User


def build_personal_namespace(ctx: Ctx, user: User) -> Namespace:
    now = ctx.now()
    ns = Namespace(
        kind="user",
        name=user.name,
        path=user.username,
        full_path=user.username,
        full_name=user.name,
        owner_id=user.id,
        visibility_level=Visibility.PUBLIC.level,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(ns)
    ctx.db.flush()
    paths.claim(ctx.db, SourceType.NAMESPACE, ns.id, user.username, user.name)
    return ns


def namespaces_query(ctx: Ctx, *, search: str | None = None, owned_only: bool = False) -> Select[Any]:
    """GET /namespaces: admins see every namespace; others their own and the groups they belong to
    (with the subgroups those reach), or with ``owned_only`` the groups they own."""
    query = select(Namespace)
    user = ctx.actor.user
    if user is None:
        query = query.where(Namespace.id < 0)
    elif not ctx.actor.is_admin:
        level = AccessLevel.OWNER if owned_only else AccessLevel.MINIMAL_ACCESS
        query = query.where(
            or_(
                and_(Namespace.kind == "user", Namespace.owner_id == user.id),
                queries.groups_reached(ctx.db, user.id, ctx.today(), level),
            )
        )
    if search:
        query = query.where(contains(Namespace.name, search) | contains(Namespace.path, search))
    return query.order_by(Namespace.id)


def find_namespace(ctx: Ctx, ref: str | int) -> Namespace:
    """A namespace the actor holds or belongs to (admins: any); NotFound("Namespace") otherwise."""
    ns = get_namespace(ctx, ref)
    if ns is None:
        raise NotFound("Namespace")
    if ctx.actor.is_admin:
        return ns
    if group_level(ctx.db, ctx.actor.user, ns, ctx.today()) < AccessLevel.MINIMAL_ACCESS:
        raise NotFound("Namespace")
    return ns


def follow_user(ctx: Ctx, user: User, old_username: str, old_name: str) -> None:
    """The personal namespace follows its user: path = username, name = name (routes too)."""
    ns = ctx.db.scalars(
        select(Namespace).where(Namespace.kind == "user", Namespace.owner_id == user.id)
    ).first()
    if ns is None:
        return
    # Projects (and their routes) under the namespace move with it.
    paths.move_prefix(ctx.db, old_username, user.username, old_name, user.name)
    ns.path = ns.full_path = user.username
    ns.name = ns.full_name = user.name
    ns.updated_at = ctx.now()
    route = ctx.db.scalars(
        select(Route).where(Route.source_type == SourceType.NAMESPACE.value, Route.source_id == ns.id)
    ).first()
    if route is not None:
        route.path = user.username
        route.path_lower = user.username.lower()
        route.name = user.name
