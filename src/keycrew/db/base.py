"""Declarative base with named constraints and portable column types."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import DateTime, Dialect, MetaData, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

# The largest value an Integer column holds on every backend (PostgreSQL's int4; GitLab's
# Gitlab::Database::MAX_INT_VALUE). An id above it names no row: look-ups treat it as unknown
# instead of sending a query the database refuses.
MAX_INT = 2**31 - 1
MAX_ID = MAX_INT


def record_id(value: int) -> int:
    """``value`` as a look-up key: an id outside the id columns' range becomes 0, which no record
    has, so that the caller answers exactly as for any unknown id (404, 401, an empty list)."""
    return value if 0 < value <= MAX_ID else 0


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """On SQLite, straight from the stored text (naive UTC) to an aware datetime in one step:
        lists read many timestamps."""
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        parse = dt.datetime.fromisoformat

        def process(value: str | None) -> dt.datetime | None:
            # Parsing the offset costs a third of setting tzinfo afterwards.
            return None if value is None else parse(value + "+00:00")

        return process


class JSONList(TypeDecorator[list[Any]]):
    """A short list kept as JSON text (scopes, IPs); portable across SQLite and PostgreSQL."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(list(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> list[Any] | None:
        return None if value is None else list(orjson.loads(value))

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """Straight from the stored text with orjson: a token list reads twenty of these."""
        loads = orjson.loads

        def process(value: str | None) -> list[Any] | None:
            return None if value is None else list(loads(value))

        return process


class JSONDict(TypeDecorator[dict[str, Any]]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: dict[str, Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, sort_keys=True, default=str)

    def process_result_value(self, value: str | None, dialect: Dialect) -> dict[str, Any] | None:
        return None if value is None else dict(json.loads(value))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
