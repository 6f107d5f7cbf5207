"""GitLab's BulkImport, BulkImports::Entity and BulkImports::Failure entities (``/bulk_imports``)."""

from __future__ import annotations

from typing import Any

from keycrew.api.entities import iso
from keycrew.imports.bulk import BulkImport, BulkImportEntity, BulkImportFailure
from keycrew.imports.bulk_imports import destination_full_path, stats_of

SOURCE_TYPES = {"group": "group_entity", "project": "project_entity"}


def bulk_import(found: BulkImport) -> dict[str, Any]:
    return {
        "id": found.id,
        "status": found.status,
        "source_type": found.source_type,
        "source_url": found.source_url,
        "created_at": iso(found.created_at),
        "updated_at": iso(found.updated_at),
        "has_failures": found.has_failures,
    }


def failure(found: BulkImportFailure) -> dict[str, Any]:
    return {
        "relation": found.relation,
        "step": found.step,
        "exception_message": found.exception_message,
        "exception_class": found.exception_class,
        "correlation_id_value": found.correlation_id_value,
        "created_at": iso(found.created_at),
        "pipeline_class": None,
        "pipeline_step": found.step,
        "source_url": found.source_url,
        "source_title": found.source_title,
    }


def entity(found: BulkImportEntity, failures: list[BulkImportFailure]) -> dict[str, Any]:
    return {
        "id": found.id,
        "bulk_import_id": found.bulk_import_id,
        "status": found.status,
        "entity_type": found.entity_type,
        "source_type": SOURCE_TYPES.get(found.entity_type, found.entity_type),
        "source_full_path": found.source_full_path,
        "destination_full_path": destination_full_path(found),
        "destination_name": found.destination_slug,
        "destination_slug": found.destination_slug,
        "destination_namespace": found.destination_namespace,
        "parent_id": found.parent_id,
        "namespace_id": found.namespace_id,
        "project_id": found.project_id,
        "created_at": iso(found.created_at),
        "updated_at": iso(found.updated_at),
        "failures": [failure(row) for row in failures],
        "migrate_projects": found.migrate_projects,
        "migrate_memberships": found.migrate_memberships,
        "has_failures": found.has_failures,
        "stats": stats_of(found),
    }
