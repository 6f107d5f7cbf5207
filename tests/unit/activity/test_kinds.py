"""GitLab's event vocabulary: action names, push titles, the default "from" of user activities."""

from __future__ import annotations

import datetime as dt

import pytest

from keycrew.activity.kinds import Action, PushAction, action_name
from keycrew.activity.service import commit_title
from keycrew.records.events import months_before


@pytest.mark.parametrize(
    ("action", "target_type", "push", "expected"),
    [
        (Action.PUSHED, None, PushAction.CREATED, "pushed new"),
        (Action.PUSHED, None, PushAction.REMOVED, "deleted"),
        (Action.PUSHED, None, PushAction.PUSHED, "pushed to"),
        (Action.CREATED, None, None, "created"),
        (Action.CREATED, "Issue", None, "opened"),
        (Action.REOPENED, "Issue", None, "opened"),
        (Action.CLOSED, "Issue", None, "closed"),
        (Action.MERGED, "MergeRequest", None, "accepted"),
        (Action.COMMENTED, "Note", None, "commented on"),
        (Action.JOINED, None, None, "joined"),
        (Action.LEFT, None, None, "left"),
        (Action.EXPIRED, None, None, "removed due to membership expiration from"),
        (Action.DESTROYED, "Milestone", None, "destroyed"),
        (Action.APPROVED, "MergeRequest", None, "approved"),
    ],
)
def test_action_names(
    action: Action, target_type: str | None, push: PushAction | None, expected: str
) -> None:
    assert action_name(action, target_type, push) == expected


def test_commit_title_is_the_first_line_cut_at_70() -> None:
    assert commit_title("Fix the build\n\nLong story") == "Fix the build"
    assert commit_title("  padded  ") == "padded"
    assert commit_title("x" * 80) == "x" * 67 + "..."
    assert commit_title("") is None
    assert commit_title(None) is None


def test_six_months_before_keeps_the_day_or_the_end_of_the_month() -> None:
    assert months_before(dt.date(2026, 12, 7), 6) == dt.date(2026, 6, 7)
    assert months_before(dt.date(2026, 8, 31), 6) == dt.date(2026, 2, 28)
    assert months_before(dt.date(2024, 8, 31), 6) == dt.date(2024, 2, 29)
    assert months_before(dt.date(2026, 3, 15), 6) == dt.date(2025, 9, 15)
