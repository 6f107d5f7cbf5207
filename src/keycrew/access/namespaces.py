"""Namespaces: every user has a personal one at the path of their username; groups are the others."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, or_, select

from keycrew.access import queries
from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import read_namespace
from keycrew.access.policy import group_level
from keycrew.context import Ctx
from keycrew.db.text import contains
from keycrew.errors import NotFound
from keycrew.namespaces.models import Namespace
from keycrew.namespaces.views import NamespaceView


def namespaces_query(ctx: Ctx, *, search: str | None = None, owned_only: bool = False) -> Select[Any]:
    """GET /namespaces: admins see every namespace; others their own and the groups they belong to
    (with the subgroups those reach), or with ``owned_only`` the groups they own."""
    query = select(Namespace)
    user = ctx.actor.facts
    if user is None:
        query = query.where(Namespace.id < 0)
    elif not ctx.actor.is_admin:
        level = AccessLevel.OWNER if owned_only else AccessLevel.MINIMAL_ACCESS
        query = query.where(
            or_(
                and_(Namespace.kind == "user", Namespace.owner_id == user.id),
                queries.groups_reached(ctx.reads, user.id, ctx.today(), level),
            )
        )
    if search:
        query = query.where(contains(Namespace.name, search) | contains(Namespace.path, search))
    return query.order_by(Namespace.id)


def find_namespace(ctx: Ctx, ref: str | int) -> NamespaceView:
    """A namespace the actor holds or belongs to (admins: any); NotFound("Namespace") otherwise."""
    ns = read_namespace(ctx, ref)
    if ns is None:
        raise NotFound("Namespace")
    if ctx.actor.is_admin:
        return ns
    if group_level(ctx.reads, ctx.actor.facts, ns, ctx.today()) < AccessLevel.MINIMAL_ACCESS:
        raise NotFound("Namespace")
    return ns
