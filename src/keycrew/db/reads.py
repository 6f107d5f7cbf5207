"""Reads that skip the ORM: prebuilt Core statements run straight on the driver.

A request that only reads pays most of its time in SQLAlchemy's execution machinery, not in the
database: loading a project through the ORM costs some 40 times the query itself (see
docs/benchmarks.md). A ``Reads`` runs a statement built once at import time (a ``select`` of
columns with ``bindparam`` placeholders) on a DBAPI connection: the statement is compiled once per
dialect, its parameters are put in the driver's order through the types' own bind processors, and
the columns come back through the types' own result processors (datetimes, booleans), as rows with
attribute access. The SQL is SQLAlchemy's, so it is the same on SQLite and PostgreSQL; psycopg
prepares a statement on the server once it has run a few times.

Two kinds:

- ``PoolReads``: a pooled connection of its own, checked out at the first statement and given
  back when the request's unit of work ends, each statement in its own implicit transaction
  (autocommit): every statement sees what was committed when it began, as PostgreSQL's default
  READ COMMITTED gives anyway, and a read costs no BEGIN or COMMIT (one round trip, not three, on
  PostgreSQL). For GET and HEAD requests, which write nothing.
- ``SessionReads``: the session's connection and transaction, after a flush, so a use case that
  writes sees its own changes. For everything else (writes, the CLI, tests).

Statements run here are reported to the engine's ``before_cursor_execute`` listeners, so metrics
and query-count tests see them like any other.

This leans on what SQLAlchemy's own execution uses underneath its public API (a statement's cache
key, the types' cached processors), hence the pin to SQLAlchemy 2.1 in pyproject.toml;
tests/functional/test_reads.py compares the results with SQLAlchemy's own on both databases.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

Params = Mapping[str, Any]
Processor = Callable[[Any], Any] | None
# A select of any columns.
Query = Select[*tuple[Any, ...]]


class Compiled:
    """One statement compiled for one dialect: its SQL, its parameter order and processors."""

    __slots__ = (
        "_shapes",
        "binds",
        "compiled",
        "defaults",
        "expanding",
        "expanding_names",
        "names",
        "positional",
        "processed",
        "results",
        "row",
        "sql",
    )

    def __init__(self, statement: Query, dialect: Dialect, cache_key: Any = None) -> None:
        compiled = statement.compile(dialect=dialect, cache_key=cache_key)
        self.compiled = compiled
        self.positional = bool(compiled.positional)
        # Expanding (IN lists) and post-compile (rendered) parameters change the SQL per call.
        self.expanding = bool(compiled.post_compile_params or compiled.literal_execute_params)
        self.expanding_names = tuple(compiled.bind_names[b] for b in compiled.post_compile_params)
        if compiled.literal_execute_params:
            raise ValueError("a statement read here binds its values; no literal_execute parameters")
        self._shapes: dict[tuple[int, ...], tuple[str, tuple[str, ...], dict[str, list[str]]]] = {}
        self.sql = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values built into the statement (a LIMIT, a literal compared with a column).
        self.defaults = {key: value for key, value in compiled.params.items() if value is not None}
        self.binds: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            process = bind.type._cached_bind_processor(dialect)
            if process is not None:
                self.binds[name] = process
        columns = list(statement.selected_columns)
        self.results: list[Processor] = [
            column.type._cached_result_processor(dialect, None) for column in columns
        ]
        self.processed = [(i, p) for i, p in enumerate(self.results) if p is not None]
        self.row: Any = namedtuple("Row", [column.key for column in columns], rename=True)  # type: ignore[misc]

    def arguments(self, merged: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL and the driver's arguments for the values of every parameter."""
        sql, names = self.sql, self.names
        if self.expanding:
            sql, names, merged = self._expand(merged)
        binds = self.binds
        if binds:
            merged = {key: (binds[key](v) if key in binds else v) for key, v in merged.items()}
        if self.positional:
            return sql, tuple(merged[name] for name in names)
        return sql, merged

    def _expand(self, params: Mapping[str, Any]) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        """An IN list's SQL has one placeholder per item: compiled once per list length."""
        lengths = tuple(len(params[name]) for name in self.expanding_names)
        shape = self._shapes.get(lengths)
        if shape is None:
            state = self.compiled.construct_expanded_state(params, escape_names=False)
            shape = (state.statement, tuple(state.positiontup or ()), dict(state.parameter_expansion))
            for name, expanded in shape[2].items():  # each item goes through its list's processor
                if name in self.binds:
                    for key in expanded:
                        self.binds.setdefault(key, self.binds[name])
            self._shapes[lengths] = shape
        sql, names, expansion = shape
        values = {key: value for key, value in params.items() if key not in expansion}
        for name, expanded in expansion.items():
            values.update(zip(expanded, params[name], strict=True))
        return sql, names, values

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[Any]:
        make = self.row._make
        processed = self.processed
        if not processed:
            return [make(r) for r in raw]
        rows = []
        for r in raw:
            values = list(r)
            for index, process in processed:
                value = values[index]
                if value is not None:
                    values[index] = process(value)
            rows.append(make(values))
        return rows


# Statements built once (module level) and run many times: compiled once per dialect, found by
# identity. They are kept alive here, so an id is never reused by another statement.
_PREPARED: dict[int, Query] = {}

S = TypeVar("S", bound=Query)


def prepared(statement: S) -> S:
    """Mark a statement built once at import time (its parameters as ``bindparam``): reads find
    its compiled form by identity, the cheapest way. Any other statement is found by its cache key."""
    _PREPARED[id(statement)] = statement
    return statement


class Statements:
    """Compiled statements of one dialect: prepared ones by identity, others by SQLAlchemy's cache
    key (the statement's structure; its literal values are extracted as parameters), the most
    recently used ``DYNAMIC_LIMIT`` of them."""

    DYNAMIC_LIMIT = 500

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._prepared: dict[int, Compiled] = {}
        self._dynamic: OrderedDict[Any, Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def bind(self, statement: Query, params: Params | None) -> tuple[Compiled, Mapping[str, Any]]:
        """The compiled statement and the value of each of its parameters."""
        found = self._prepared.get(id(statement))
        if found is not None:
            return found, {**found.defaults, **params} if params else found.defaults
        if _PREPARED.get(id(statement)) is statement:
            compiled = self._prepared[id(statement)] = Compiled(statement, self.dialect)
            return compiled, {**compiled.defaults, **params} if params else compiled.defaults
        key = statement._generate_cache_key()
        if key is None:  # a construct that cannot be cached: compiled for this one use
            compiled = Compiled(statement, self.dialect)
            return compiled, compiled.compiled.construct_params(dict(params or {}), escape_names=False)
        with self._lock:
            compiled_or_none = self._dynamic.get(key.key)
            if compiled_or_none is not None:
                self._dynamic.move_to_end(key.key)
        if compiled_or_none is None:
            # As SQLAlchemy's own cache does: compiled under its key, which lines its
            # parameters up with those of the next statement of the same structure.
            compiled_or_none = Compiled(statement, self.dialect, key)
            with self._lock:
                self._dynamic[key.key] = compiled_or_none
                if len(self._dynamic) > self.DYNAMIC_LIMIT:
                    self._dynamic.popitem(last=False)
        values = compiled_or_none.compiled.construct_params(
            dict(params or {}), extracted_parameters=key.bindparams, escape_names=False
        )
        return compiled_or_none, values


_STATEMENTS: dict[tuple[str, str, str], Statements] = {}


def statements_for(dialect: Dialect) -> Statements:
    """The compiled statements of a dialect and driver (their SQL and parameter style)."""
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = Statements(dialect)
    return found


class Reader(Protocol):
    """What read models and access rules read through: a ``PoolReads`` or a ``SessionReads``."""

    @property
    def dialect(self) -> Dialect: ...

    def rows(self, statement: Query, params: Params | None = None) -> list[Any]: ...

    def first(self, statement: Query, params: Params | None = None) -> Any | None: ...

    def scalar(self, statement: Query, params: Params | None = None) -> Any: ...

    def scalars(self, statement: Query, params: Params | None = None) -> list[Any]: ...


class _Reads:
    _engine: Engine
    _statements: Statements

    @property
    def dialect(self) -> Dialect:
        return self._engine.dialect

    def _cursor(self) -> Any:
        raise NotImplementedError

    def rows(self, statement: Query, params: Params | None = None) -> list[Any]:
        cursor = self._cursor()
        compiled, values = self._statements.bind(statement, params)
        sql, arguments = compiled.arguments(values)
        dispatch = self._engine.dispatch.before_cursor_execute
        if dispatch:
            dispatch(None, cursor, sql, arguments, None, False)
        try:
            cursor.execute(sql, arguments)
            raw = cursor.fetchall()
        finally:
            cursor.close()
        return compiled.rows(raw)

    def first(self, statement: Query, params: Params | None = None) -> Any | None:
        found = self.rows(statement, params)
        return found[0] if found else None

    def scalar(self, statement: Query, params: Params | None = None) -> Any:
        found = self.rows(statement, params)
        return found[0][0] if found else None

    def scalars(self, statement: Query, params: Params | None = None) -> list[Any]:
        return [row[0] for row in self.rows(statement, params)]


class PoolReads(_Reads):
    """A read-only unit of work on a connection of its own, checked out at the first statement."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._statements = statements_for(engine.dialect)
        self._pooled: Any = None
        self._sqlite = engine.dialect.name == "sqlite"

    def _cursor(self) -> Any:
        if self._pooled is None:
            pooled = self._engine.raw_connection()
            if not self._sqlite:  # pysqlite runs statements in autocommit already (engine.py)
                try:
                    driver: Any = pooled.dbapi_connection
                    driver.autocommit = True
                except BaseException:
                    pooled.close()
                    raise
            self._pooled = pooled
        return self._pooled.cursor()

    def close(self) -> None:
        """Give the connection back to the pool (nothing was written); one the server cut meanwhile
        is dropped from the pool instead, without hiding the request's own error."""
        pooled, self._pooled = self._pooled, None
        if pooled is None:
            return
        if not self._sqlite:
            try:
                driver: Any = pooled.dbapi_connection
                if driver.closed or driver.broken:
                    raise ConnectionError("the server cut the connection")
                driver.autocommit = False
            except Exception:
                pooled.invalidate()
        pooled.close()


class HeldReads(_Reads):
    """``PoolReads`` for reads that run one after another on one thread, SQLite's on the event
    loop: one connection kept for the thread, so a request pays no pool checkout and check-in
    (a sixth of a single read). SQLite's connections run each statement in autocommit
    (engine.py), so nothing carries over from one request to the next. ``reads()`` hands it out
    on its own thread only; any other thread gets a ``PoolReads``."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError("HeldReads keeps a SQLite connection")
        self._engine = engine
        self._statements = statements_for(engine.dialect)
        self._thread = threading.get_ident()
        self._held: Any = None

    def reads(self) -> HeldReads | PoolReads:
        return self if threading.get_ident() == self._thread else PoolReads(self._engine)

    def _cursor(self) -> Any:
        if self._held is None:
            self._held = self._engine.raw_connection()
        return self._held.cursor()

    def close(self) -> None:
        """Kept for the next request: a unit of work's end gives nothing back."""

    def release(self) -> None:
        """Give the connection back to the pool (the process is stopping)."""
        held, self._held = self._held, None
        if held is not None:
            held.close()


class SessionReads(_Reads):
    """Reads on a session's own connection and transaction, after its pending changes are flushed."""

    def __init__(self, session: Session | Callable[[], Session]) -> None:
        self._session = session

    @property
    def dialect(self) -> Dialect:
        return self._get_session().get_bind().dialect

    def _get_session(self) -> Session:
        return self._session if isinstance(self._session, Session) else self._session()

    def _cursor(self) -> Any:
        session = self._get_session()
        if session.new or session.dirty or session.deleted:
            session.flush()
        connection = session.connection()
        self._engine = connection.engine
        self._statements = statements_for(self._engine.dialect)
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        return dbapi.cursor()
