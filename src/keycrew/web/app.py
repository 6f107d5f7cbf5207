"""Mounting the web UI on the application: its routes, static files and error pages."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from keycrew.web import errors
from keycrew.web.deps import CsrfRefused, SignInRequired
from keycrew.web.routes import ROUTERS

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the UI's routes after every other router: its catch-all project paths come last."""
    app.mount("/-/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(SignInRequired, errors.sign_in_required)  # type: ignore[arg-type]
    app.add_exception_handler(CsrfRefused, errors.csrf_refused)  # type: ignore[arg-type]
    for router in ROUTERS:
        app.include_router(router, include_in_schema=False)
