"""The token tables' view model: relative times, expiry in days, and a query string that rejects
what it does not know and keeps the rest in every link."""

from __future__ import annotations

import datetime as dt

from keycrew.web.token_table import TableQuery, days_word, parse_query, relative

NOW = dt.datetime(2026, 12, 7, 18, 0, tzinfo=dt.UTC)


def test_relative_time_as_people_say_it() -> None:
    assert relative(None, NOW) == "Never"
    assert relative(NOW - dt.timedelta(seconds=20), NOW) == "just now"
    assert relative(NOW - dt.timedelta(minutes=1), NOW) == "1 minute ago"
    assert relative(NOW - dt.timedelta(hours=3, minutes=5), NOW) == "3 hours ago"
    assert relative(NOW - dt.timedelta(days=1), NOW) == "1 day ago"
    assert relative(NOW - dt.timedelta(days=65), NOW) == "2 months ago"
    assert relative(NOW - dt.timedelta(days=800), NOW) == "2 years ago"
    assert relative(NOW + dt.timedelta(seconds=5), NOW) == "just now"  # another node's clock


def test_expiry_in_days() -> None:
    assert days_word(3) == "in 3 days"
    assert days_word(1) == "in 1 day"
    assert days_word(0) == "today"
    assert days_word(-2) == "2 days ago"


def test_the_query_string_keeps_what_it_knows() -> None:
    query = parse_query(
        {
            "search": " ci ",
            "state": "active",
            "scope": "api",
            "expiring": "7",
            "sort": "name",
            "direction": "asc",
            "page": "2",
            "owner": "alice",
            "kind": "project_bot",
        },
        scopes=["api", "read_api"],
    )
    assert query == TableQuery(
        search="ci", state="active", scope="api", expiring=7, sort="name", direction="asc", page=2
    )
    assert query.url("/t") == "/t?search=ci&state=active&scope=api&expiring=7&sort=name&direction=asc&page=2"
    # The sort links start from the first page and turn the order round on the sorted column.
    assert query.sort_url("/t", "name") == "/t?search=ci&state=active&scope=api&expiring=7&sort=name"
    assert query.sort_url("/t", "expires").endswith("&expiring=7&sort=expires")
    assert query.describe() == "named like “ci”, with the scope api, expiring within 7 days"
    admin = parse_query({"owner": "@alice", "kind": "project_bot"}, kinds=True)
    assert (admin.owner, admin.kind) == ("@alice", "project_bot")


def test_the_query_string_drops_what_it_does_not_know() -> None:
    query = parse_query(
        {
            "search": "x" * 300,
            "state": "revoked",
            "scope": "sudo",
            "expiring": "5",
            "sort": "id",
            "direction": "up",
            "page": "-1",
            "kind": "deploy",
        },
        scopes=["api"],
        kinds=True,
    )
    assert query == TableQuery()
    assert query.url("/t") == "/t"
    assert parse_query({"search": "a\x00b", "page": "9999999"}) == TableQuery()
