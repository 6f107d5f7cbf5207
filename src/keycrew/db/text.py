"""Portable text matching for queries (LIKE with escaping) on SQLite and PostgreSQL alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func


def escape_like(value: str) -> str:
    """``value`` as a literal inside a LIKE pattern (escape character backslash)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(column: Any, text: str) -> ColumnElement[bool]:
    """A case-insensitive substring match that behaves alike on SQLite and PostgreSQL."""
    return func.lower(column).like(f"%{escape_like(text.lower())}%", escape="\\")
