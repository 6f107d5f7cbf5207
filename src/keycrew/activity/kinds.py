"""GitLab's event vocabulary: stored actions, the target types the API filters on, push payload
enums, and the ``action_name`` each event is shown with."""

from __future__ import annotations

from enum import IntEnum


class Action(IntEnum):
    CREATED = 1
    UPDATED = 2
    CLOSED = 3
    REOPENED = 4
    PUSHED = 5
    COMMENTED = 6
    MERGED = 7
    JOINED = 8
    LEFT = 9
    DESTROYED = 10
    EXPIRED = 11
    APPROVED = 12


# The API's ``action`` values, in GitLab's order.
ACTIONS = tuple(a.name.lower() for a in Action)

# The API's ``target_type`` values and the class names stored for them.
TARGET_TYPES = {
    "issue": "Issue",
    "milestone": "Milestone",
    "merge_request": "MergeRequest",
    "note": "Note",
    "project": "Project",
    "snippet": "Snippet",
    "user": "User",
    "wiki": "WikiPage::Meta",
    "design": "DesignManagement::Design",
}

ISSUE = "Issue"
NOTE = "Note"


class PushAction(IntEnum):
    CREATED = 0
    REMOVED = 1
    PUSHED = 2


class RefType(IntEnum):
    BRANCH = 0
    TAG = 1


# Event.contributions: what makes a project one the author contributed to.
CONTRIBUTION_TARGET_ACTIONS = (Action.CREATED, Action.CLOSED, Action.MERGED)
CONTRIBUTION_TARGETS = ("MergeRequest", ISSUE)

_NAMES = {
    Action.CLOSED: "closed",
    Action.MERGED: "accepted",
    Action.JOINED: "joined",
    Action.LEFT: "left",
    Action.EXPIRED: "removed due to membership expiration from",
    Action.DESTROYED: "destroyed",
    Action.COMMENTED: "commented on",
    Action.APPROVED: "approved",
}


def action_name(action: int, target_type: str | None, push_action: int | None = None) -> str:
    """GitLab's Event#action_name."""
    if action == Action.PUSHED:
        if push_action == PushAction.CREATED:
            return "pushed new"
        if push_action == PushAction.REMOVED:
            return "deleted"
        return "pushed to"
    if action in _NAMES:
        return _NAMES[Action(action)]
    if action == Action.CREATED and target_type is None:
        return "created"
    return "opened"
