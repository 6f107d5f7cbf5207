"""Personal namespaces: every user has one at the path of their username, which follows renames."""

from __future__ import annotations

from sqlalchemy import select

from keycrew.context import Ctx
from keycrew.namespaces import paths
from keycrew.namespaces.kinds import SourceType, Visibility
from keycrew.namespaces.models import Namespace, Route


def build_personal_namespace(ctx: Ctx, owner_id: int, username: str, name: str) -> Namespace:
    """A new user's namespace at the path of their username, with its route claimed."""
    now = ctx.now()
    ns = Namespace(
        kind="user",
        name=name,
        path=username,
        full_path=username,
        full_name=name,
        owner_id=owner_id,
        visibility_level=Visibility.PUBLIC.level,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(ns)
    ctx.db.flush()
    paths.claim(ctx.db, SourceType.NAMESPACE, ns.id, username, name)
    return ns


def follow_user(ctx: Ctx, owner_id: int, username: str, name: str, old_username: str, old_name: str) -> None:
    """The personal namespace follows its user: path = username, name = name (routes too)."""
    ns = ctx.db.scalars(
        select(Namespace).where(Namespace.kind == "user", Namespace.owner_id == owner_id)
    ).first()
    if ns is None:
        return
    # Projects (and their routes) under the namespace move with it.
    paths.move_prefix(ctx.db, old_username, username, old_name, name)
    ns.path = ns.full_path = username
    ns.name = ns.full_name = name
    ns.updated_at = ctx.now()
    route = ctx.db.scalars(
        select(Route).where(Route.source_type == SourceType.NAMESPACE.value, Route.source_id == ns.id)
    ).first()
    if route is not None:
        route.path = username
        route.path_lower = username.lower()
        route.name = name
