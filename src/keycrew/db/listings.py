"""Listings built once per shape: a page of rows and its count, as prepared statements.

Building a SQLAlchemy select, deriving its count and its page from it and computing the cache key
of each costs more than running them (a listing of twenty projects spent a third of its time
there). A listing is instead described by its *shape*, the few facts that decide the structure
of its SQL (which filters are present, the order, whether the actor is an admin), and by the
values of its parameters. The statements of a shape are built on first use, with ``bindparam``
placeholders that carry no value, and kept: every later listing of that shape only binds values.

A builder must be a pure function of its shape: anything that varies per call (an id, a date, a
search pattern, a list of ids as an expanding ``bindparam``) is a parameter, never a literal.
Since the placeholders carry no value, a value a call forgets fails loudly instead of taking
another call's. Shapes are finite (combinations of flags); past ``SHAPES_LIMIT`` of them a
listing is still answered, only built for the one call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table, bindparam, func, literal_column, select

from keycrew.db.reads import Query, prepared

SHAPES_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Listing:
    """A listing's statements and this call's values: ``page`` reads ``:limit`` rows from
    ``:offset``; ``count`` counts its rows up to ``:count_limit``; ``whole`` is the table's
    ``count(*)`` when the listing is every row of one table (SQLite counts that from the b-tree,
    without reading the rows), else None."""

    page: Query
    count: Query
    whole: Query | None
    values: Mapping[str, Any]


Builder = Callable[[], "tuple[Select[Any], Select[Any] | None]"]
_built: dict[Hashable, tuple[Query, Query, Query | None]] = {}
_lock = threading.Lock()


def listing(shape: Hashable, build: Builder, values: Mapping[str, Any]) -> Listing:
    """The listing of ``shape`` with ``values``. ``build()`` returns the ordered select of the
    rows and, when they can be counted more cheaply (fewer joins), a select of as many rows, or
    None. ``shape`` must name its builder too (e.g. a leading string): it is a process-wide key."""
    found = _built.get(shape)
    if found is None:
        rows, counted = build()
        if len(_built) >= SHAPES_LIMIT:
            return Listing(*_derive(rows, counted), values)
        page, count, whole = _derive(rows, counted)
        with _lock:
            found = _built.setdefault(shape, (prepared(page), prepared(count), whole))
    return Listing(*found, values)


def _derive(rows: Select[Any], counted: Select[Any] | None) -> tuple[Query, Query, Query | None]:
    page = rows.limit(bindparam("limit")).offset(bindparam("offset"))
    base = (rows if counted is None else counted).order_by(None)
    table = whole_table(base)
    if not base._distinct:  # rows are counted, not columns: read none of them
        # The columns' tables stay in FROM unless the select names its FROM itself (then they
        # are there already, joined, and naming them again would make the joins ambiguous).
        keep = not base._from_obj
        base = base.with_only_columns(literal_column("1"), maintain_column_froms=keep)
    count = select(func.count()).select_from(base.limit(bindparam("count_limit")).subquery())
    return page, count, None if table is None else count_of(table)


_TABLE_COUNTS: dict[str, Query] = {}


def count_of(table: Table) -> Query:
    """SELECT count(*) FROM table, built once per table."""
    found = _TABLE_COUNTS.get(table.name)
    if found is None:
        found = _TABLE_COUNTS[table.name] = prepared(select(func.count()).select_from(table))
    return found


def whole_table(query: Select[Any]) -> Table | None:
    """The table ``query`` lists every row of, if it does (no WHERE, GROUP BY, DISTINCT, join)."""
    if query.whereclause is not None or query._group_by_clauses or query._distinct:
        return None
    if query._limit_clause is not None or query._offset_clause is not None or query._having_criteria:
        return None
    if query._setup_joins or query._from_obj:
        return None
    # What the selected columns name, without compiling an ORM statement (get_final_froms would).
    froms = query.columns_clause_froms
    return froms[0] if len(froms) == 1 and isinstance(froms[0], Table) else None
