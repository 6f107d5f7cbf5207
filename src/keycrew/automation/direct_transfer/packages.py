"""Copying a project's PyPI packages: each file is downloaded through the source's PyPI API (as pip
would, with the token as HTTP Basic password) and recorded through keycrew's own upload use case,
so that ``pip install`` from the destination serves the same files with the same digests.

GitLab's direct transfer does not copy packages; keycrew's issue asks for PyPI ones. A file is
staged outside any transaction and recorded with its ``BulkImportRecord`` in one; a file the
destination refuses (a bad name, a digest that does not match) is a failure and is skipped.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from keycrew.automation.direct_transfer.work import (
    Work,
    add_failure,
    describe,
    imported_count,
    recorded,
    remember,
    set_stats,
)
from keycrew.errors import KeycrewError
from keycrew.imports.source import (
    JSONObject,
    SourceAuthError,
    SourceNotFound,
    SourceTransientError,
    SourceUnreachable,
)
from keycrew.namespaces.models import Project
from keycrew.packages.names import SHA256
from keycrew.packages.pypi import PypiUpload, upload_pypi_file
from keycrew.packages.storage import PackageStore, StagedFile
from keycrew.tokens.basic import Credential

# The largest file copied (GitLab's default pypi_max_file_size: 3 GiB).
MAX_FILE_SIZE = 3 * 1024**3
CHUNK = 1024 * 1024


def _download(work: Work, source_project_id: int, sha256: str, file_name: str, staged: StagedFile) -> None:
    url = (
        f"{work.source.url}/api/v4/projects/{source_project_id}/packages/pypi/files/"
        f"{quote(sha256, safe='')}/{quote(file_name, safe='')}"
    )
    what = f"package file {file_name}"
    try:
        with (
            httpx.Client(timeout=work.run.instance.import_source_timeout, follow_redirects=True) as client,
            client.stream("GET", url, auth=("__token__", work.token)) as response,
        ):
            if response.status_code in (401, 403):
                raise SourceAuthError(
                    f"the source access token may not read {what}", source_url=work.source.url
                )
            if response.status_code == 404:
                raise SourceNotFound(f"{what} was not found on the source", source_url=work.source.url)
            if response.status_code == 429 or response.status_code >= 500:
                raise SourceTransientError(
                    f"the source failed on {what}: HTTP {response.status_code}", source_url=work.source.url
                )
            if response.status_code >= 300:
                raise SourceNotFound(
                    f"the source answered HTTP {response.status_code} for {what}", source_url=work.source.url
                )
            for chunk in response.iter_bytes(CHUNK):
                staged.write(chunk)
    except httpx.ConnectError:
        raise SourceUnreachable(
            f"the source at {work.source.url} cannot be reached", source_url=work.source.url
        ) from None
    except httpx.TransportError as exc:
        raise SourceTransientError(
            f"the source failed on {what}: {type(exc).__name__}", source_url=work.source.url
        ) from None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def copy_packages(work: Work, source_xid: int) -> None:
    """Every file of every PyPI package of the source project, one file a transaction."""
    with work.batch() as step:
        packages_dir = step.ctx.instance.packages_dir
    seen = 0
    for package in work.source.pypi_packages(source_xid):
        package_id = package.get("id")
        name, version = _str(package.get("name")), _str(package.get("version"))
        if not isinstance(package_id, int) or name is None or version is None:
            continue
        for package_file in work.source.package_files(source_xid, package_id):
            seen += 1
            if packages_dir is not None:
                _copy_file(work, PackageStore(packages_dir), source_xid, name, version, package_file)
    with work.batch() as step:
        imported = imported_count(step.ctx, step.entity.id, "package_file")
        set_stats(step.entity, "packages", source=seen, fetched=seen, imported=imported)


def _copy_file(
    work: Work, store: PackageStore, source_xid: int, name: str, version: str, package_file: JSONObject
) -> None:
    key = str(package_file.get("id"))
    file_name = _str(package_file.get("file_name"))
    sha256 = _str(package_file.get("file_sha256"))
    with work.batch() as step:
        if recorded(step.ctx, step.entity.id, "package_file", [key]):
            return
        if file_name is None or sha256 is None or not SHA256.fullmatch(sha256):
            add_failure(
                step.ctx,
                step.entity,
                relation="packages",
                step="extractor",
                exception_class="SourceProtocolError",
                message=f"the source gave package {name} {version} a file without a name or SHA-256",
                source_title=file_name,
            )
            remember(step.ctx, step.entity.id, "package_file", key, None)
            return
    with store.stage(MAX_FILE_SIZE) as staged:
        try:
            _download(work, source_xid, sha256, file_name, staged)
        except SourceNotFound as exc:
            with work.batch() as step:
                add_failure(
                    step.ctx,
                    step.entity,
                    relation="packages",
                    step="extractor",
                    exception_class=type(exc).__name__,
                    message=exc.message,
                    source_title=file_name,
                )
                remember(step.ctx, step.entity.id, "package_file", key, None)
            return
        upload = PypiUpload(name=name, version=version, file_name=file_name, sha256_digest=sha256.lower())
        with store.placement() as placement, work.batch() as step:
            ctx = step.ctx
            project = ctx.db.get(Project, step.entity.project_id) if step.entity.project_id else None
            if project is None:
                return
            try:
                with ctx.db.begin_nested():
                    made = upload_pypi_file(
                        ctx, Credential(user=ctx.actor.user), project.id, upload, staged, store, placement
                    )
            except KeycrewError as exc:
                add_failure(
                    ctx,
                    step.entity,
                    relation="packages",
                    step="loader",
                    exception_class=type(exc).__name__,
                    message=describe(exc),
                    source_title=file_name,
                )
                remember(ctx, step.entity.id, "package_file", key, None)
                work.run.count("package files skipped")
                return
            remember(ctx, step.entity.id, "package_file", key, made.id)
            work.run.count("package files copied")
