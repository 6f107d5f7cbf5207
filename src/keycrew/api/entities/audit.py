"""Audit event entity (GitLab EE's API::Entities::AuditEvent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keycrew.api.entities import iso
from keycrew.audit.models import AuditEvent

# GitLab's id and class for an actor that is not a user (system jobs, unauthenticated requests).
UNAUTHENTICATED_ID = -1


def _humanize(event_name: str) -> str:
    return event_name.replace(".", " ").replace("_", " ").capitalize()


def audit_event(event: AuditEvent, impersonators: Mapping[int, str]) -> dict[str, Any]:
    """``details`` carries GitLab's standard keys plus the event's own (change/from/to, ...).

    The credential appears as ``token_id`` only: an id, never a token value.
    """
    own = dict(event.details or {})
    details: dict[str, Any] = {}
    if not {"custom_message", "change", "add", "remove"} & own.keys():
        details["custom_message"] = _humanize(event.event_name)
    details.update(own)
    details.update(
        {
            "author_name": event.author_name,
            "author_class": "User" if event.author_id is not None else "Gitlab::Audit::UnauthenticatedAuthor",
            "target_id": event.target_id,
            "target_type": event.target_type,
            "target_details": event.target_details,
            "ip_address": event.ip_address,
            "entity_path": event.entity_path,
            "token_id": event.token_id,
            "event_name": event.event_name,
        }
    )
    if event.impersonated_by_id is not None:
        details["impersonated_by_id"] = event.impersonated_by_id
        details["impersonated_by"] = impersonators.get(event.impersonated_by_id)
    return {
        "id": event.id,
        "author_id": event.author_id if event.author_id is not None else UNAUTHENTICATED_ID,
        "entity_id": event.entity_id,
        "entity_type": event.entity_type,
        "event_name": event.event_name,
        "details": details,
        "created_at": iso(event.created_at),
    }
