"""The packages of a project or group as GitLab's packages API shows them: listing, reading and
deleting packages and their files, whatever their type.

Who may do what (GitLab's package policies): reading needs the package registry to be readable,
that is the project is public (or internal and the caller sees internal projects) or the caller is
a Reporter or more (admins always); a caller who may see the project but not its packages (a
Guest) gets Forbidden, one who may not see it gets NotFound("Project"). Deleting needs Maintainer
or more, and the project not archived. A group's listing holds the packages of the projects in it
(and in its subgroups, unless excluded) whose packages the caller may read.

Every deletion is one transaction with its audit event; the files on disk are removed only after
it commits (a rolled-back deletion leaves them in place).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Select, delete, or_, select

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import (
    can_read_project,
    effective_group_level,
    effective_project_level,
    sees_internal,
)
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.db.text import contains, escape_like
from keycrew.errors import BadParameter, Forbidden, NotFound
from keycrew.infra.transactions import after_commit
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.packages.models import Package, PackageFile
from keycrew.packages.storage import PackageStore

# GitLab's Packages::Package.package_types and .statuses (the values its API accepts).
PACKAGE_TYPES = (
    "maven",
    "npm",
    "conan",
    "nuget",
    "pypi",
    "composer",
    "generic",
    "golang",
    "debian",
    "rubygems",
    "helm",
    "terraform_module",
    "rpm",
    "ml_model",
    "cargo",
)
STATUSES = ("default", "hidden", "processing", "error", "pending_destruction", "deprecated")
# Every package here is installable: keycrew has no hidden, processing or deprecated packages.
STATUS = "default"
ORDER_BY = ("created_at", "name", "version", "type")
GROUP_ORDER_BY = (*ORDER_BY, "project_path")
SORTS = ("asc", "desc")


@dataclass(frozen=True)
class PackageFilter:
    """The filters and order of a listing (already checked against the values GitLab accepts)."""

    package_type: str | None = None
    package_name: str | None = None
    package_version: str | None = None
    include_versionless: bool = False
    status: str | None = None
    order_by: str = "created_at"
    sort: str = "asc"

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("package_type", self.package_type, PACKAGE_TYPES),
            ("status", self.status, STATUSES),
            ("order_by", self.order_by, GROUP_ORDER_BY),
            ("sort", self.sort, SORTS),
        ):
            if value is not None and value not in allowed:
                raise BadParameter(f"{key} does not have a valid value")


def _readable_by_visibility(ctx: Ctx, visibility_level: int) -> bool:
    if visibility_level >= Visibility.PUBLIC.level:
        return True
    return visibility_level >= Visibility.INTERNAL.level and sees_internal(ctx.actor.facts)


def may_read_packages(ctx: Ctx, project: Project) -> bool:
    """May the actor read ``project``'s packages? (it may read the project itself)."""
    if ctx.actor.is_admin or _readable_by_visibility(ctx, project.visibility_level):
        return True
    return effective_project_level(ctx.reads, ctx.actor, project, ctx.today()) >= AccessLevel.REPORTER


def may_destroy_packages(ctx: Ctx, project: Project) -> bool:
    """May the actor delete ``project``'s packages and package files? (Maintainer+, not archived)."""
    if project.archived:
        return False
    return effective_project_level(ctx.reads, ctx.actor, project, ctx.today()) >= AccessLevel.MAINTAINER


def check_read(ctx: Ctx, project: Project) -> None:
    """Forbidden unless the actor may read the packages of ``project`` (which it may see)."""
    if not may_read_packages(ctx, project):
        raise Forbidden()


def check_group_read(ctx: Ctx, group: Namespace) -> None:
    """Forbidden unless the actor may read the packages of ``group`` (which it may see)."""
    if ctx.actor.is_admin or _readable_by_visibility(ctx, group.visibility_level):
        return
    if effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) < AccessLevel.REPORTER:
        raise Forbidden()


def _filtered(query: Select[Any], filters: PackageFilter) -> Select[Any]:
    if filters.package_type is not None:
        query = query.where(Package.package_type == filters.package_type)
    if filters.package_name:
        # GitLab's search_by_name: the name anywhere, in any case.
        query = query.where(contains(Package.name, filters.package_name))
    if filters.package_version:
        query = query.where(Package.version == filters.package_version)
    if not filters.include_versionless:
        query = query.where(Package.version.is_not(None))
    if filters.status is not None and filters.status != STATUS:
        query = query.where(Package.id.is_(None))  # no package has another status
    return query


def _ordered(query: Select[Any], filters: PackageFilter) -> Select[Any]:
    column: Any = {
        "created_at": Package.created_at,
        "name": Package.name,
        "version": Package.version,
        "type": Package.package_type,
        "project_path": Project.full_path,
    }[filters.order_by]
    if filters.order_by == "project_path":
        query = query.join(Project, Project.id == Package.project_id)
    if filters.sort == "desc":
        return query.order_by(column.desc(), Package.id.desc())
    return query.order_by(column.asc(), Package.id.asc())


def project_packages_query(ctx: Ctx, project: Project, filters: PackageFilter) -> Select[Any]:
    """The packages of ``project`` (the actor may read them: ``check_read``), filtered and ordered."""
    if filters.order_by == "project_path":
        raise BadParameter("order_by does not have a valid value")
    query = select(Package).where(Package.project_id == project.id)
    return _ordered(_filtered(query, filters), filters)


def _group_projects(ctx: Ctx, group: Namespace, exclude_subgroups: bool) -> list[Project]:
    if exclude_subgroups:
        in_group: Any = Project.namespace_id == group.id
    else:
        below = select(Namespace.id).where(
            or_(Namespace.id == group.id, Namespace.full_path.like(escape_like(group.full_path) + "/%", "\\"))
        )
        in_group = Project.namespace_id.in_(below)
    projects = ctx.db.scalars(select(Project).where(in_group).order_by(Project.id)).all()
    today = ctx.today()
    return [
        p for p in projects if can_read_project(ctx.reads, ctx.actor, p, today) and may_read_packages(ctx, p)
    ]


def group_packages_query(
    ctx: Ctx, group: Namespace, filters: PackageFilter, *, exclude_subgroups: bool = False
) -> Select[Any]:
    """The packages of the projects in ``group`` (and its subgroups unless ``exclude_subgroups``)
    whose packages the actor may read (``check_group_read`` first), filtered and ordered."""
    project_ids = [p.id for p in _group_projects(ctx, group, exclude_subgroups)]
    query = select(Package).where(Package.project_id.in_(project_ids))
    return _ordered(_filtered(query, filters), filters)


def find_package(ctx: Ctx, project: Project, package_id: int) -> Package:
    """The package ``package_id`` of ``project``; NotFound("Package") if it has none such."""
    package = ctx.db.get(Package, package_id)
    if package is None or package.project_id != project.id:
        raise NotFound("Package")
    return package


def _locked_package(ctx: Ctx, project: Project, package_id: int) -> Package:
    """``find_package`` for a deletion: the row locked (PostgreSQL), so that of two deletions of
    one package the second waits, then finds nothing (NotFound("Package"))."""
    package = ctx.db.scalars(
        select(Package)
        .where(Package.id == package_id, Package.project_id == project.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if package is None:
        raise NotFound("Package")
    return package


def other_versions(ctx: Ctx, package: Package) -> list[Package]:
    """The other versions of ``package``'s name and type in its project (GitLab's ``versions``)."""
    return list(
        ctx.db.scalars(
            select(Package)
            .where(
                Package.project_id == package.project_id,
                Package.package_type == package.package_type,
                Package.normalized_name == package.normalized_name,
                Package.id != package.id,
            )
            .order_by(Package.created_at.desc(), Package.id.desc())
        ).all()
    )


def package_files_query(package: Package, *, order_by: str = "id", sort: str = "asc") -> Select[Any]:
    """The files of ``package``, ordered by ``order_by`` (id, file_name, created_at)."""
    columns: dict[str, Any] = {
        "id": PackageFile.id,
        "file_name": PackageFile.file_name,
        "created_at": PackageFile.created_at,
    }
    if order_by not in columns:
        raise BadParameter("order_by does not have a valid value")
    if sort not in SORTS:
        raise BadParameter("sort does not have a valid value")
    column = columns[order_by]
    query = select(PackageFile).where(PackageFile.package_id == package.id)
    if sort == "desc":
        return query.order_by(column.desc(), PackageFile.id.desc())
    return query.order_by(column.asc(), PackageFile.id.asc())


def _remove_after_commit(ctx: Ctx, paths: list[Path]) -> None:
    def remove() -> None:
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    after_commit(ctx.db, remove)


def _count(result: Any) -> int:
    return int(result.rowcount)


def _store(ctx: Ctx) -> PackageStore | None:
    return None if ctx.instance.packages_dir is None else PackageStore(ctx.instance.packages_dir)


def _writable(ctx: Ctx, project: Project) -> None:
    if not may_destroy_packages(ctx, project):
        raise Forbidden()


def delete_package(ctx: Ctx, project: Project, package_id: int) -> None:
    """Delete package ``package_id`` of ``project`` and its files (Maintainer+): rows and audit
    event in this transaction, the files on disk once it commits. Forbidden before NotFound, as
    GitLab checks the permission before it looks the package up."""
    _writable(ctx, project)
    package = _locked_package(ctx, project, package_id)
    files = list(ctx.db.scalars(select(PackageFile).where(PackageFile.package_id == package.id)).all())
    details = {
        "package_type": package.package_type,
        "package_name": package.name,
        "package_version": package.version,
        "file_names": [f.file_name for f in files],
    }
    target = Target("Packages::Package", package.id, f"{package.name} {package.version}")
    ctx.db.execute(delete(PackageFile).where(PackageFile.package_id == package.id))
    removed = ctx.db.execute(delete(Package).where(Package.id == package.id))
    if _count(removed) == 0:
        raise NotFound("Package")
    ctx.db.expunge(package)
    record(ctx, Event.PACKAGE_DELETED, Entity("Project", project.id, project.full_path), target, **details)
    store = _store(ctx)
    if store is not None:
        _remove_after_commit(ctx, [store.path(project.id, f.id) for f in files])


def delete_package_file(ctx: Ctx, project: Project, package_id: int, file_id: int) -> None:
    """Delete file ``file_id`` of package ``package_id`` of ``project`` (Maintainer+); the package
    stays, as on GitLab, even without files. The file on disk goes once the transaction commits."""
    _writable(ctx, project)
    package = _locked_package(ctx, project, package_id)
    found = ctx.db.scalars(
        select(PackageFile).where(PackageFile.id == file_id, PackageFile.package_id == package.id)
    ).first()
    if found is None:
        raise NotFound("Package File")
    target = Target("Packages::PackageFile", found.id, found.file_name)
    if _count(ctx.db.execute(delete(PackageFile).where(PackageFile.id == found.id))) == 0:
        raise NotFound("Package File")
    ctx.db.expunge(found)
    package.updated_at = ctx.now()
    record(
        ctx,
        Event.PACKAGE_FILE_DELETED,
        Entity("Project", project.id, project.full_path),
        target,
        package_type=package.package_type,
        package_id=package.id,
        package_name=package.name,
        package_version=package.version,
        file_sha256=found.file_sha256,
        size=found.size,
    )
    store = _store(ctx)
    if store is not None:
        _remove_after_commit(ctx, [store.path(project.id, found.id)])
