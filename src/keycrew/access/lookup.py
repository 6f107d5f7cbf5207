"""Permission-checked lookups: an object the actor may not see is NotFound, never Forbidden."""

from __future__ import annotations

from urllib.parse import unquote

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import (
    can_read_group,
    can_read_project,
    effective_group_level,
    effective_project_level,
    may_read_project,
    project_with_levels,
)
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.errors import Forbidden, NotFound
from keycrew.namespaces import paths, views
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import NamespaceView, ProjectView


def _ref(ref: str | int) -> tuple[int | None, str | None]:
    """A numeric id, or a (possibly URL-encoded) full path.

    An id beyond the integer columns' range names nothing; it becomes id 0 rather than a query the
    database would refuse.
    """
    if isinstance(ref, int):
        return (ref if 0 < ref <= MAX_ID else 0), None
    text = unquote(ref)
    if text.isascii() and text.isdigit():
        number = int(text) if len(text) <= 20 else 0  # int() refuses more than 4,300 digits
        return (number if number <= MAX_ID else 0), None
    return None, text


def get_project(ctx: Ctx, ref: str | int) -> Project | None:
    project_id, path = _ref(ref)
    if project_id is not None:
        return ctx.db.get(Project, project_id)
    assert path is not None
    # Paths are unique whatever their case (routes table); look the route up case-insensitively.
    route = paths.find_source(ctx.db, path)
    if route is None or route.source_type != SourceType.PROJECT:
        return None
    return ctx.db.get(Project, route.source_id)


def get_group(ctx: Ctx, ref: str | int) -> Namespace | None:
    ns = get_namespace(ctx, ref)
    return ns if ns is not None and ns.kind == "group" else None


def get_namespace(ctx: Ctx, ref: str | int) -> Namespace | None:
    """A group or personal namespace by id or (encoded) full path."""
    ns_id, path = _ref(ref)
    if ns_id is not None:
        return ctx.db.get(Namespace, ns_id)
    assert path is not None
    route = paths.find_source(ctx.db, path)
    if route is None or route.source_type != SourceType.NAMESPACE:
        return None
    return ctx.db.get(Namespace, route.source_id)


def find_project(ctx: Ctx, ref: str | int, *, min_level: int | None = None) -> Project:
    """The project ``ref`` names if the actor may read it (NotFound otherwise).

    With ``min_level``, an actor who may read but lacks that level gets Forbidden.
    """
    project = get_project(ctx, ref)
    if project is None or not can_read_project(ctx.reads, ctx.actor, project, ctx.today()):
        raise NotFound("Project")
    if (
        min_level is not None
        and effective_project_level(ctx.reads, ctx.actor, project, ctx.today()) < min_level
    ):
        raise Forbidden()
    return project


def _project_view(ctx: Ctx, ref: str | int) -> ProjectView:
    """The project ``ref`` names as column values, unchecked; NotFound if there is none."""
    project_id, path = _ref(ref)
    project = views.read_project(ctx.reads, project_id, path)
    if project is None:
        raise NotFound("Project")
    return project


def read_project(ctx: Ctx, ref: str | int) -> ProjectView:
    """``find_project`` for a read: the project as column values (NotFound as there)."""
    project = _project_view(ctx, ref)
    if not can_read_project(ctx.reads, ctx.actor, project, ctx.today()):
        raise NotFound("Project")
    return project


def find_group(ctx: Ctx, ref: str | int, *, min_level: int | None = None) -> Namespace:
    """The group ``ref`` names if the actor may read it (NotFound otherwise), Forbidden below min_level."""
    group = get_group(ctx, ref)
    if group is None or not can_read_group(ctx.reads, ctx.actor, group, ctx.today()):
        raise NotFound("Group")
    if min_level is not None and effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) < min_level:
        raise Forbidden()
    return group


def read_project_with_levels(ctx: Ctx, ref: str | int) -> tuple[ProjectView, tuple[int, int] | None]:
    """``read_project`` and the actor's (direct, inherited) levels on the project (None for an
    anonymous visitor), read once for the check and for the caller (GitLab's ``permissions``)."""
    user = ctx.actor.facts
    if user is None:
        project, levels = _project_view(ctx, ref), None
    else:
        project_id, path = _ref(ref)
        if project_id is None:
            project_id = views.project_id_at(ctx.reads, path or "")
        found = project_with_levels(ctx.reads, user, project_id, ctx.today()) if project_id else None
        if found is None:
            raise NotFound("Project")
        project, levels = found
    if not may_read_project(ctx.actor, project, levels):
        raise NotFound("Project")
    return project, levels


def read_namespace(ctx: Ctx, ref: str | int) -> NamespaceView | None:
    """``get_namespace`` for a read: a group or personal namespace as column values, unchecked."""
    ns_id, path = _ref(ref)
    return views.read_namespace(ctx.reads, ns_id, path)


def read_group(ctx: Ctx, ref: str | int) -> NamespaceView:
    """``find_group`` for a read: the group as column values (NotFound as there)."""
    group = read_namespace(ctx, ref)
    if group is None or not group.is_group or not can_read_group(ctx.reads, ctx.actor, group, ctx.today()):
        raise NotFound("Group")
    return group


__all__ = [
    "AccessLevel",
    "find_group",
    "find_project",
    "get_group",
    "get_namespace",
    "get_project",
    "read_group",
    "read_namespace",
    "read_project",
    "read_project_with_levels",
]
