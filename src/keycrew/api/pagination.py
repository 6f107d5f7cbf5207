"""Offset pagination with GitLab's headers and a Link header that names next only when it exists."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from keycrew.api.params import Params
from keycrew.errors import BadParameter

T = TypeVar("T")
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
# Keeps OFFSET within a 64-bit integer on every backend; pages past any real data are empty anyway.
MAX_PAGE = 2**31


def page_args(params: Params) -> tuple[int, int]:
    page = params.integer("page") or 1
    per_page = params.integer("per_page") or DEFAULT_PER_PAGE
    page = min(max(page, 1), MAX_PAGE)
    if per_page < 1:
        raise BadParameter("per_page does not have a valid value")
    return page, min(per_page, MAX_PER_PAGE)


def _link(request: Request, page: int, per_page: int) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page", "per_page")]
    query += [("page", str(page)), ("per_page", str(per_page))]
    return f"{str(request.base_url).rstrip('/')}{request.url.path}?{urlencode(query)}"


def respond(request: Request, items: list[Any], total: int, page: int, per_page: int) -> JSONResponse:
    """A list response with X-Total, X-Page, ... and Link (rel next/prev/first/last)."""
    total_pages = max(1, math.ceil(total / per_page))
    headers = {
        "X-Total": str(total),
        "X-Total-Pages": str(total_pages),
        "X-Per-Page": str(per_page),
        "X-Page": str(page),
        "X-Next-Page": str(page + 1) if page < total_pages else "",
        "X-Prev-Page": str(page - 1) if page > 1 else "",
    }
    links = []
    if page > 1:
        links.append(f'<{_link(request, min(page - 1, total_pages), per_page)}>; rel="prev"')
    if page < total_pages:
        links.append(f'<{_link(request, page + 1, per_page)}>; rel="next"')
    links.append(f'<{_link(request, 1, per_page)}>; rel="first"')
    links.append(f'<{_link(request, total_pages, per_page)}>; rel="last"')
    headers["Link"] = ", ".join(links)
    return JSONResponse(items, headers=headers)


def paginate_query(
    request: Request,
    db: Session,
    params: Params,
    query: Select[Any],
    render: Callable[[Any], Any],
) -> JSONResponse:
    """Count, slice and render a SQLAlchemy select of ORM rows."""
    page, per_page = page_args(params)
    total = db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = db.scalars(query.limit(per_page).offset((page - 1) * per_page)).unique().all()
    return respond(request, [render(r) for r in rows], int(total), page, per_page)


def paginate_list(
    request: Request, params: Params, items: Sequence[T], render: Callable[[T], Any]
) -> JSONResponse:
    """Slice an in-memory list (for results already filtered in Python)."""
    page, per_page = page_args(params)
    chunk = items[(page - 1) * per_page : page * per_page]
    return respond(request, [render(i) for i in chunk], len(items), page, per_page)


def paginate_page(
    request: Request,
    db: Session,
    params: Params,
    query: Select[Any],
    render_page: Callable[[list[Any]], list[Any]],
) -> JSONResponse:
    """Like paginate_query, but renders a whole page at once (to batch look-ups for its rows)."""
    page, per_page = page_args(params)
    total = db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = list(db.scalars(query.limit(per_page).offset((page - 1) * per_page)).unique().all())
    return respond(request, render_page(rows), int(total), page, per_page)
