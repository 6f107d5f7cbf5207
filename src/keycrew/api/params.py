"""Request parameters as Grape sees them: query string and JSON/form body merged, loosely typed.

Real clients send numbers as strings (the gitlab CLI), booleans as True/true, scopes as an array
or a comma string, list filters as repeated ``key[]=``, and "" for "not given" (deploy tokens).

Ids (in the path or in a parameter) go through ``record_id``: one beyond the id columns' range
names nothing, like any unknown id, rather than reaching the database (SQLite overflows past 64
bits, PostgreSQL's int4 columns past 31).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import Request
from starlette.datastructures import QueryParams

from keycrew.db.base import record_id
from keycrew.errors import BadParameter, MissingParameter

_TRUE = {"true", "1", "yes", "t", "on"}
_FALSE = {"false", "0", "no", "f", "off"}


class BadRequestBody(Exception):
    """The body is not valid JSON (or not an object)."""


def _integer_text(text: str) -> bool:
    digits = text[1:] if text.startswith("-") else text
    return digits.isascii() and digits.isdigit()


def path_id(raw: str, name: str) -> int:
    """A numeric path segment: 400 "<name> is invalid" unless it is all digits (a 400, not a 404, as
    for Grape's ``type: Integer``); out of range it names nothing (``record_id``)."""
    if not (raw.isascii() and raw.isdigit()):
        raise BadParameter(f"{name} is invalid")
    return record_id(int(raw))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class Params:
    def __init__(self, query: QueryParams, body: dict[str, Any]) -> None:
        merged: dict[str, Any] = {}
        for key in query:
            values = query.getlist(key)
            if key.endswith("[]"):
                merged[key[:-2]] = values
            else:
                merged[key] = values[-1]
        # The body wins over the query string, as in Grape.
        merged.update(body)
        for key, value in merged.items():
            if _has_nul(key) or _has_nul(value):
                # No field accepts a NUL byte, and PostgreSQL refuses them in text columns.
                raise BadParameter(f"{key.replace(chr(0), '')} is invalid")
        self._data = merged

    # -- presence ---------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self._data and self._data[key] is not None

    def raw(self, key: str) -> Any:
        return self._data.get(key)

    def keys(self) -> set[str]:
        return set(self._data)

    def _get(self, key: str, required: bool, blank_is_absent: bool = False) -> Any:
        value = self._data.get(key)
        if value is None or (blank_is_absent and value == ""):
            if required:
                raise MissingParameter(f"{key} is missing")
            return None
        return value

    # -- typed getters ----------------------------------------------------------------------
    def text(self, key: str, *, required: bool = False, blank_is_absent: bool = False) -> str | None:
        value = self._get(key, required, blank_is_absent)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadParameter(f"{key} is invalid")
        text = str(value)
        if required and not text.strip():
            raise BadParameter(f"{key} is empty")
        return text

    def req_text(self, key: str) -> str:
        value = self.text(key, required=True)
        assert value is not None
        return value

    def integer(self, key: str, *, required: bool = False) -> int | None:
        value = self._get(key, required, blank_is_absent=True)
        if value is None:
            return None
        if isinstance(value, bool):
            raise BadParameter(f"{key} is invalid")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _integer_text(value.strip()):
            return int(value.strip())
        raise BadParameter(f"{key} is invalid")

    def req_integer(self, key: str) -> int:
        value = self.integer(key, required=True)
        assert value is not None
        return value

    def id(self, key: str) -> int | None:
        """An id parameter (``user_id``): out of range it names nothing (``record_id``)."""
        value = self.integer(key)
        return None if value is None else record_id(value)

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        value = self._data.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        if isinstance(value, str) and value.strip().lower() in _TRUE:
            return True
        if isinstance(value, str) and value.strip().lower() in _FALSE:
            return False
        raise BadParameter(f"{key} is invalid")

    def flag(self, key: str) -> bool:
        return self.boolean(key, False) is True

    def date(self, key: str, *, required: bool = False) -> dt.date | None:
        value = self._get(key, required, blank_is_absent=True)
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadParameter(f"{key} is invalid")
        text = value.strip()
        try:
            if len(text) > 10:
                return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date()
            return dt.date.fromisoformat(text)
        except ValueError:
            raise BadParameter(f"{key} is invalid") from None

    def datetime(self, key: str) -> dt.datetime | None:
        value = self._get(key, False, blank_is_absent=True)
        if value is None:
            return None
        if not isinstance(value, str):
            raise BadParameter(f"{key} is invalid")
        text = value.strip().replace("Z", "+00:00")
        try:
            parsed = dt.datetime.fromisoformat(text) if "T" in text or " " in text else None
            if parsed is None:
                parsed = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
        except ValueError:
            raise BadParameter(f"{key} is invalid") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)

    def strings(self, key: str, *, required: bool = False) -> list[str] | None:
        """An array, or a comma-separated string (scopes, user ids)."""
        value = self._get(key, required, blank_is_absent=not required)
        if value is None:
            return None
        if isinstance(value, str):
            items = [part.strip() for part in value.split(",")]
        elif isinstance(value, list) and all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in value
        ):
            items = [str(v).strip() for v in value]
        else:
            raise BadParameter(f"{key} is invalid")
        items = [i for i in items if i]
        if required and not items:
            raise BadParameter(f"{key} is empty")
        return items

    def integers(self, key: str) -> list[int] | None:
        items = self.strings(key)
        if items is None:
            return None
        if not all(_integer_text(i) for i in items):
            raise BadParameter(f"{key} is invalid")
        return [int(i) for i in items]

    def ids(self, key: str) -> list[int] | None:
        """A list of ids (``user_ids[]``, ``skip_groups[]``): out-of-range ones name nothing."""
        values = self.integers(key)
        return None if values is None else [record_id(v) for v in values]

    def choice(
        self,
        key: str,
        choices: tuple[str, ...] | list[str],
        *,
        default: str | None = None,
        required: bool = False,
    ) -> str | None:
        value = self.text(key, required=required, blank_is_absent=True)
        if value is None:
            return default
        if value not in choices:
            raise BadParameter(f"{key} does not have a valid value")
        return value


async def read_params(request: Request) -> Params:
    body: dict[str, Any] = {}
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await request.body()
        if raw.strip():
            if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.form()
                for key in form:
                    values = [v for v in form.getlist(key) if isinstance(v, str)]
                    if key.endswith("[]"):
                        body[key[:-2]] = values
                    elif values:
                        body[key] = values[-1]
            else:
                try:
                    parsed = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    raise BadRequestBody() from None
                if not isinstance(parsed, dict):
                    raise BadRequestBody()
                body = parsed
    return Params(request.query_params, body)
