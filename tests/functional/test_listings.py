"""keycrew.db.listings on both databases: a listing's statements are built once per shape and
bound per call; a value a call leaves out fails instead of taking another call's; pages and
counts agree with the rows; a whole table is recognised; past the limit of shapes it still works."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, bindparam, func, select
from sqlalchemy.exc import InvalidRequestError, StatementError

from keycrew.db import listings
from keycrew.db.listings import listing
from keycrew.db.reads import PoolReads
from tests.support.backends import BACKENDS
from tests.support.live import scratch_engine

metadata = MetaData()
items = Table(
    "listed_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", Integer, nullable=False),
    Column("name", String(50), nullable=False),
)
I = items.c  # noqa: E741


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with scratch_engine(request.param, tmp_path, metadata) as built:
        with built.begin() as conn:
            conn.execute(
                items.insert(), [{"id": n, "owner": n % 3, "name": f"item-{n:02}"} for n in range(1, 31)]
            )
        yield built


@pytest.fixture
def key() -> str:
    """A name of its own for each test's shapes: shapes are process-wide."""
    return f"test_listings-{uuid.uuid4().hex}"


def owned(shape_name: str, ordered_by_name: bool) -> Any:
    def build() -> Any:
        rows = select(I.id, I.name).where(I.owner == bindparam("owner"))
        return rows.order_by(I.name.desc() if ordered_by_name else I.id), None

    return build


def run(engine: Engine, found: listings.Listing, limit: int, offset: int) -> tuple[list[Any], int]:
    reads = PoolReads(engine)
    try:
        rows = reads.rows(found.page, {**found.values, "limit": limit, "offset": offset})
        total = reads.scalar(found.count, {**found.values, "count_limit": 1000})
        return [tuple(r) for r in rows], int(total)
    finally:
        reads.close()


def test_a_shape_is_built_once_and_bound_per_call(engine: Engine, key: str) -> None:
    built: list[int] = []

    def build() -> Any:
        built.append(1)
        return owned("t1", False)()

    first = listing((key, "owner-by-id"), build, {"owner": 1})
    second = listing((key, "owner-by-id"), build, {"owner": 2})
    assert len(built) == 1
    assert first.page is second.page
    assert first.count is second.count
    rows_1, total_1 = run(engine, first, 3, 0)
    rows_2, total_2 = run(engine, second, 3, 2)
    assert rows_1 == [(1, "item-01"), (4, "item-04"), (7, "item-07")]
    assert total_1 == 10
    assert rows_2 == [(8, "item-08"), (11, "item-11"), (14, "item-14")]
    assert total_2 == 10


def test_another_shape_is_another_statement(engine: Engine, key: str) -> None:
    by_id = listing((key, "owner-by-id"), owned("a", False), {"owner": 0})
    by_name = listing((key, "owner-by-name"), owned("b", True), {"owner": 0})
    assert by_id.page is not by_name.page
    assert run(engine, by_name, 2, 0)[0] == [(30, "item-30"), (27, "item-27")]


def test_a_value_left_out_fails_rather_than_taking_another_calls(engine: Engine, key: str) -> None:
    listing((key, "owner-by-id"), owned("c", False), {"owner": 1})
    forgetful = listing((key, "owner-by-id"), owned("c", False), {})
    with pytest.raises((InvalidRequestError, StatementError, KeyError, psycopg.Error, sqlite3.Error)):
        run(engine, forgetful, 3, 0)


def test_a_whole_table_has_a_plain_count_and_a_filtered_one_has_none(engine: Engine, key: str) -> None:
    whole = listing((key, "all"), lambda: (select(I.id).order_by(I.id), None), {})
    narrowed = listing((key, "owner-by-id"), owned("d", False), {"owner": 1})
    assert whole.whole is not None
    assert narrowed.whole is None
    reads = PoolReads(engine)
    try:
        assert reads.scalar(whole.whole) == 30
        assert reads.scalar(whole.count, {"count_limit": 5}) == 5
    finally:
        reads.close()


def test_rows_counted_by_a_cheaper_select(engine: Engine, key: str) -> None:
    def build() -> Any:
        rows = select(I.id, I.name).where(I.owner == bindparam("owner")).order_by(I.id)
        return rows, select(I.id).where(I.owner == bindparam("owner"))

    found = listing((key, "counted"), build, {"owner": 2})
    assert run(engine, found, 1, 0) == ([(2, "item-02")], 10)


def test_past_the_limit_of_shapes_a_listing_is_built_for_its_call(
    engine: Engine, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listings, "SHAPES_LIMIT", 0)
    first = listing((key, "unkept"), owned("e", False), {"owner": 1})
    second = listing((key, "unkept"), owned("e", False), {"owner": 1})
    assert first.page is not second.page
    assert run(engine, second, 2, 0)[0] == [(1, "item-01"), (4, "item-04")]


def test_a_listing_that_names_its_from_and_joins_is_counted(engine: Engine, key: str) -> None:
    """Columns of joined tables (coalesce over two outer joins) must not be named in FROM again."""
    other = items.alias("other")

    def build() -> Any:
        rows = (
            select(I.id, func.coalesce(other.c.name, I.name))
            .select_from(items)
            .outerjoin(other, other.c.id == I.id + 100)
            .where(I.owner == bindparam("owner"))
            .order_by(I.id)
        )
        return rows, None

    found = listing((key, "joined"), build, {"owner": 0})
    assert run(engine, found, 2, 0) == ([(3, "item-03"), (6, "item-06")], 10)
