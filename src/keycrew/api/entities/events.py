"""Contribution events (GitLab's API::Entities::Event, PushEventPayload) and user activities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keycrew.activity.kinds import PushAction, RefType, action_name
from keycrew.api.entities import day, iso
from keycrew.api.entities.users import user_basic
from keycrew.identity.views import AnyUser, UserBrief
from keycrew.records.events import EventRow

_PUSH_ACTIONS = {int(a): a.name.lower() for a in PushAction}
_REF_TYPES = {int(r): r.name.lower() for r in RefType}


def _note(row: EventRow, authors: Mapping[int, UserBrief], base: str) -> dict[str, Any]:
    author = authors.get(row.note_author_id or 0)
    return {
        "id": row.note_id,
        "type": None,
        "body": row.note_body,
        "attachment": None,
        "author": None if author is None else user_basic(author, base),
        "created_at": iso(row.note_created_at),
        "updated_at": iso(row.note_updated_at),
        "system": bool(row.note_system),
        "noteable_id": row.note_issue_id,
        "noteable_type": "Issue",
        "project_id": row.project_id,
        "resolvable": False,
        "confidential": bool(row.note_confidential),
        "internal": bool(row.note_confidential),
        "imported": False,
        "imported_from": "none",
        "noteable_iid": row.note_issue_iid,
        "commands_changes": {},
    }


def _push_data(row: EventRow) -> dict[str, Any]:
    return {
        "commit_count": row.commit_count,
        "action": _PUSH_ACTIONS.get(row.push_action or 0),
        "ref_type": _REF_TYPES.get(row.ref_type or 0),
        "commit_from": row.commit_from,
        "commit_to": row.commit_to,
        "ref": row.ref,
        "commit_title": row.commit_title,
        "ref_count": row.ref_count,
    }


def event(row: EventRow, authors: Mapping[int, UserBrief], base: str) -> dict[str, Any]:
    author = authors.get(row.author_id)
    data: dict[str, Any] = {
        "id": row.id,
        "project_id": row.project_id,
        "action_name": action_name(row.action, row.target_type, row.push_action),
        "target_id": row.target_id,
        "target_iid": row.target_iid,
        "target_type": row.target_type,
        "author_id": row.author_id,
        "target_title": row.target_title,
        "created_at": iso(row.created_at),
    }
    if row.note_id is not None:
        data["note"] = _note(row, authors, base)
    if author is not None:
        data["author"] = user_basic(author, base)
    if row.push_event_id is not None:
        data["push_data"] = _push_data(row)
    data["author_username"] = None if author is None else author.username
    data["imported"] = False
    data["imported_from"] = "none"
    return data


def user_activity(user: AnyUser) -> dict[str, Any]:
    """GitLab's UserActivity: last_activity_at is the same date, kept for older clients."""
    return {
        "username": user.username,
        "last_activity_on": day(user.last_activity_on),
        "last_activity_at": day(user.last_activity_on),
    }
