"""The PyPI package registry of a project: who may use it, uploading a file, the simple index.

Credentials are resolved by the adapter (``tokens.basic``) and passed in explicitly; what a
credential may do is decided by ``access.abilities`` (upload: write_package_registry or api and
Developer+; download: read_package_registry, read_api or api and Reporter+, or a public project).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from keycrew.access.lookup import get_project
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Actor, Ctx
from keycrew.errors import BadParameter, Forbidden, Invalid, NotFound, Unauthenticated
from keycrew.namespaces.models import Project
from keycrew.packages import names
from keycrew.packages.models import Package, PackageFile
from keycrew.packages.storage import PackageStore, Placement, StagedFile
from keycrew.tokens.abilities import Decision, decide
from keycrew.tokens.basic import Credential
from keycrew.tokens.scopes import Ability

PYPI = "pypi"
# GitLab truncates these metadata fields to its column sizes rather than refusing the upload.
REQUIRES_PYTHON_MAX = 255
SUMMARY_MAX = 255
METADATA_VERSION_MAX = 16
FILE_NAME_TAKEN = "Validation failed: File name has already been taken"


@dataclass(frozen=True)
class PypiUpload:
    """The form twine sends with a file (only the fields the registry keeps)."""

    name: str
    version: str
    file_name: str
    sha256_digest: str | None = None
    md5_digest: str | None = None
    requires_python: str | None = None
    metadata_version: str | None = None
    summary: str | None = None


@dataclass(frozen=True)
class IndexEntry:
    name: str
    normalized_name: str


@dataclass(frozen=True)
class ListedFile:
    file_name: str
    sha256: str
    requires_python: str


@dataclass(frozen=True)
class Download:
    file_name: str
    size: int
    path: Path


def actor_for(credential: Credential, ip: str | None) -> Actor:
    """The actor of a package registry request (a deploy token acts without a user)."""
    return Actor(
        user=credential.user,
        token_id=None if credential.token is None else credential.token.id,
        ip=ip,
        scopes=credential.scopes,
        via="packages",
    )


def authorized_project(ctx: Ctx, credential: Credential, ref: str | int, ability: Ability) -> Project:
    """The project ``ref`` names, if ``credential`` may do ``ability`` there.

    Raises Unauthenticated when nobody signed in and signing in might help (also for a project that
    does not exist, so that anonymous callers cannot probe names), NotFound("Project") when the
    caller may not know the project, Forbidden when it may see the project but not do this.
    """
    project = get_project(ctx, ref)
    decision = (
        Decision.NOT_FOUND
        if project is None
        else decide(ctx.reads, credential, project, ability, ctx.today())
    )
    if decision is Decision.ALLOWED and project is not None:
        return project
    if credential.is_anonymous or decision is Decision.UNAUTHENTICATED:
        raise Unauthenticated()
    if decision is Decision.NOT_FOUND:
        raise NotFound("Project")
    raise Forbidden()


def _checked(upload: PypiUpload, staged: StagedFile) -> PypiUpload:
    name, version = upload.name.strip(), upload.version.strip()
    if not names.valid_name(name):
        raise Invalid("Validation failed: Name is invalid")
    if not names.valid_version(version):
        raise Invalid("Validation failed: Version is invalid")
    if not names.valid_file_name(upload.file_name):
        raise Invalid("Validation failed: File name is invalid")
    if upload.sha256_digest is not None:
        if not names.SHA256.fullmatch(upload.sha256_digest):
            raise BadParameter("sha256_digest is invalid")
        if not hmac.compare_digest(upload.sha256_digest.lower(), staged.sha256):
            raise Invalid("Validation failed: Sha256 digest does not match the uploaded file")
    if upload.md5_digest is not None:
        if not names.MD5.fullmatch(upload.md5_digest):
            raise BadParameter("md5_digest is invalid")
        if not hmac.compare_digest(upload.md5_digest.lower(), staged.md5):
            raise Invalid("Validation failed: Md5 digest does not match the uploaded file")
    return PypiUpload(
        name=name,
        version=version,
        file_name=upload.file_name,
        sha256_digest=upload.sha256_digest,
        md5_digest=upload.md5_digest,
        requires_python=(upload.requires_python or "").strip()[:REQUIRES_PYTHON_MAX],
        metadata_version=(upload.metadata_version or "").strip()[:METADATA_VERSION_MAX] or None,
        summary=(upload.summary or "").strip()[:SUMMARY_MAX] or None,
    )


def _package_for(ctx: Ctx, project: Project, upload: PypiUpload) -> tuple[Package, bool]:
    """The package version ``upload`` belongs to, created on its first file; (package, created)."""
    normalized = names.normalize(upload.name)
    query = select(Package).where(
        Package.project_id == project.id,
        Package.package_type == PYPI,
        Package.normalized_name == normalized,
        Package.version == upload.version,
    )
    package = ctx.db.scalars(query).first()
    if package is not None:
        return package, False
    now = ctx.now()
    package = Package(
        project_id=project.id,
        package_type=PYPI,
        name=upload.name,
        normalized_name=normalized,
        version=upload.version,
        requires_python=upload.requires_python or "",
        metadata_version=upload.metadata_version,
        summary=upload.summary,
        creator_id=ctx.actor.user_id,
        created_at=now,
        updated_at=now,
    )
    try:
        with ctx.db.begin_nested():
            ctx.db.add(package)
    except IntegrityError:
        # Another upload created this version first (PostgreSQL lets both get this far).
        return ctx.db.scalars(query).one(), False
    return package, True


def upload_pypi_file(
    ctx: Ctx,
    credential: Credential,
    ref: str | int,
    upload: PypiUpload,
    staged: StagedFile,
    store: PackageStore,
    placement: Placement,
) -> PackageFile:
    """Record ``staged`` as a file of ``upload.name`` ``upload.version`` in project ``ref`` and
    place it in ``store``; the package version is created with its first file. Returns the file.

    The permission is checked again here, inside the transaction: the credential may have been
    revoked while the file was arriving. Raises what ``authorized_project`` raises; Invalid for a
    bad name, version or file name, a digest that does not match the file, or a file name already
    taken in this version; BadParameter for a malformed digest.
    """
    project = authorized_project(ctx, credential, ref, Ability.CREATE_PACKAGE)
    upload = _checked(upload, staged)
    package, created = _package_for(ctx, project, upload)
    taken = select(PackageFile.id).where(
        PackageFile.package_id == package.id, PackageFile.file_name == upload.file_name
    )
    if ctx.db.scalars(taken).first() is not None:
        raise Invalid(FILE_NAME_TAKEN)
    deploy_token = credential.deploy_token
    now = ctx.now()
    package_file = PackageFile(
        package_id=package.id,
        file_name=upload.file_name,
        size=staged.size,
        file_sha256=staged.sha256,
        file_md5=staged.md5,
        uploader_id=ctx.actor.user_id,
        deploy_token_id=None if deploy_token is None else deploy_token.id,
        created_at=now,
    )
    try:
        with ctx.db.begin_nested():
            ctx.db.add(package_file)
    except IntegrityError:
        raise Invalid(FILE_NAME_TAKEN) from None
    package.updated_at = now
    event = record(
        ctx,
        Event.PACKAGE_UPLOADED,
        Entity("Project", project.id, project.full_path),
        target=Target("Packages::PackageFile", package_file.id, package_file.file_name),
        package_type=PYPI,
        package_id=package.id,
        package_name=package.name,
        package_version=package.version,
        package_created=created,
        file_sha256=package_file.file_sha256,
        size=package_file.size,
        deploy_token_id=None if deploy_token is None else deploy_token.id,
        deploy_token_username=None if deploy_token is None else deploy_token.username,
    )
    if deploy_token is not None:
        # A deploy token has no user: the event names the token (never its value).
        event.author_name = deploy_token.username
    # Last, so that nothing after it can fail but the commit (the placement undoes it then).
    placement.place(staged, store.path(project.id, package_file.id))
    return package_file


def pypi_index(ctx: Ctx, project: Project) -> list[IndexEntry]:
    """Every PyPI package of ``project`` once, by normalized name (spelled as first uploaded)."""
    rows = ctx.db.execute(
        select(Package.normalized_name, Package.name)
        .where(Package.project_id == project.id, Package.package_type == PYPI)
        .order_by(Package.normalized_name, Package.id)
    ).all()
    entries: dict[str, IndexEntry] = {}
    for normalized, name in rows:
        entries.setdefault(normalized, IndexEntry(name, normalized))
    return list(entries.values())


def pypi_package_files(ctx: Ctx, project: Project, name: str) -> tuple[str, list[ListedFile]]:
    """The name (as first uploaded) and every file of every version of package ``name`` (in any
    spelling PEP 503 equates). Raises NotFound("Package") when it has none."""
    rows = ctx.db.execute(
        select(Package.name, Package.requires_python, PackageFile.file_name, PackageFile.file_sha256)
        .join(PackageFile, PackageFile.package_id == Package.id)
        .where(
            Package.project_id == project.id,
            Package.package_type == PYPI,
            Package.normalized_name == names.normalize(name),
        )
        .order_by(Package.id, PackageFile.id)
    ).all()
    if not rows:
        raise NotFound("Package")
    return rows[0][0], [ListedFile(file_name, sha256, requires) for _, requires, file_name, sha256 in rows]


def pypi_download(ctx: Ctx, store: PackageStore, project: Project, sha256: str, file_name: str) -> Download:
    """The file ``file_name`` with digest ``sha256`` of a PyPI package of ``project``.
    Raises NotFound("Package") when there is none."""
    if not names.SHA256.fullmatch(sha256):
        raise NotFound("Package")
    found = ctx.db.scalars(
        select(PackageFile)
        .join(Package, PackageFile.package_id == Package.id)
        .where(
            Package.project_id == project.id,
            Package.package_type == PYPI,
            PackageFile.file_sha256 == sha256.lower(),
            PackageFile.file_name == file_name,
        )
        .order_by(PackageFile.id.desc())
    ).first()
    if found is None:
        raise NotFound("Package")
    path = store.path(project.id, found.id)
    if not path.is_file():
        # The row outlived its file (restored database, lost disk): say so as GitLab does, no 500.
        raise NotFound("Package")
    return Download(found.file_name, found.size, path)
