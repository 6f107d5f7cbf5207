"""The ASGI application: /api/v4, health endpoints, error mapping, raw-path routing."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from keycrew import __version__
from keycrew.api import errors
from keycrew.api.routes import ROUTERS
from keycrew.bootstrap import Runtime
from keycrew.git.http import GitHTTP
from keycrew.registry.jwt_auth import router as registry_token_router
from keycrew.web.app import install as install_web

API_PREFIX = "/api/v4"


class RawPathIds:
    """Route on the raw path so that an encoded full path (root%2Fp) stays one segment.

    Each segment is decoded on its own and a "/" inside it is re-encoded as %2F; routes that take
    an id or a full path decode it once more (so the CLI's double encoding works too).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if "\x00" in scope["path"]:
                # No route or full path can hold a NUL byte (and PostgreSQL refuses them in text).
                await JSONResponse({"error": "404 Not Found"}, status_code=404)(scope, receive, send)
                return
            raw = scope.get("raw_path")
            if raw and b"%2" in raw.upper():
                text_path = raw.decode("latin-1").split("?", 1)[0]
                segments = [unquote(s).replace("/", "%2F") for s in text_path.split("/")]
                scope = dict(scope, path="/".join(segments))
        await self.app(scope, receive, send)


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start_background()
        try:
            yield
        finally:
            runtime.stop_background()

    app = FastAPI(
        lifespan=lifespan,
        title="keycrew",
        version=__version__,
        docs_url="/-/docs",
        redoc_url=None,
        openapi_url="/-/openapi.json",
        default_response_class=JSONResponse,
    )
    app.state.runtime = runtime
    install_log_redaction()
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(registry_token_router)  # /jwt/auth, at the root as GitLab's

    @app.get("/-/health", include_in_schema=False)
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/-/liveness", include_in_schema=False)
    async def liveness() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/-/readiness", include_in_schema=False)
    def readiness() -> JSONResponse:
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "failed", "db_check": [{"status": "failed"}]}, status_code=503)
        return JSONResponse(
            {"status": "ok", "master_check": [{"status": "ok"}], "db_check": [{"status": "ok"}]}
        )

    install_web(app)  # last: its project pages match any path the routes above did not
    return app


def asgi(runtime: Runtime) -> Any:
    # Git smart HTTP (/<group>/<project>.git/info/refs, .../git-upload-pack, .../git-receive-pack)
    # is served before routing; every other request goes on to the application.
    return RawPathIds(GitHTTP(create_app(runtime), runtime))


class RedactTokens(logging.Filter):
    """Access-log lines carry query strings; a token passed as ?private_token= must not be logged."""

    PATTERN = re.compile(r"((?:private_token|access_token|token)=)[^&\s\"]+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                self.PATTERN.sub(r"\1[FILTERED]", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = self.PATTERN.sub(r"\1[FILTERED]", record.msg)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "keycrew"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
