"""Offset pagination with GitLab's headers and a Link header that names next only when it exists."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import Select, func, literal, select
from sqlalchemy.orm import Session

from keycrew.api.entities import JSON, base_url
from keycrew.api.params import Params
from keycrew.db.listings import Listing, count_of, whole_table
from keycrew.db.reads import Query, Reader
from keycrew.errors import BadParameter
from keycrew.infra.redaction import credential_parameter

T = TypeVar("T")
S = TypeVar("S", bound=Select[Any])
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# Keeps OFFSET within a 64-bit integer on every backend; pages past any real data are empty anyway.
MAX_PAGE = 2**31


def page_args(params: Params) -> tuple[int, int]:
    """The page and per_page of a paginated list (one answered as an array with the pagination
    headers: the API document marks the routes that reach this function so)."""
    return page_window(params)


def page_window(params: Params) -> tuple[int, int]:
    """``page`` and ``per_page`` with their defaults and bounds, for a response that is not a list
    itself but pages lists inside it (``/personal_access_tokens/self/associations``)."""
    page = params.integer("page") or 1
    per_page = params.integer("per_page") or DEFAULT_PER_PAGE
    page = min(max(page, 1), MAX_PAGE)
    if per_page < 1:
        raise BadParameter("per_page does not have a valid value")
    return page, min(per_page, MAX_PER_PAGE)


COUNT_LIMIT = 10_000


@dataclass
class Page:
    """One page of a list: its rows, where it is, and the total when it was counted."""

    rows: list[Any]
    page: int
    per_page: int
    # None past COUNT_LIMIT rows: like GitLab, the list then has no X-Total, X-Total-Pages or
    # rel="last" (counting a huge table for every page costs more than the page itself).
    total: int | None
    more: bool

    @property
    def total_pages(self) -> int | None:
        return None if self.total is None else max(1, math.ceil(self.total / self.per_page))


def count_upto(db: Session | Reader, query: Select[Any], *, sqlite: bool = False) -> int | None:
    """The rows ``query`` selects, counted up to COUNT_LIMIT + 1 (None past the limit).

    On SQLite a whole table (no condition, no join: an admin's listing of every project, say) is
    counted exactly with a plain count(*), which SQLite answers from the b-tree without reading
    the rows; bounding it with a LIMIT would make it read up to COUNT_LIMIT rows instead.
    """
    whole = whole_table(query) if sqlite else None
    if whole is not None:
        total = int(db.scalar(count_of(whole)) or 0)
        return None if total > COUNT_LIMIT else total
    rows = query.order_by(None)
    if not rows._distinct:  # rows are counted, not columns: read none of them
        rows = rows.with_only_columns(literal(1), maintain_column_froms=True)
    counted = rows.limit(COUNT_LIMIT + 1).subquery()
    total = int(db.scalar(select(func.count()).select_from(counted)) or 0)
    return None if total > COUNT_LIMIT else total


def fetch(
    db: Session,
    params: Params,
    query: Select[Any],
    *,
    tuples: bool = False,
    unique: bool = False,
    counted: Select[Any] | None = None,
) -> Page:
    """Count ``query`` (up to the limit) and read the requested page of it: two queries.
    ``counted`` selects as many rows as ``query``, more cheaply (counted instead of it)."""
    page, per_page = page_args(params)
    total = count_upto(db, query if counted is None else counted)
    sliced = _slice(query, page, per_page, total)
    if tuples:
        rows: list[Any] = [tuple(r) for r in db.execute(sliced).all()]
    elif unique:
        rows = list(db.scalars(sliced).unique().all())
    else:
        rows = list(db.scalars(sliced).all())
    return _page(rows, page, per_page, total)


def fetch_rows(reads: Reader, params: Params, query: Query, *, counted: Select[Any] | None = None) -> Page:
    """``fetch`` for a select of columns, read without the ORM (``keycrew.db.reads``); the page
    first, as ``fetch_prepared`` does, and the count only if the page does not end the list."""
    page, per_page = page_args(params)
    offset = (page - 1) * per_page
    rows = reads.rows(query.limit(per_page + 1).offset(offset))
    last = _last_page(rows, page, per_page)
    if last is not None:
        return last
    total = count_upto(reads, query if counted is None else counted, sqlite=reads.dialect.name == "sqlite")
    return _page(rows if total is None else rows[:per_page], page, per_page, total)


def fetch_prepared(
    reads: Reader,
    params: Params,
    page_rows: Query,
    count: Query,
    values: Mapping[str, Any],
    *,
    whole: Query | None = None,
) -> Page:
    """``fetch_rows`` for statements prepared once per listing shape: ``page_rows`` reads
    ``:limit`` rows from ``:offset``, ``count`` counts them up to ``:count_limit`` (``whole``, if
    given, counts a whole table exactly); ``values`` are their other parameters.

    The page is read first, one row longer than asked: a page that ends the list tells its total
    (the rows before it and its own), and then nothing is counted. Most listings of a project's
    or a group's members and tokens fit in one page, and pay one statement instead of two."""
    page, per_page = page_args(params)
    offset = (page - 1) * per_page
    rows = reads.rows(page_rows, {**values, "limit": per_page + 1, "offset": offset})
    last = _last_page(rows, page, per_page)
    if last is not None:
        return last
    if whole is not None:
        counted = int(reads.scalar(whole) or 0)
    else:
        counted = int(reads.scalar(count, {**values, "count_limit": COUNT_LIMIT + 1}) or 0)
    total = None if counted > COUNT_LIMIT else counted
    if total is None:  # past the count limit the row more tells whether a next page exists
        return _page(rows, page, per_page, None)
    return _page(rows[:per_page], page, per_page, total)


def fetch_listing(reads: Reader, params: Params, found: Listing) -> Page:
    """The requested page of a listing built once per shape (``keycrew.db.listings``), counted
    up to the limit (a whole table on SQLite exactly, from its b-tree) unless the page ends it:
    one or two statements."""
    whole = found.whole if reads.dialect.name == "sqlite" else None
    return fetch_prepared(reads, params, found.page, found.count, found.values, whole=whole)


def _last_page(rows: list[Any], page: int, per_page: int) -> Page | None:
    """The page, if it ends the list (read with one row more than asked, it has none): its total
    is then the rows before it and its own. A page past the end tells nothing (None)."""
    offset = (page - 1) * per_page
    if len(rows) > per_page or (not rows and offset > 0):
        return None
    ends = offset + len(rows)
    return Page(rows, page, per_page, None if ends > COUNT_LIMIT else ends, False)


def _slice(query: S, page: int, per_page: int, total: int | None) -> S:
    # Past the count limit one row more tells whether a next page exists.
    extra = 1 if total is None else 0
    return query.limit(per_page + extra).offset((page - 1) * per_page)


def _page(rows: list[Any], page: int, per_page: int, total: int | None) -> Page:
    if total is None:
        more = len(rows) > per_page
        rows = rows[:per_page]
    else:
        more = page * per_page < total
    return Page(rows, page, per_page, total, more)


def _link_prefix(request: Request) -> str:
    """The request's URL with its parameters but page and per_page, ready for those two. A
    credential (?private_token=...) is never copied into a link: clients send their own again."""
    query = urlencode(
        [
            (k, v)
            for k, v in request.query_params.multi_items()
            if k not in ("page", "per_page") and not credential_parameter(k)
        ]
    )
    return f"{base_url(request)}{request.url.path}?{query}{'&' if query else ''}"


def respond(request: Request, items: list[Any], found: Page) -> JSON:
    """A list response with X-Total, X-Page, ... and Link (rel next/prev/first/last)."""
    page, per_page, total_pages = found.page, found.per_page, found.total_pages
    headers = {
        "X-Per-Page": str(per_page),
        "X-Page": str(page),
        "X-Next-Page": str(page + 1) if found.more else "",
        "X-Prev-Page": str(page - 1) if page > 1 else "",
    }
    if found.total is not None and total_pages is not None:
        headers["X-Total"] = str(found.total)
        headers["X-Total-Pages"] = str(total_pages)
    prefix = _link_prefix(request)
    links = []
    if page > 1:
        previous = page - 1 if total_pages is None else min(page - 1, total_pages)
        links.append(f'<{prefix}page={previous}&per_page={per_page}>; rel="prev"')
    if found.more:
        links.append(f'<{prefix}page={page + 1}&per_page={per_page}>; rel="next"')
    links.append(f'<{prefix}page=1&per_page={per_page}>; rel="first"')
    if total_pages is not None:
        links.append(f'<{prefix}page={total_pages}&per_page={per_page}>; rel="last"')
    headers["Link"] = ", ".join(links)
    return JSON(items, headers=headers)


def paginate_query(
    request: Request,
    db: Session,
    params: Params,
    query: Select[Any],
    render: Callable[[Any], Any],
) -> JSON:
    """Count, slice and render a SQLAlchemy select of ORM rows."""
    found = fetch(db, params, query, unique=True)
    return respond(request, [render(r) for r in found.rows], found)


def paginate_list(request: Request, params: Params, items: Sequence[T], render: Callable[[T], Any]) -> JSON:
    """Slice an in-memory list (for results already filtered in Python)."""
    page, per_page = page_args(params)
    chunk = list(items[(page - 1) * per_page : page * per_page])
    total = len(items) if len(items) <= COUNT_LIMIT else None
    found = Page(chunk, page, per_page, total, page * per_page < len(items))
    return respond(request, [render(i) for i in found.rows], found)


def paginate_page(
    request: Request,
    db: Session,
    params: Params,
    query: Select[Any],
    render_page: Callable[[list[Any]], list[Any]],
) -> JSON:
    """Like paginate_query, but renders a whole page at once (to batch look-ups for its rows)."""
    found = fetch(db, params, query, unique=True)
    return respond(request, render_page(found.rows), found)


# -- keyset pagination (GitLab's ``pagination=keyset``) ---------------------------------------------

KEYSET_UNAVAILABLE = "Keyset pagination is not yet available for this type of request"


def keyset_requested(params: Params) -> bool:
    """Whether the request asks for keyset pagination (``pagination=keyset``) instead of pages."""
    return params.text("pagination", blank_is_absent=True) == "keyset"


def keyset_unavailable() -> JSON:
    """GitLab's answer to keyset pagination on an order it cannot follow: 405 with its message."""
    return JSON({"message": KEYSET_UNAVAILABLE}, status_code=405)


def fetch_keyset(reads: Reader, params: Params, found: Listing) -> tuple[list[Any], bool]:
    """The first ``per_page`` rows of a listing whose cursor is already one of its filters
    (``id_after``/``id_before``), and whether more follow: one statement, nothing counted."""
    _page_number, per_page = page_args(params)
    rows = reads.rows(found.page, {**found.values, "limit": per_page + 1, "offset": 0})
    return rows[:per_page], len(rows) > per_page


def respond_keyset(request: Request, items: list[Any], cursor: Mapping[str, str] | None) -> JSON:
    """A keyset page: only a Link header with rel="next", carrying the request's parameters and the
    ``cursor`` that continues after the page's last row, when another page follows (no X-Total,
    X-Page or page numbers, as GitLab)."""
    headers: dict[str, str] = {}
    if cursor:
        kept = [
            (k, v)
            for k, v in request.query_params.multi_items()
            if k not in ("page", *cursor) and not credential_parameter(k)
        ]
        query = urlencode([*kept, *cursor.items()])
        headers["Link"] = f'<{base_url(request)}{request.url.path}?{query}>; rel="next"'
    return JSON(items, headers=headers)
