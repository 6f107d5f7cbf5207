"""GitLab's Package, PackageVersion and PackageFile entities (the packages API)."""

from __future__ import annotations

from typing import Any

from keycrew.api.entities import iso
from keycrew.namespaces.models import Project
from keycrew.packages.management import STATUS
from keycrew.packages.models import Package, PackageFile


def package(
    found: Package,
    project: Project,
    api_url: str,
    *,
    can_destroy: bool,
    group: bool = False,
    versions: list[Package] | None = None,
) -> dict[str, Any]:
    """One package; ``api_url`` is the API's root URL (``https://host/api/v4``). A group's listing
    adds project_id and project_path; a single package adds its other ``versions``. Pipelines are
    left out, as GitLab leaves them out of a package built by none."""
    links: dict[str, Any] = {"web_path": f"/{project.full_path}/-/packages/{found.id}"}
    if can_destroy:
        links["delete_api_path"] = f"{api_url}/projects/{project.id}/packages/{found.id}"
    data: dict[str, Any] = {
        "id": found.id,
        "name": found.name,
        "version": found.version,
        "package_type": found.package_type,
        "status": STATUS,
        "_links": links,
        "created_at": iso(found.created_at),
        "last_downloaded_at": None,
    }
    if group:
        data["project_id"] = project.id
        data["project_path"] = project.full_path
    data["tags"] = []
    if versions is not None:
        data["versions"] = [
            {"id": v.id, "version": v.version, "created_at": iso(v.created_at), "tags": []} for v in versions
        ]
    return data


def package_file(found: PackageFile) -> dict[str, Any]:
    """One file of a package: its digests as GitLab stores them (no SHA-1 for PyPI files)."""
    return {
        "id": found.id,
        "package_id": found.package_id,
        "created_at": iso(found.created_at),
        "file_name": found.file_name,
        "size": found.size,
        "file_md5": found.file_md5,
        "file_sha1": None,
        "file_sha256": found.file_sha256,
    }
