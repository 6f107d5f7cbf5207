"""The uvicorn factory: each worker process builds its own runtime from the environment."""

from __future__ import annotations

from typing import Any

from keycrew.app import asgi
from keycrew.bootstrap import build
from keycrew.config import Settings
from keycrew.infra.memory import limit_malloc_arenas


def application() -> Any:
    limit_malloc_arenas()  # before the threadpool's threads allocate
    return asgi(build(Settings()))
