"""GitLab's timestamp form, as every entity writes it: UTC, milliseconds, a Z."""

from __future__ import annotations

import datetime as dt

import pytest

from keycrew.api.entities import day, iso

UTC = dt.UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (dt.datetime(2026, 12, 7, 7, 0, 24, 526522, tzinfo=UTC), "2026-12-07T07:00:24.526Z"),
        (dt.datetime(2026, 12, 7, 7, 0, 24, tzinfo=UTC), "2026-12-07T07:00:24.000Z"),
        (dt.datetime(2026, 12, 7, 7, 0, 24, 999999, tzinfo=UTC), "2026-12-07T07:00:24.999Z"),  # truncated
        (dt.datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000Z"),
        (dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999Z"),
        # Another zone is told in UTC.
        (
            dt.datetime(2026, 1, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2025-12-31T23:30:00.000Z",
        ),
    ],
)
def test_iso_is_gitlabs_form(value: dt.datetime, expected: str) -> None:
    assert iso(value) == expected
    assert iso(value) == value.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


def test_missing_values_stay_missing() -> None:
    assert iso(None) is None
    assert day(None) is None
    assert day(dt.date(2026, 2, 3)) == "2026-02-03"
