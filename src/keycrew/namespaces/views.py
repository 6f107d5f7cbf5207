"""Read models of the namespace tree: projects and namespaces as column values, for reads.

A view is an immutable tuple with the attribute names of its ORM model, read through
``keycrew.db.reads`` without the ORM (see there for why). Rules and renderers that only read
accept either (``ProjectLike``/``NamespaceLike``); use cases that change something keep using the
ORM models.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Select, bindparam, select

from keycrew.db.reads import Query, Reader, prepared
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project, Route


class NamespaceLike(Protocol):
    """What reads need of a namespace: an ORM ``Namespace`` or a ``NamespaceView``."""

    @property
    def id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def full_path(self) -> str: ...
    @property
    def full_name(self) -> str: ...
    @property
    def parent_id(self) -> int | None: ...
    @property
    def owner_id(self) -> int | None: ...
    @property
    def visibility_level(self) -> int: ...
    @property
    def description(self) -> str: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def resource_access_token_creation_allowed(self) -> bool: ...
    @property
    def is_group(self) -> bool: ...


class ProjectLike(Protocol):
    """What reads need of a project: an ORM ``Project`` or a ``ProjectView``."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def full_path(self) -> str: ...
    @property
    def namespace_id(self) -> int: ...
    @property
    def creator_id(self) -> int | None: ...
    @property
    def description(self) -> str: ...
    @property
    def visibility_level(self) -> int: ...
    @property
    def default_branch(self) -> str: ...
    @property
    def archived(self) -> bool: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def updated_at(self) -> dt.datetime: ...
    @property
    def last_activity_at(self) -> dt.datetime: ...
    @property
    def namespace(self) -> NamespaceLike: ...


class NamespaceView(NamedTuple):
    id: int
    kind: str
    name: str
    path: str
    full_path: str
    full_name: str
    parent_id: int | None
    owner_id: int | None
    visibility_level: int
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime
    resource_access_token_creation_allowed: bool

    @property
    def is_group(self) -> bool:
        return self.kind == "group"


class ProjectView(NamedTuple):
    id: int
    name: str
    path: str
    full_path: str
    namespace_id: int
    creator_id: int | None
    description: str
    visibility_level: int
    default_branch: str
    archived: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    last_activity_at: dt.datetime
    namespace: NamespaceView


_N = Namespace.__table__.c
_P = Project.__table__.c
NAMESPACE_COLUMNS = [_N[name] for name in NamespaceView._fields]
_PROJECT_FIELDS = [name for name in ProjectView._fields if name != "namespace"]
PROJECT_COLUMNS = [_P[name] for name in _PROJECT_FIELDS] + NAMESPACE_COLUMNS
_PROJECT_WIDTH = len(_PROJECT_FIELDS)

PROJECTS_WITH_NAMESPACE = Project.__table__.join(Namespace.__table__, _P.namespace_id == _N.id)
_PROJECTS = select(*PROJECT_COLUMNS).select_from(PROJECTS_WITH_NAMESPACE)
PROJECT_BY_ID = prepared(_PROJECTS.where(_P.id == bindparam("id")))
PROJECTS_BY_IDS = prepared(_PROJECTS.where(_P.id.in_(bindparam("ids", expanding=True))))
NAMESPACE_BY_ID = prepared(select(*NAMESPACE_COLUMNS).where(_N.id == bindparam("id")))
_SOURCE_BY_PATH = prepared(
    select(Route.__table__.c.source_type, Route.__table__.c.source_id).where(
        Route.__table__.c.path_lower == bindparam("path")
    )
)


def project_rows(query: Select[Any]) -> Query:
    """A listing of projects (``select(Project)`` with its filters and order) as rows of
    ``PROJECT_COLUMNS``, for ``project_view``."""
    return query.with_only_columns(*PROJECT_COLUMNS, maintain_column_froms=False).select_from(
        PROJECTS_WITH_NAMESPACE
    )


def namespace_rows(query: Select[Any]) -> Query:
    """A listing of namespaces (``select(Namespace)`` with its filters and order) as rows of
    ``NAMESPACE_COLUMNS``, for ``NamespaceView``."""
    return query.with_only_columns(*NAMESPACE_COLUMNS, maintain_column_froms=True)


def project_view(row: Any) -> ProjectView:
    """A project with its namespace from a row of ``PROJECT_COLUMNS``."""
    return ProjectView(*row[:_PROJECT_WIDTH], NamespaceView(*row[_PROJECT_WIDTH:]))  # type: ignore[call-arg]


def project_views(reads: Reader, ids: list[int]) -> dict[int, ProjectView]:
    if not ids:
        return {}
    return {row[0]: project_view(row) for row in reads.rows(PROJECTS_BY_IDS, {"ids": ids})}


def source_by_path(reads: Reader, full_path: str) -> tuple[SourceType, int] | None:
    """What a full path names (paths are unique whatever their case)."""
    row = reads.first(_SOURCE_BY_PATH, {"path": full_path.lower()})
    return None if row is None else (SourceType(row[0]), row[1])


def project_id_at(reads: Reader, full_path: str) -> int | None:
    """The id of the project at this full path, if a project is there."""
    source = source_by_path(reads, full_path)
    return source[1] if source is not None and source[0] == SourceType.PROJECT else None


def read_project(reads: Reader, project_id: int | None, full_path: str | None = None) -> ProjectView | None:
    """The project with this id, or at this full path."""
    if project_id is None:
        project_id = project_id_at(reads, full_path or "")
        if project_id is None:
            return None
    row = reads.first(PROJECT_BY_ID, {"id": project_id})
    return None if row is None else project_view(row)


def read_namespace(
    reads: Reader, namespace_id: int | None, full_path: str | None = None
) -> NamespaceView | None:
    """The group or personal namespace with this id, or at this full path."""
    if namespace_id is None:
        source = source_by_path(reads, full_path or "")
        if source is None or source[0] != SourceType.NAMESPACE:
            return None
        namespace_id = source[1]
    row = reads.first(NAMESPACE_BY_ID, {"id": namespace_id})
    return None if row is None else NamespaceView(*row)
