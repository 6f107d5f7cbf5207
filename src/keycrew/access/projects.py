"""Projects as the actor may see them: the listings, their audit entity, the caller's access."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from keycrew.access import queries
from keycrew.access.levels import AccessLevel
from keycrew.access.policy import project_levels
from keycrew.audit.service import Entity
from keycrew.context import Ctx
from keycrew.db.text import contains
from keycrew.errors import NotFound
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import NamespaceLike, ProjectLike

PROJECT_ORDERS = ("id", "name", "path", "created_at", "updated_at", "last_activity_at", "similarity")


def project_entity(project: Project) -> Entity:
    return Entity("Project", project.id, project.full_path)


def personal_namespace(ctx: Ctx, user_id: int) -> Namespace:
    ns = ctx.db.scalars(
        select(Namespace).where(Namespace.kind == "user", Namespace.owner_id == user_id)
    ).first()
    if ns is None:
        raise NotFound("Namespace")
    return ns


def projects_query(
    ctx: Ctx,
    *,
    owned: bool = False,
    membership: bool = False,
    search: str | None = None,
    visibility: Visibility | None = None,
    min_access_level: int | None = None,
    archived: bool | None = None,
    order_by: str = "created_at",
    sort: str = "desc",
    namespace: NamespaceLike | None = None,
    include_subgroups: bool = False,
) -> Select[Any]:
    """The projects a listing shows the actor, filtered and ordered as GitLab's ProjectsFinder does."""
    actor, today = ctx.actor, ctx.today()
    user = actor.facts
    query = select(Project)
    if not actor.is_admin:  # admins see every project: no condition at all, not a true one
        query = query.where(queries.visible_projects(ctx.reads, actor, today))
    if owned or membership or min_access_level is not None:
        if user is None:
            query = query.where(Project.id < 0)
        else:
            if owned:
                query = query.where(queries.projects_reached(ctx.reads, user.id, today, AccessLevel.OWNER))
            if membership:
                query = query.where(queries.projects_reached(ctx.reads, user.id, today, AccessLevel.GUEST))
            if min_access_level is not None:
                query = query.where(queries.projects_reached(ctx.reads, user.id, today, min_access_level))
    if namespace is not None:
        if include_subgroups:
            query = query.where(
                Project.namespace_id.in_(
                    select(Namespace.id).where(queries.namespace_subtree(namespace)).scalar_subquery()
                )
            )
        else:
            query = query.where(Project.namespace_id == namespace.id)
    if visibility is not None:
        query = query.where(Project.visibility_level == visibility.level)
    if archived is not None:
        query = query.where(Project.archived.is_(archived))
    if search:
        query = query.where(
            contains(Project.name, search)
            | contains(Project.path, search)
            | contains(Project.description, search)
        )
    column = {
        "id": Project.id,
        "name": Project.name,
        "path": Project.path,
        "created_at": Project.created_at,
        "updated_at": Project.updated_at,
        "last_activity_at": Project.last_activity_at,
        "similarity": Project.name,
    }[order_by]
    desc = sort == "desc"
    return query.order_by(
        column.desc() if desc else column.asc(), Project.id.desc() if desc else Project.id.asc()
    )


def project_access(
    ctx: Ctx, project: ProjectLike, levels: tuple[int, int] | None = None
) -> tuple[int | None, int | None]:
    """(direct project level, inherited group level) of the actor, as GitLab's ``permissions``;
    ``levels``: the actor's (direct, inherited) levels if already read."""
    user = ctx.actor.facts
    if user is None:
        return None, None
    direct, inherited = (
        levels if levels is not None else project_levels(ctx.reads, user, project, ctx.today())
    )
    return (direct or None), (inherited if project.namespace.is_group and inherited else None)
