"""Projects as the actor may see them: the listings, their audit entity, the caller's access."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from sqlalchemy import Boolean, ColumnElement, Date, Select, bindparam, or_, select

from keycrew.access import queries
from keycrew.access.groups import chain_ids, lock_namespaces
from keycrew.access.levels import AccessLevel
from keycrew.access.policy import project_levels, visible_levels
from keycrew.audit.service import Entity
from keycrew.context import Ctx
from keycrew.db.listings import Listing, listing
from keycrew.db.text import contains_pattern, escape_like, lower_like
from keycrew.errors import NotFound
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import PROJECT_COLUMNS, PROJECTS_WITH_NAMESPACE, NamespaceLike, ProjectLike

_P = Project.__table__.c
_N = Namespace.__table__.c
S = TypeVar("S", bound=Select[Any])

if TYPE_CHECKING:
    from typing_extensions import Unpack

PROJECT_ORDERS = ("id", "name", "path", "created_at", "updated_at", "last_activity_at", "similarity")


def project_entity(project: Project) -> Entity:
    return Entity("Project", project.id, project.full_path)


def lock_project(ctx: Ctx, project: Project, *, deleting: bool = False) -> Project:
    """Re-read ``project`` under a row lock (PostgreSQL) so that its changes and its deletion queue
    up. Its namespace and the groups above it are locked first (FOR KEY SHARE: a group's deletion
    waits, other changes inside it do not), then the project (FOR UPDATE when ``deleting``, else
    FOR NO KEY UPDATE): the lock order of docs/development.md. Raises NotFound("Project") when a
    concurrent request deleted it meanwhile."""
    lock_namespaces(ctx, chain_ids(project.namespace), "share")
    fresh = ctx.db.scalars(
        select(Project)
        .where(Project.id == project.id)
        .with_for_update(key_share=not deleting, of=Project)
        .execution_options(populate_existing=True)
    ).first()
    if fresh is None:
        raise NotFound("Project")
    return fresh


def personal_namespace(ctx: Ctx, user_id: int) -> Namespace:
    ns = ctx.db.scalars(
        select(Namespace).where(Namespace.kind == "user", Namespace.owner_id == user_id)
    ).first()
    if ns is None:
        raise NotFound("Namespace")
    return ns


@dataclass(frozen=True)
class _Shape:
    """What decides the SQL of a project listing; ids, dates, levels and patterns are parameters."""

    viewer: str  # "admin" (sees every project), "member" (a signed-in user) or "anonymous"
    visible_levels: tuple[int, ...]  # what the viewer sees without a membership
    reach: tuple[str, ...]  # "owned", "membership", "min_level": the viewer's own projects only
    namespace: str | None  # None, "one" (its projects) or "subtree" (and its subgroups')
    visibility: bool
    archived: bool
    search: bool
    order_by: str
    sort: str
    id_after: bool = False
    id_before: bool = False


class ProjectListOptions(TypedDict, total=False):
    """A project listing's filters and order, as GitLab's ProjectsFinder takes them."""

    owned: bool
    membership: bool
    search: str | None
    visibility: Visibility | None
    min_access_level: int | None
    archived: bool | None
    order_by: str  # one of PROJECT_ORDERS; created_at by default
    sort: str  # asc or desc (the default)
    namespace: NamespaceLike | None  # only this namespace's projects
    include_subgroups: bool  # and those of the groups under it
    id_after: int | None  # only projects with a greater id (also keyset pagination's cursor)
    id_before: int | None  # only projects with a smaller id


def projects_listing(ctx: Ctx, **options: Unpack[ProjectListOptions]) -> Listing:
    """The projects a listing shows the actor, filtered and ordered as GitLab's ProjectsFinder
    does: rows of ``PROJECT_COLUMNS`` (``project_view``), built once per shape."""
    shape, values = _shape(ctx, **options)
    return listing(
        ("projects", shape),
        lambda: (
            _build(select(*PROJECT_COLUMNS).select_from(PROJECTS_WITH_NAMESPACE), shape, bindparam),
            _build(select(Project.__table__.c.id), shape, bindparam, ordered=False),
        ),
        values,
    )


def projects_query(ctx: Ctx, **options: Unpack[ProjectListOptions]) -> Select[Any]:
    """``projects_listing`` as a ``select(Project)`` for the ORM, its values bound."""
    shape, values = _shape(ctx, **options)
    return _build(select(Project), shape, lambda name, **kw: bindparam(name, values[name], **kw))


def _shape(
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
    id_after: int | None = None,
    id_before: int | None = None,
) -> tuple[_Shape, dict[str, Any]]:
    actor = ctx.actor
    user = actor.facts
    viewer = "admin" if actor.is_admin else "anonymous" if user is None else "member"
    values: dict[str, Any] = {"today": ctx.today()}
    if user is not None:
        values["viewer_id"] = user.id
    reach = tuple(
        name
        for name, wanted in (
            ("owned", owned),
            ("membership", membership),
            ("min_level", min_access_level is not None),
        )
        if wanted
    )
    if reach and user is None:
        reach = ("nobody",)
    if min_access_level is not None:
        values["min_level"] = min_access_level
    if namespace is not None:
        values["namespace_id"] = namespace.id
        if include_subgroups:
            values["namespace_pattern"] = escape_like(namespace.full_path) + "/%"
    if visibility is not None:
        values["visibility_level"] = visibility.level
    if archived is not None:
        values["archived"] = archived
    if search:
        values["pattern"] = contains_pattern(search)
    if id_after is not None:
        values["id_after"] = id_after
    if id_before is not None:
        values["id_before"] = id_before
    shape = _Shape(
        viewer=viewer,
        visible_levels=() if viewer == "admin" else tuple(visible_levels(actor)),
        reach=reach,
        namespace=None if namespace is None else "subtree" if include_subgroups else "one",
        visibility=visibility is not None,
        archived=archived is not None,
        search=bool(search),
        order_by=order_by,
        sort=sort,
        id_after=id_after is not None,
        id_before=id_before is not None,
    )
    return shape, values


_ORDERS = {
    "id": _P.id,
    "name": _P.name,
    "path": _P.path,
    "created_at": _P.created_at,
    "updated_at": _P.updated_at,
    "last_activity_at": _P.last_activity_at,
    "similarity": _P.name,
}


def _build(query: S, shape: _Shape, param: Callable[..., Any], *, ordered: bool = True) -> S:
    """The listing of ``shape`` on ``query`` (a select of projects or of their columns), its
    values from ``param(name)``: a placeholder, or a bound value."""
    today = param("today", type_=Date())
    if shape.viewer != "admin":  # admins see every project: no condition at all, not a true one
        by_visibility: ColumnElement[bool] = _P.visibility_level.in_(shape.visible_levels)
        if shape.viewer == "member":
            by_visibility = or_(
                by_visibility,
                queries.projects_reached_by("reached_visible", param("viewer_id"), today, AccessLevel.GUEST),
            )
        query = query.where(by_visibility)
    for name in shape.reach:
        if name == "nobody":
            query = query.where(_P.id < 0)
            continue
        level = {"owned": AccessLevel.OWNER, "membership": AccessLevel.GUEST}.get(name) or param("min_level")
        query = query.where(queries.projects_reached_by(f"reached_{name}", param("viewer_id"), today, level))
    if shape.namespace == "one":
        query = query.where(_P.namespace_id == param("namespace_id"))
    elif shape.namespace == "subtree":
        subtree = or_(
            _N.id == param("namespace_id"), _N.full_path.like(param("namespace_pattern"), escape="\\")
        )
        query = query.where(_P.namespace_id.in_(select(_N.id).where(subtree).scalar_subquery()))
    if shape.visibility:
        query = query.where(_P.visibility_level == param("visibility_level"))
    if shape.archived:
        query = query.where(_P.archived == param("archived", type_=Boolean()))
    if shape.search:
        pattern = param("pattern")
        query = query.where(
            or_(*(lower_like(column, pattern) for column in (_P.name, _P.path, _P.description)))
        )
    if shape.id_after:
        query = query.where(_P.id > param("id_after"))
    if shape.id_before:
        query = query.where(_P.id < param("id_before"))
    if not ordered:
        return query
    column = _ORDERS[shape.order_by]
    desc = shape.sort == "desc"
    by_id = _P.id.desc() if desc else _P.id.asc()
    if shape.order_by == "id":  # the id alone: keyset pagination's order, and its index
        return query.order_by(by_id)
    return query.order_by(column.desc() if desc else column.asc(), by_id)


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
