"""Mounting the web UI on the application: its routes, static files and error pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keycrew.web import errors
from keycrew.web.deps import CsrfRefused, FormTooLarge, SignInRequired, UnstorableText
from keycrew.web.routes import ROUTERS
from keycrew.web.security import SECURITY_HEADERS

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the UI's routes after every other router: its catch-all project paths come last."""
    app.mount("/-/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(SignInRequired, errors.sign_in_required)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfRefused, errors.csrf_refused)  # type: ignore[arg-type]
    app.add_exception_handler(FormTooLarge, errors.form_too_large)  # type: ignore[arg-type]
    app.add_exception_handler(UnstorableText, errors.unstorable_text)  # type: ignore[arg-type]
    app.add_middleware(SecurityHeaders)
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)


class SecurityHeaders:
    """Every response of the UI's paths (pages, redirects, errors, static files) carries the
    security headers; a response that set its own keeps them. Machine paths are left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(errors.MACHINE_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_protected(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_protected)
