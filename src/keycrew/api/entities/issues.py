"""Issue and note entities (GitLab's API::Entities::Issue and API::Entities::Note)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keycrew.api.entities import iso
from keycrew.api.entities.users import user_basic
from keycrew.identity.models import User
from keycrew.namespaces.models import Project
from keycrew.records.models import Issue, Note


def _user(users: Mapping[int, User], user_id: int | None, base: str) -> dict[str, Any] | None:
    if user_id is None:
        return None
    user = users.get(user_id)
    return None if user is None else user_basic(user, base)


def issue_web_url(project: Project, issue: Issue, base: str) -> str:
    # GitLab serves incidents under their own path.
    kind = "issues/incident" if issue.issue_type == "incident" else "issues"
    return f"{base}/{project.full_path}/-/{kind}/{issue.iid}"


def issue(
    issue: Issue,
    project: Project,
    users: Mapping[int, User],
    user_notes_count: int,
    base: str,
    *,
    viewer_id: int | None = None,
    include_subscribed: bool = True,
) -> dict[str, Any]:
    api = f"{base}/api/v4/projects/{project.id}"
    data: dict[str, Any] = {
        "id": issue.id,
        "iid": issue.iid,
        "project_id": issue.project_id,
        "title": issue.title,
        "description": issue.description,
        "state": issue.state,
        "created_at": iso(issue.created_at),
        "updated_at": iso(issue.updated_at),
        "closed_at": iso(issue.closed_at),
        "closed_by": _user(users, issue.closed_by_id, base),
        "labels": [],
        "milestone": None,
        "assignees": [],
        "author": _user(users, issue.author_id, base),
        "type": issue.issue_type.upper(),
        "assignee": None,
        "user_notes_count": user_notes_count,
        "merge_requests_count": 0,
        "upvotes": 0,
        "downvotes": 0,
        "due_date": None,
        "confidential": issue.confidential,
        "discussion_locked": None,
        "issue_type": issue.issue_type,
        "web_url": issue_web_url(project, issue, base),
        "time_stats": {
            "time_estimate": 0,
            "total_time_spent": 0,
            "human_time_estimate": None,
            "human_total_time_spent": None,
        },
        "task_completion_status": {"count": 0, "completed_count": 0},
        "blocking_issues_count": 0,
        "has_tasks": False,
        "_links": {
            "self": f"{api}/issues/{issue.iid}",
            "notes": f"{api}/issues/{issue.iid}/notes",
            "award_emoji": f"{api}/issues/{issue.iid}/award_emoji",
            "project": api,
            "closed_as_duplicate_of": None,
        },
        "references": {
            "short": f"#{issue.iid}",
            "relative": f"#{issue.iid}",
            "full": f"{project.full_path}#{issue.iid}",
        },
        "severity": "UNKNOWN",
        "moved_to_id": None,
        "imported": False,
        "imported_from": "none",
        "service_desk_reply_to": None,
    }
    if include_subscribed:
        # Authors are subscribed to their issues; keycrew keeps no other subscriptions.
        data["subscribed"] = viewer_id is not None and viewer_id == issue.author_id
    return data


def note(note: Note, issue: Issue, users: Mapping[int, User], base: str) -> dict[str, Any]:
    return {
        "id": note.id,
        "type": None,
        "body": note.body,
        "attachment": None,
        "author": _user(users, note.author_id, base),
        "created_at": iso(note.created_at),
        "updated_at": iso(note.updated_at),
        "system": note.system,
        "noteable_id": issue.id,
        "noteable_type": "Issue",
        "project_id": note.project_id,
        "resolvable": False,
        "confidential": note.confidential,
        "internal": note.confidential,
        "noteable_iid": issue.iid,
        "commands_changes": {},
    }
