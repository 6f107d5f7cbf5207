"""Portable text matching for queries (LIKE with escaping) on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func


def escape_like(value: str) -> str:
    """``value`` as a literal inside a LIKE pattern (escape character backslash)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(text: str) -> str:
    """The LIKE pattern of ``contains``: ``text`` anywhere, in lower case, escaped. A statement
    built once per shape takes it as a parameter of ``lower_like``."""
    return f"%{escape_like(text.lower())}%"


def lower_like(column: Any, pattern: Any) -> ColumnElement[bool]:
    """``column`` in lower case LIKE ``pattern`` (a ``contains_pattern``, or a parameter)."""
    return func.lower(column).like(pattern, escape="\\")


def contains(column: Any, text: str) -> ColumnElement[bool]:
    """A case-insensitive substring match that behaves alike on SQLite and PostgreSQL."""
    return lower_like(column, contains_pattern(text))


def valid_text(value: str) -> bool:
    """Text that can be stored: no NUL byte (PostgreSQL refuses them) and no lone surrogate
    (which no encoding can write). Every adapter checks its input with it once, at the edge."""
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
