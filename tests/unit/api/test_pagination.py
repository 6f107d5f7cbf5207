"""List pagination (api/pagination.py): GitLab's headers, and its count limit on huge lists."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Select, Table, event, insert, literal, select, true
from starlette.requests import Request

from keycrew.api.pagination import COUNT_LIMIT, count_upto, fetch, fetch_rows, respond
from keycrew.api.params import Params
from keycrew.bootstrap import Runtime
from keycrew.db.listings import whole_table
from keycrew.db.reads import PoolReads
from keycrew.namespaces.models import Namespace, Project


def _numbers(count: int) -> Select[Any]:
    """SELECT 1..count, in order, on any backend (a recursive CTE)."""
    numbers = select(literal(1).label("n")).cte("numbers", recursive=True)
    numbers = numbers.union_all(select(numbers.c.n + 1).where(numbers.c.n < count))
    return select(numbers.c.n).order_by(numbers.c.n)


def _request(query: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "scheme": "http",
            "server": ("gitlab.test", 80),
            "path": "/api/v4/things",
            "root_path": "",
            "query_string": query.encode(),
            "headers": [(b"host", b"gitlab.test")],
        }
    )


def _page(runtime: Runtime, count: int, query: str) -> tuple[list[Any], dict[str, str]]:
    request = _request(query)
    with runtime.sessions() as db:
        found = fetch(db, Params(request.query_params, {}), _numbers(count), tuples=True)
    response = respond(request, [row[0] for row in found.rows], found)
    return [int(n) for n in response.body.decode().strip("[]").split(",") if n], dict(response.headers)


def test_a_counted_list_has_every_header(runtime: Runtime) -> None:
    items, headers = _page(runtime, 45, "per_page=20&page=2")
    assert items == list(range(21, 41))
    assert (headers["x-total"], headers["x-total-pages"]) == ("45", "3")
    assert (headers["x-page"], headers["x-next-page"], headers["x-prev-page"]) == ("2", "3", "1")
    assert 'page=3&per_page=20>; rel="last"' in headers["link"]


def test_the_last_page_has_no_next(runtime: Runtime) -> None:
    items, headers = _page(runtime, 45, "per_page=20&page=3")
    assert items == list(range(41, 46))
    assert headers["x-next-page"] == ""
    assert 'rel="next"' not in headers["link"]


@pytest.mark.parametrize("count", [COUNT_LIMIT, COUNT_LIMIT + 1])
def test_past_the_count_limit_totals_and_last_are_left_out_as_gitlab_does(
    runtime: Runtime, count: int
) -> None:
    items, headers = _page(runtime, count, "per_page=100&page=2")
    assert items == list(range(101, 201))
    assert headers["x-next-page"] == "3"
    if count <= COUNT_LIMIT:
        assert headers["x-total"] == str(count)
        assert 'rel="last"' in headers["link"]
    else:
        assert "x-total" not in headers
        assert "x-total-pages" not in headers
        assert 'rel="last"' not in headers["link"]
        assert 'rel="next"' in headers["link"]
        assert 'rel="first"' in headers["link"]


def test_past_the_count_limit_the_next_page_is_known_from_one_more_row(runtime: Runtime) -> None:
    last_full = (COUNT_LIMIT + 50) // 50
    items, headers = _page(runtime, COUNT_LIMIT + 50, f"per_page=50&page={last_full}")
    assert len(items) == 50
    assert headers["x-next-page"] == ""
    items, headers = _page(runtime, COUNT_LIMIT + 50, f"per_page=50&page={last_full - 1}")
    assert len(items) == 50
    assert headers["x-next-page"] == str(last_full)


def _rows_table(runtime: Runtime, count: int) -> Table:
    table = Table(f"count_probe_{count}", MetaData(), Column("id", Integer, primary_key=True))
    with runtime.engine.begin() as conn:
        table.create(conn)
        if count:
            conn.execute(insert(table), [{"id": i} for i in range(1, count + 1)])
    return table


@pytest.mark.parametrize("count", [0, 3, COUNT_LIMIT, COUNT_LIMIT + 1])
def test_a_whole_table_is_counted_as_a_limited_count_would(runtime: Runtime, count: int) -> None:
    """SQLite counts a whole table from its b-tree (no LIMIT); the answer is the bounded one's."""
    table = _rows_table(runtime, count)
    reads = PoolReads(runtime.engine)
    try:
        whole = count_upto(reads, select(table), sqlite=True)
        bounded = count_upto(reads, select(table), sqlite=False)
        filtered = count_upto(reads, select(table).where(table.c.id > 1), sqlite=True)
    finally:
        reads.close()
    expected = count if count <= COUNT_LIMIT else None
    assert whole == bounded == expected
    assert filtered == (max(count - 1, 0) if count - 1 <= COUNT_LIMIT else None)


def test_only_an_unconditioned_single_table_select_is_awhole_table() -> None:
    for whole in (select(Project), select(Project.id).order_by(Project.id)):
        table = whole_table(whole)
        assert table is not None
        assert table.name == "projects"
    for narrowed in (
        select(Project).where(true()),
        select(Project).where(Project.id > 3),
        select(Project).join(Namespace),
        select(Project.id, Namespace.id),
        select(Project.id).distinct(),
        select(Project.id).group_by(Project.id),
        select(Project).limit(5),
    ):
        assert whole_table(narrowed) is None


def _page_first(runtime: Runtime, count: int, query: str) -> tuple[list[Any], dict[str, str], int]:
    """The same page through ``fetch_rows`` (the page read first), with its statement count."""
    request = _request(query)
    seen: list[str] = []

    def before(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(runtime.engine, "before_cursor_execute", before)
    reads = PoolReads(runtime.engine)
    try:
        found = fetch_rows(reads, Params(request.query_params, {}), _numbers(count))
    finally:
        reads.close()
        event.remove(runtime.engine, "before_cursor_execute", before)
    response = respond(request, [row[0] for row in found.rows], found)
    items = [int(n) for n in response.body.decode().strip("[]").split(",") if n]
    return items, dict(response.headers), len(seen)


@pytest.mark.parametrize(
    ("count", "query"),
    [
        (0, "per_page=20"),
        (7, "per_page=20"),
        (20, "per_page=20"),
        (21, "per_page=20"),
        (45, "per_page=20&page=2"),
        (45, "per_page=20&page=3"),
        (45, "per_page=20&page=4"),
        (40, "per_page=20&page=2"),
        (40, "per_page=20&page=3"),
        (5, "per_page=1&page=5"),
    ],
)
def test_reading_the_page_first_answers_what_counting_first_does(
    runtime: Runtime, count: int, query: str
) -> None:
    """A page that ends the list tells its total without a count; every header is the same."""
    items, headers = _page(runtime, count, query)
    first_items, first_headers, statements = _page_first(runtime, count, query)
    assert first_items == items
    names = ("x-total", "x-total-pages", "x-page", "x-per-page", "x-next-page", "x-prev-page", "link")
    assert {n: first_headers.get(n) for n in names} == {n: headers.get(n) for n in names}
    args = dict(part.split("=") for part in query.split("&"))
    offset = (int(args.get("page", "1")) - 1) * int(args["per_page"])
    # The page ends the list (an empty page past the end does not: its total is counted).
    ended = offset + len(items) >= count and (items or offset == 0)
    assert statements == (1 if ended else 2), (count, query)
