"""A live keycrew server in a thread, clients for it, a factory, and empty databases of each backend.

Plain code, no fixtures: the fixtures that start these servers are in tests/support/fixtures.py.
Imported by the functional and browser tests; the unit tests never need it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gitlab
import psycopg
import requests
import uvicorn
from sqlalchemy import Engine, MetaData

from keycrew.app import asgi
from keycrew.bootstrap import Runtime, build, migrate, seed
from keycrew.clock import OffsetClock
from keycrew.config import Settings
from keycrew.db.engine import make_engine
from tests.support.backends import BACKENDS, PG_ADMIN_DSN

ROOT_TOKEN = "glpat-keycrew-test-root-token-0001"
GITLAB_CLI = str(Path(sys.executable).parent / "gitlab")
ROOT_PASSWORD = "root-password-for-tests"

__all__ = [
    "BACKENDS",
    "GITLAB_CLI",
    "ROOT_PASSWORD",
    "ROOT_TOKEN",
    "Factory",
    "LiveServer",
    "PgDatabase",
    "database_url",
    "free_port",
    "start_server",
    "uid",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def uid(prefix: str = "t") -> str:
    """A short unique name so that tests sharing one server never collide."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class PgDatabase:
    name: str
    url: str

    @classmethod
    def create(cls) -> PgDatabase:
        name = f"keycrew_test_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        return cls(name, f"{base}/{name}")

    def drop(self) -> None:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def database_url(backend: str, data_dir: Path) -> tuple[str, PgDatabase | None]:
    if backend == "postgresql":
        pg = PgDatabase.create()
        return pg.url, pg
    return f"sqlite:///{data_dir / 'keycrew.sqlite3'}", None


@contextlib.contextmanager
def scratch_engine(backend: str, data_dir: Path, metadata: MetaData) -> Iterator[Engine]:
    """An engine on a database of its own (a new PostgreSQL database, or a SQLite file in
    ``data_dir``) holding ``metadata``'s tables, dropped afterwards."""
    url, pg = database_url(backend, data_dir)
    engine = make_engine(url, pool_size=2)
    try:
        metadata.create_all(engine)
        yield engine
    finally:
        engine.dispose()
        if pg is not None:
            pg.drop()


@dataclass
class LiveServer:
    url: str
    runtime: Runtime
    clock: OffsetClock
    backend: str
    data_dir: Path
    root_token: str = ROOT_TOKEN

    def api(self, path: str) -> str:
        return f"{self.url}/api/v4{path}"

    def gl(self, token: str | None = None, **kwargs: Any) -> gitlab.Gitlab:
        return gitlab.Gitlab(self.url, private_token=token or self.root_token, **kwargs)

    def request(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers.setdefault("PRIVATE-TOKEN", token)
        return requests.request(method, self.api(path), headers=headers, timeout=30, **kwargs)

    def root(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.request(method, path, token=self.root_token, **kwargs)

    def gitlab_cli(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
        """python-gitlab's `gitlab` CLI against this server, configured only by the environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITLAB_", "PYTHON_GITLAB", "CI_"))}
        env |= {
            "GITLAB_URL": self.url,
            "GITLAB_PRIVATE_TOKEN": token or self.root_token,
            "HOME": str(self.data_dir),
        }
        return subprocess.run(
            [GITLAB_CLI, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )


def start_server(backend: str, tmp: Path, url: str | None = None, **overrides: Any) -> Iterator[LiveServer]:
    """A live server in a thread; with ``url``, a further node on an existing database.

    ``overrides`` are further Settings (``smtp_port=...``). The scheduler of background jobs is off
    unless a test turns it on (``jobs="on"``): tests run jobs when they choose."""
    pg: PgDatabase | None = None
    if url is None:
        url, pg = database_url(backend, tmp)
    port = free_port()
    settings = Settings(
        data_dir=tmp,
        database_url=url,
        external_url=f"http://127.0.0.1:{port}",
        initial_root_password=ROOT_PASSWORD,  # type: ignore[arg-type]
        initial_root_token=ROOT_TOKEN,  # type: ignore[arg-type]
        **({"jobs": "off"} | overrides),
    )
    clock = OffsetClock()
    runtime = build(settings, clock=clock)
    migrate(runtime)
    seed(runtime)
    # Access logs on, so that the token-hygiene check sees every request line the server logged.
    config = uvicorn.Config(
        asgi(runtime), host="127.0.0.1", port=port, log_level="info", lifespan="on", log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("keycrew test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", runtime, clock, backend, tmp)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runtime.engine.dispose()
        if pg is not None:
            pg.drop()


class Factory:
    """Creates users, groups, projects and tokens through the API, as root."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def user(self, **attrs: Any) -> dict[str, Any]:
        name = uid("u")
        body = {
            "username": name,
            "email": f"{name}@example.com",
            "name": name.title(),
            "password": "a-long-password-1",
        } | attrs
        response = self.server.root("POST", "/users", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def token(self, user_id: int, scopes: list[str] | None = None, **attrs: Any) -> str:
        body = {"name": uid("tok"), "scopes": scopes or ["api"]} | attrs
        response = self.server.root("POST", f"/users/{user_id}/personal_access_tokens", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    def user_with_token(self, scopes: list[str] | None = None, **attrs: Any) -> tuple[dict[str, Any], str]:
        user = self.user(**attrs)
        return user, self.token(user["id"], scopes)

    def group(self, token: str | None = None, **attrs: Any) -> dict[str, Any]:
        path = uid("g")
        body = {"name": path, "path": path} | attrs
        response = self.server.request("POST", "/groups", token=token or self.server.root_token, json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def project(self, token: str | None = None, **attrs: Any) -> dict[str, Any]:
        body = {"name": uid("p")} | attrs
        response = self.server.request("POST", "/projects", token=token or self.server.root_token, json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def member(self, kind: str, source_id: int, user_id: int, level: int, token: str | None = None) -> None:
        response = self.server.request(
            "POST",
            f"/{kind}/{source_id}/members",
            token=token or self.server.root_token,
            json={"user_id": user_id, "access_level": level},
        )
        assert response.status_code == 201, response.text
