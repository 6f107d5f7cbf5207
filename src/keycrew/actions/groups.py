"""Deleting a group: its subgroups, projects, memberships and resource bots go with it."""

from __future__ import annotations

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import effective_group_level
from keycrew.actions.deletion import purge_group
from keycrew.context import Ctx
from keycrew.errors import Forbidden
from keycrew.namespaces.models import Namespace


def delete_group(ctx: Ctx, group: Namespace) -> None:
    """Delete a group with its subgroups and their projects, routes and memberships (Owner or admin).

    Issues and notes go with their projects (foreign-key cascade). Raises Forbidden.
    """
    if effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) < AccessLevel.OWNER:
        raise Forbidden()
    purge_group(ctx, group)
