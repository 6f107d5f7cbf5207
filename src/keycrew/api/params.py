"""Request parameters as Grape sees them: query string and JSON/form body merged, loosely typed.

Real clients send numbers as strings (the gitlab CLI), booleans as True/true, scopes as an array
or a comma string, list filters as repeated ``key[]=``, and "" for "not given" (deploy tokens).

Ids (in the path or in a parameter) go through ``record_id``: one beyond the id columns' range
names nothing, like any unknown id, rather than reaching the database (SQLite overflows past 64
bits, PostgreSQL's int4 columns past 31).

Bad input is refused here, once, with a 400 (GitLab's JSON validation middleware and Grape):
bodies over ``MAX_BODY_BYTES``, JSON nested deeper than ``MAX_DEPTH`` or with more than
``MAX_ELEMENTS`` values, text with a NUL byte or a lone surrogate (neither can be stored or
encoded), and integers that are not plain ASCII digits (no spaces, signs but "-", underscores,
other scripts' digits) or longer than ``MAX_INTEGER_DIGITS``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import orjson
from fastapi import Request
from starlette.datastructures import QueryParams

from keycrew.db.base import record_id
from keycrew.db.text import valid_text
from keycrew.errors import BadParameter, MissingParameter

_TRUE = {"true", "1", "yes", "t", "on"}
_FALSE = {"false", "0", "no", "f", "off"}


# GitLab's JSON validation limits (Gitlab::Middleware::JsonValidation): Rack's nesting depth of 32,
# 100,000 values in all, integers of at most 1,000 digits. GitLab leaves the body size to its
# proxy; keycrew caps every API body its parameters are read from.
MAX_DEPTH = 32
MAX_ELEMENTS = 100_000
MAX_INTEGER_DIGITS = 1000
MAX_BODY_BYTES = 8 * 1024 * 1024

NOT_JSON = "The provided content-type or the request body is not valid JSON"


class BadRequestBody(Exception):
    """The body cannot be read as parameters: not JSON (or not an object), too deep, too big."""

    def __init__(self, message: str = NOT_JSON) -> None:
        super().__init__(message)
        self.message = message


def integer_text(text: str) -> bool:
    """Plain ASCII digits, optionally after a "-", and not too many of them for ``int()``."""
    digits = text[1:] if text.startswith("-") else text
    return 0 < len(digits) <= MAX_INTEGER_DIGITS and digits.isascii() and digits.isdigit()


def path_id(raw: str, name: str) -> int:
    """A numeric path segment: 400 "<name> is invalid" unless it is all digits (a 400, not a 404, as
    for Grape's ``type: Integer``); out of range it names nothing (``record_id``)."""
    if not (raw.isascii() and raw.isdigit()):
        raise BadParameter(f"{name} is invalid")
    if len(raw) > MAX_INTEGER_DIGITS:
        return record_id(0)
    return record_id(int(raw))


def _bad_text(value: Any) -> bool:
    """Whether ``value`` or anything in it (a parameter, bounded by ``MAX_DEPTH``) is bad text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not valid_text(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _shape(value: Any) -> bool:
    """Whether a parsed JSON value has a float anywhere (its integers may have lost digits).

    Raises BadRequestBody when it is nested deeper than ``MAX_DEPTH`` or holds more than
    ``MAX_ELEMENTS`` values. Iterative: the depth of what it is given costs no stack."""
    has_float = False
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise BadRequestBody("Parameters nested too deeply")
            children = item.values() if isinstance(item, dict) else item
            count += len(item)
            if count > MAX_ELEMENTS:
                raise BadRequestBody("Too many total parameters")
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, float):
            has_float = True
    return has_float


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON body as parameters. Raises BadRequestBody: not JSON, not an object, too deep or too
    many values, or text that cannot be stored.

    orjson reads it first, without recursion (it stops at 1,024 levels) and refusing lone
    surrogates and invalid UTF-8; its result is used unless it holds a float, since orjson reads
    integers beyond 64 bits as floats: the stdlib then reads it again, exactly, now that its depth
    is known to be small."""
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequestBody() from None
    if not isinstance(parsed, dict):
        raise BadRequestBody()
    if _shape(parsed):
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):  # an integer of more than 4,300 digits
            raise BadRequestBody() from None
    return parsed


def _printable(key: str) -> str:
    """``key`` for an error message: without what ``valid_text`` refuses."""
    return "".join(c for c in key if c != "\x00" and not "\ud800" <= c <= "\udfff")


class Params:
    def __init__(
        self, query: QueryParams, body: dict[str, Any], files: dict[str, tuple[str, bytes]] | None = None
    ) -> None:
        # The files of a multipart body: field -> (filename, content).
        self._files = files or {}
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
            if _bad_text(key) or _bad_text(value):
                # No field accepts a NUL byte or a lone surrogate: neither can be stored.
                raise BadParameter(f"{_printable(key)} is invalid")
        self._data = merged

    def file(self, key: str) -> tuple[str, bytes] | None:
        """The file sent as multipart field ``key``: (filename, content), or None."""
        return self._files.get(key)

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
        if isinstance(value, str) and integer_text(value):
            return int(value)
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
        if not all(integer_text(i) for i in items):
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


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request's body, read up to ``limit`` bytes: BadRequestBody beyond (the declared length
    is checked first, and the body is counted as it arrives, whatever it declared)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and len(declared) < 20 and int(declared) > limit:
        raise BadRequestBody("JSON body too large")
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limit:
            raise BadRequestBody("JSON body too large")
    body = bytes(received)
    request._body = body  # Starlette's cache of the body, which request.form() reads
    return body


async def read_params(request: Request) -> Params:
    body: dict[str, Any] = {}
    files: dict[str, tuple[str, bytes]] = {}
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        raw = await read_body(request)
        if raw.strip():
            if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.form()
                for key in form:
                    items = form.getlist(key)
                    values = [v for v in items if isinstance(v, str)]
                    for item in items:
                        if not isinstance(item, str):  # an uploaded file (kept in memory: the
                            # body is bounded by read_body)
                            files[key] = (item.filename or "", await item.read())
                    if key.endswith("[]"):
                        body[key[:-2]] = values
                    elif values:
                        body[key] = values[-1]
            else:
                body = parse_json_object(raw)
    return Params(request.query_params, body, files)
