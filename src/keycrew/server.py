"""The uvicorn factory: each worker process builds its own runtime from the environment."""

from __future__ import annotations

from typing import Any

from keycrew.app import asgi
from keycrew.bootstrap import build
from keycrew.config import Settings


def application() -> Any:
    return asgi(build(Settings()))
