"""The alert notify endpoints, at the root as GitLab's (not under /api/v4):

- ``POST /<project full path>/alerts/notify/<name>/<endpoint_identifier>.json`` (HTTP integration)
- ``POST /<project full path>/prometheus/alerts/notify.json`` (Prometheus integration)

The integration's token comes as ``Authorization: Bearer <token>`` (Alertmanager's
``http_config.authorization``), ``Authorization: Token <token>``, or HTTP Basic with the token as
the password. Answers as GitLab's ``Projects::Alerting::NotificationsController``: 200 with the
alerts' ``[{"iid", "title"}]``; empty bodies otherwise: 401 wrong or missing token (counted toward
the per-IP failed-authentication throttle: 429 with ``Retry-After`` once banned), 403 inactive
integration, 404 unknown project or integration (alike), 400 a body over 1 MiB, invalid JSON or not
an object, 422 an Alertmanager payload without alerts.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from keycrew.alerts.service import process_notification
from keycrew.api.auth import client_ip
from keycrew.bootstrap import Runtime
from keycrew.context import Actor
from keycrew.errors import Forbidden, Invalid, NotFound, Unauthenticated, Unprocessable

router = APIRouter(include_in_schema=False)

# GitLab refuses payloads over 1 MB (Gitlab::Utils::DeepSize) and deeper than 20 levels.
MAX_BYTES = 1_048_576
MAX_DEPTH = 20


def _token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    scheme = scheme.lower()
    if scheme in ("bearer", "token"):
        if value.startswith("token="):
            value = value[len("token=") :].split(",")[0].strip().strip('"')
        return value or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def _too_deep(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_too_deep(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return any(_too_deep(v, depth + 1) for v in value)
    return False


async def _body(request: Request) -> bytes | None:
    """The body, or None when it is over the limit (read no further than that)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _notify(
    request: Request, project_path: str, *, endpoint_identifier: str | None, prometheus: bool
) -> Response:
    runtime: Runtime = request.app.state.runtime
    throttle = runtime.auth_throttle
    ip = client_ip(request)
    wait = await throttle.aretry_after(ip)
    if wait:
        return Response(status_code=429, headers={"Retry-After": str(wait)})
    raw = await _body(request)
    if raw is None:
        return Response(status_code=400)
    try:
        payload = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        return Response(status_code=400)
    if _too_deep(payload):
        return Response(status_code=400)
    token = _token(request)

    def work() -> list[dict[str, Any]]:
        with runtime.sessions() as db, db.begin():
            ctx = runtime.ctx(db, Actor(user=None, ip=ip, via="alerts"))
            alerts = process_notification(
                ctx,
                project_path,
                token=token,
                payload=payload,
                endpoint_identifier=endpoint_identifier,
                prometheus=prometheus,
            )
            return [{"iid": alert.iid, "title": alert.title} for alert in alerts]

    try:
        created = await anyio.to_thread.run_sync(work)
    except Unauthenticated:
        await throttle.afailed(ip)
        return Response(status_code=401)
    except Forbidden:
        return Response(status_code=403)
    except NotFound:
        return Response(status_code=404)
    except Unprocessable:
        return Response(status_code=422)
    except Invalid:
        return Response(status_code=400)
    return JSONResponse(created)


@router.post("/{project_path:path}/prometheus/alerts/notify.json")
async def prometheus_notify(project_path: str, request: Request) -> Response:
    return await _notify(request, project_path, endpoint_identifier=None, prometheus=True)


@router.post("/{project_path:path}/alerts/notify/{name}/{endpoint_identifier}.json")
async def http_notify(project_path: str, name: str, endpoint_identifier: str, request: Request) -> Response:
    return await _notify(request, project_path, endpoint_identifier=endpoint_identifier, prometheus=False)
