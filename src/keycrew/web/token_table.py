"""Web UI: the one token table every token page shows (personal, project and group access tokens,
deploy tokens, service accounts' tokens, the Admin area's Credentials): its query string (search,
filters, sort, page), its rows (last used as relative time with the client IPs, expiry in days
with its badge) and its pages. Rendered by ``templates/tokens/_table.html``.

A holder (a person, a project, a group, a service account) has few tokens: its tables are
filtered, sorted and paged here, over what the page read. The Credentials page pages in SQL
(``keycrew.tokens.inventory``) and only turns its rows into ``TokenRow``s here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from keycrew.context import Ctx
from keycrew.db.text import valid_text
from keycrew.tokens.inventory import KINDS, SORT_COLUMNS, CredentialFilters, recent_ips
from keycrew.tokens.succession import successors
from keycrew.web.templating import moment

PER_PAGE = 20
SOON_DAYS = 7
EXPIRING_CHOICES = (7, 30, 60)
SORTS: dict[str, str] = {"created": "Created", "name": "Name", "last_used": "Last used", "expires": "Expires"}
assert tuple(sorted(SORTS)) == tuple(sorted(SORT_COLUMNS))
STATES: dict[str, str] = {"": "Active and inactive", "active": "Active", "inactive": "Inactive"}
MAX_TEXT = 255


# -- the query string -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableQuery:
    """What the person asked the tables for, from the query string (anything invalid: the default)."""

    search: str = ""
    state: str = ""
    scope: str = ""
    expiring: int | None = None
    sort: str = "created"
    direction: str = "desc"
    page: int = 1
    inactive_page: int = 1
    owner: str = ""  # the Credentials page only
    kind: str = ""  # the Credentials page only

    @property
    def descending(self) -> bool:
        return self.direction == "desc"

    @property
    def filtered(self) -> bool:
        """Whether anything narrows the tables (the state aside: it picks the tables shown)."""
        return bool(self.search or self.scope or self.expiring or self.owner or self.kind)

    def params(self, **changes: Any) -> dict[str, str]:
        """The query string of this query with ``changes``, without the defaults."""
        query = replace(self, **changes)
        pairs = {
            "search": query.search,
            "owner": query.owner,
            "kind": query.kind,
            "state": query.state,
            "scope": query.scope,
            "expiring": "" if query.expiring is None else str(query.expiring),
            "sort": "" if query.sort == "created" else query.sort,
            "direction": "" if query.direction == "desc" else query.direction,
            "page": "" if query.page <= 1 else str(query.page),
            "inactive_page": "" if query.inactive_page <= 1 else str(query.inactive_page),
        }
        return {key: value for key, value in pairs.items() if value}

    def url(self, base: str, **changes: Any) -> str:
        kept = self.params(**changes)
        return f"{base}?{urlencode(kept)}" if kept else base

    def sort_url(self, base: str, column: str) -> str:
        """The link of a column's header: sort by it (again: the other way), from the first page."""
        if self.sort == column:
            direction = "asc" if self.descending else "desc"
        else:
            direction = "asc" if column == "name" else "desc"
        return self.url(base, sort=column, direction=direction, page=1, inactive_page=1)

    def aria_sort(self, column: str) -> str:
        if self.sort != column:
            return "none"
        return "descending" if self.descending else "ascending"

    def describe(self) -> str:
        """The filters in words, for an empty table: "named like “ci”, with the scope api"."""
        said: list[str] = []
        if self.search:
            said.append(f"named like “{self.search}”")
        if self.owner:
            said.append(f"owned by or for “{self.owner}”")
        if self.kind:
            said.append(f"of the kind “{KINDS[self.kind]}”")
        if self.scope:
            said.append(f"with the scope {self.scope}")
        if self.expiring:
            said.append(f"expiring within {self.expiring} days")
        return ", ".join(said)

    def credential_filters(self) -> CredentialFilters:
        return CredentialFilters(
            search=self.search,
            owner=self.owner,
            kind=self.kind,
            state=self.state,
            scope=self.scope,
            expiring_within=self.expiring,
            sort=self.sort,
            descending=self.descending,
        )


def _text(params: Mapping[str, str], name: str) -> str:
    value = (params.get(name) or "").strip()
    return value if len(value) <= MAX_TEXT and valid_text(value) else ""


def _number(params: Mapping[str, str], name: str) -> int:
    value = params.get(name) or ""
    return max(1, int(value)) if value.isascii() and value.isdigit() and len(value) <= 6 else 1


def parse_query(params: Mapping[str, str], *, scopes: Iterable[str] = (), kinds: bool = False) -> TableQuery:
    """The tables' query from the query string; ``scopes`` are those the scope filter offers."""
    expiring = params.get("expiring") or ""
    state = params.get("state") or ""
    scope = params.get("scope") or ""
    sort = params.get("sort") or ""
    kind = params.get("kind") or ""
    return TableQuery(
        search=_text(params, "search"),
        state=state if state in STATES else "",
        scope=scope if scope in set(scopes) else "",
        expiring=int(expiring) if expiring in {str(days) for days in EXPIRING_CHOICES} else None,
        sort=sort if sort in SORTS else "created",
        direction="asc" if params.get("direction") == "asc" else "desc",
        page=_number(params, "page"),
        inactive_page=_number(params, "inactive_page"),
        owner=_text(params, "owner") if kinds else "",
        kind=kind if kinds and kind in KINDS else "",
    )


# -- the rows -------------------------------------------------------------------------------------


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}{'' if count == 1 else 's'}"


def relative(at: dt.datetime | None, now: dt.datetime) -> str:
    """``at`` as people say it: "Never", "just now", "3 hours ago", "2 months ago"."""
    if at is None:
        return "Never"
    seconds = max(0, int((now - at).total_seconds()))
    if seconds < 60:
        return "just now"
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600)):
        if seconds >= size:
            return f"{_plural(seconds // size, unit)} ago"
    return f"{_plural(seconds // 60, 'minute')} ago"


def days_word(days: int) -> str:
    """An expiry ``days`` from today: "in 3 days", "today", "2 days ago"."""
    if days == 0:
        return "today"
    return f"in {_plural(days, 'day')}" if days > 0 else f"{_plural(-days, 'day')} ago"


@dataclass(frozen=True)
class TokenRow:
    """A token as its table shows it. ``token`` is the token (a personal access token, a deploy
    token, or a view of one); ``extra`` what a page adds (the Credentials page: the owner)."""

    token: Any
    last_used: str
    last_used_exact: str
    ips: tuple[str, ...]
    expires_in: str | None
    badge: str | None  # "Expires soon" | "Expired"
    active: bool
    role: str | None = None
    extra: Any = None


def token_row(
    token: Any,
    *,
    today: dt.date,
    now: dt.datetime,
    ips: Sequence[str] = (),
    role: str | None = None,
    extra: Any = None,
) -> TokenRow:
    expires_in: str | None = None
    badge: str | None = None
    if token.expires_at is not None:
        days = (token.expires_at - today).days
        expires_in = days_word(days)
        if days <= 0:
            badge = "Expired"
        elif days <= SOON_DAYS and not token.revoked:
            badge = "Expires soon"
    return TokenRow(
        token=token,
        last_used=relative(token.last_used_at, now),
        last_used_exact=moment(token.last_used_at),
        ips=tuple(ips),
        expires_in=expires_in,
        badge=badge,
        active=token.is_active(today),
        role=role,
        extra=extra,
    )


# -- the tables -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenTable:
    """One table of tokens and its page: ``heading_id`` names the heading that says ``label`` and
    the total; ``label`` is the table's accessible name; ``empty`` what an empty table says."""

    heading_id: str
    label: str
    rows: list[TokenRow]
    total: int
    number: int
    pages: int
    previous: str | None
    next: str | None
    empty: str
    shown: bool = True
    note: str | None = None
    actions: bool = True
    columns: frozenset[str] = field(default_factory=frozenset)

    @property
    def first(self) -> int:
        return (self.number - 1) * PER_PAGE + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.number - 1) * PER_PAGE + len(self.rows)

    def has(self, column: str) -> bool:
        return column in self.columns

    @property
    def width(self) -> int:
        """How many columns the table has (for the row that says it is empty)."""
        optional = sum(column in self.columns for column in ("owner", "role", "username"))
        return 6 + optional + (1 if self.actions else 0)


@dataclass(frozen=True)
class TableSpec:
    """What a page says of one of its tables (the words; the rows come from the page's tokens)."""

    heading_id: str
    label: str
    empty: str  # when the holder has no such token at all
    note: str | None = None
    actions: bool = True
    columns: tuple[str, ...] = ()  # any of "role", "username", "owner", "status"


def _matches(token: Any, query: TableQuery, today: dt.date) -> bool:
    if query.search and query.search.lower() not in token.name.lower():
        return False
    if query.scope and query.scope not in token.scopes:
        return False
    if query.expiring is not None:
        horizon = today + dt.timedelta(days=query.expiring)
        if token.expires_at is None or not today < token.expires_at <= horizon:
            return False
    return True


_NEVER_USED = dt.datetime.min.replace(tzinfo=dt.UTC)


def _sort_key(sort: str) -> Callable[[Any], Any]:
    if sort == "name":
        return lambda t: (t.name.lower(), t.id)
    if sort == "last_used":
        return lambda t: (t.last_used_at or _NEVER_USED, t.id)
    if sort == "expires":
        return lambda t: (t.expires_at or dt.date.max, t.id)
    return lambda t: (t.created_at, t.id)


def _window(total: int, number: int) -> tuple[int, int]:
    pages = max(1, math.ceil(total / PER_PAGE))
    return min(number, pages), pages


def _empty(spec: TableSpec, query: TableQuery, everything: int) -> str:
    if everything and query.filtered:
        return f"No {spec.label[0].lower()}{spec.label[1:]} {query.describe()}."
    return spec.empty


@dataclass(frozen=True)
class HolderTables:
    active: TokenTable
    inactive: TokenTable


def holder_tables(
    ctx: Ctx,
    query: TableQuery,
    base: str,
    *,
    active: tuple[TableSpec, Sequence[Any]],
    inactive: tuple[TableSpec, Sequence[Any]],
    role_of: Callable[[Any], str | None] | None = None,
    with_ips: bool = True,
) -> HolderTables:
    """A holder's two tables (its active tokens, its inactive ones), filtered, sorted and paged
    by ``query``; the client IPs of the tokens shown read in one query."""
    today, now = ctx.today(), ctx.now()
    picked: list[tuple[TableSpec, list[Any], int, int, str, bool]] = []
    for (spec, tokens), number, key, state in (
        (active, query.page, "page", "active"),
        (inactive, query.inactive_page, "inactive_page", "inactive"),
    ):
        matching = [t for t in tokens if _matches(t, query, today)]
        matching.sort(key=_sort_key(query.sort), reverse=query.descending)
        number, pages = _window(len(matching), number)
        shown = query.state in ("", state)
        picked.append((spec, matching, number, pages, key, shown))
    ids = [t.id for _s, m, n, _p, _k, shown in picked if shown for t in m[(n - 1) * PER_PAGE : n * PER_PAGE]]
    ips = recent_ips(ctx.db, ids, today) if with_ips else {}
    tables: list[TokenTable] = []
    for (spec, tokens), (_spec, matching, number, pages, key, shown) in zip(
        (active, inactive), picked, strict=True
    ):
        page_tokens = matching[(number - 1) * PER_PAGE : number * PER_PAGE] if shown else []
        tables.append(
            TokenTable(
                heading_id=spec.heading_id,
                label=spec.label,
                rows=[
                    token_row(
                        t,
                        today=today,
                        now=now,
                        ips=ips.get(t.id, ()),
                        role=role_of(t) if role_of else None,
                    )
                    for t in page_tokens
                ],
                total=len(matching),
                number=number,
                pages=pages,
                previous=query.url(base, **{key: number - 1}) if number > 1 else None,
                next=query.url(base, **{key: number + 1}) if number < pages else None,
                empty=_empty(spec, query, len(tokens)),
                shown=shown,
                note=spec.note,
                actions=spec.actions,
                columns=frozenset(spec.columns),
            )
        )
    return HolderTables(*tables)


def paged_table(
    spec: TableSpec,
    query: TableQuery,
    base: str,
    *,
    rows: list[TokenRow],
    total: int,
    number: int,
    everything: bool,
) -> TokenTable:
    """A table paged elsewhere (in SQL): this page's ``rows`` of ``total``."""
    _number, pages = _window(total, number)
    return TokenTable(
        heading_id=spec.heading_id,
        label=spec.label,
        rows=rows,
        total=total,
        number=number,
        pages=pages,
        previous=query.url(base, page=number - 1) if number > 1 else None,
        next=query.url(base, page=number + 1) if number < pages else None,
        empty=_empty(spec, query, 1 if everything else 0),
        note=spec.note,
        actions=spec.actions,
        columns=frozenset(spec.columns),
    )


def filter_scopes(*groups: Iterable[Any]) -> list[str]:
    """The scopes a page's scope filter offers: those of its tokens (each group a list of tokens)."""
    return sorted({scope for tokens in groups for token in tokens for scope in token.scopes})


def holder_context(
    ctx: Ctx,
    params: Mapping[str, str],
    base: str,
    *,
    active: tuple[TableSpec, Sequence[Any]],
    inactive: tuple[TableSpec, Sequence[Any]],
    role_of: Callable[[Any], str | None] | None = None,
) -> dict[str, Any]:
    """What a holder's page of personal access tokens renders its tables with: ``tables``
    (``holder_tables``), ``table_query``, ``table_scopes`` (the filter's) and ``successors`` (of
    the inactive tokens shown, for their status)."""
    scopes = filter_scopes(active[1], inactive[1])
    query = parse_query(params, scopes=scopes)
    tables = holder_tables(ctx, query, base, active=active, inactive=inactive, role_of=role_of)
    return {
        "tables": tables,
        "table_query": query,
        "table_scopes": scopes,
        "successors": successors(ctx, [row.token for row in tables.inactive.rows]),
    }
