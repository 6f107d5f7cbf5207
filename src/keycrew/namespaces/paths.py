"""Routes: the one place full paths are claimed, renamed and released."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from keycrew.db.text import escape_like
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project, Route


def route_taken(db: Session, full_path: str, *, except_source: tuple[SourceType, int] | None = None) -> bool:
    """Whether some other namespace or project holds ``full_path`` (whatever its case)."""
    query = select(Route.source_type, Route.source_id).where(Route.path_lower == full_path.lower())
    for source_type, source_id in db.execute(query).all():
        if except_source is None or (source_type, source_id) != (except_source[0].value, except_source[1]):
            return True
    return False


def claim(db: Session, source_type: SourceType, source_id: int, full_path: str, full_name: str) -> Route:
    route = Route(
        source_type=source_type.value,
        source_id=source_id,
        path=full_path,
        path_lower=full_path.lower(),
        name=full_name,
    )
    db.add(route)
    return route


def release(db: Session, source_type: SourceType, source_id: int) -> None:
    db.execute(delete(Route).where(Route.source_type == source_type.value, Route.source_id == source_id))


def release_many(db: Session, source_type: SourceType, source_ids: Iterable[int]) -> None:
    ids = list(source_ids)
    if ids:
        db.execute(
            delete(Route)
            .where(Route.source_type == source_type.value, Route.source_id.in_(ids))
            .execution_options(synchronize_session=False)
        )


def find_source(db: Session, full_path: str) -> Route | None:
    return db.scalars(select(Route).where(Route.path_lower == full_path.lower())).first()


def route_of(db: Session, source_type: SourceType, source_id: int) -> Route | None:
    return db.scalars(
        select(Route).where(Route.source_type == source_type.value, Route.source_id == source_id)
    ).first()


def _rebase(value: str, old: str, new: str) -> str:
    return new + value[len(old) :]


def move_prefix(db: Session, old: str, new: str, old_name: str, new_name: str) -> None:
    """Rewrite every route, group and project under ``old`` (path) / ``old_name`` to sit under the new ones.

    Only descendants move: the caller renames the namespace itself and its own route.
    """
    like = escape_like(old) + "/%"
    name_prefix = old_name + " / "
    for route in db.scalars(select(Route).where(Route.path_lower.like(like.lower(), escape="\\"))).all():
        route.path = _rebase(route.path, old, new)
        route.path_lower = route.path.lower()
        if route.name.startswith(name_prefix):
            route.name = _rebase(route.name, old_name, new_name)
    for ns in db.scalars(
        select(Namespace).where(Namespace.kind == "group", Namespace.full_path.like(like, escape="\\"))
    ).all():
        ns.full_path = _rebase(ns.full_path, old, new)
        if ns.full_name.startswith(name_prefix):
            ns.full_name = _rebase(ns.full_name, old_name, new_name)
    for project in db.scalars(select(Project).where(Project.full_path.like(like, escape="\\"))).all():
        project.full_path = _rebase(project.full_path, old, new)
