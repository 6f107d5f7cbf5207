"""JSON shapes of GitLab's API entities, built from domain objects."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi import Request, Response


class JSON(Response):
    """application/json rendered with orjson; routes return it to skip response-model validation."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


_BASE_URLS: dict[tuple[Any, ...], str] = {}


def base_url(request: Request) -> str:
    """The URL the client used to reach us (web_url and Link headers are built from it).

    Computed once per scheme, Host header and mount point: a request names few of them."""
    scope = request.scope
    key = (scope.get("scheme"), request.headers.get("host"), scope.get("server"), scope.get("root_path"))
    found = _BASE_URLS.get(key)
    if found is None:
        found = str(request.base_url).rstrip("/")
        if len(_BASE_URLS) < 256:  # any Host header a client sends: keep the table bounded
            _BASE_URLS[key] = found
    return found


def iso(value: dt.datetime | None) -> str | None:
    """GitLab's timestamp form: 2024-01-01T12:00:00.000Z."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    # Formatted from the fields: half the cost of isoformat(), which asks the zone for its offset
    # (a listing formats some sixty of these).
    return _ISO % (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond // 1000,
    )


_ISO = "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ"


def day(value: dt.date | None) -> str | None:
    return None if value is None else value.isoformat()
