"""A revoked token (or a blocked owner) is refused at once by every worker of the node, and within
a second by other nodes, whatever the authentication cache was doing.

- The load/store race: a cache miss loads the principal, a revocation commits, then the miss
  stores what it loaded. The cache's test seam ``before_store`` runs the revocation exactly there
  (a real commit, through the domain or through another node's API), so the interleaving is
  deterministic; the stale principal must not be served afterwards.
- Two workers of one ``keycrew serve --workers 2``: each connection's worker is found through
  /proc, the token is cached on both, revoked through one, and refused by the other at once.
- Two nodes that share only the database (PostgreSQL, separate data directories): only NOTIFY
  links them; the other node refuses within a second.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keycrew.context import Actor
from keycrew.identity.models import User
from keycrew.tokens import lifecycle
from keycrew.tokens.models import PersonalAccessToken
from tests.support.backends import BACKENDS
from tests.support.live import (
    ROOT_TOKEN,
    Factory,
    LiveServer,
    PgDatabase,
    free_port,
    start_server,
    uid,
)
from tests.support.processes import KEYCREW, Running, clean_env

SELF = "/personal_access_tokens/self"


def _status(node: LiveServer, token: str) -> int:
    return node.request("GET", SELF, token=token).status_code


def _token_id(server: LiveServer, user_id: int) -> int:
    """The user's only token, found as root (asking with the token itself would cache it)."""
    listed = server.root("GET", "/personal_access_tokens", params={"user_id": user_id}).json()
    assert len(listed) == 1, listed
    return int(listed[0]["id"])


def _revoke_in_domain(server: LiveServer, token_id: int) -> None:
    """Revoke through the domain in a transaction of its own: a real commit, as any request's."""
    runtime = server.runtime
    with runtime.sessions() as db, db.begin():
        token = db.get(PersonalAccessToken, token_id)
        assert token is not None
        assert lifecycle.revoke(runtime.ctx(db, Actor.system(db.get(User, 1))), token)


class _Between:
    """The cache's ``before_store`` seam: runs ``action`` once, between a miss's load and store."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.ran = 0

    def __call__(self, _digest: str) -> None:
        if self.ran == 0:
            self.ran += 1
            self.action()


def _within_a_second(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + 1.0
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def test_a_revocation_between_load_and_store_is_not_lost(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    token_id = _token_id(server, user["id"])
    cache = server.runtime.auth_cache
    between = _Between(lambda: _revoke_in_domain(server, token_id))
    cache.before_store = between
    try:
        # Loaded before the revocation committed: this one request may pass.
        assert _status(server, token) == 200
    finally:
        cache.before_store = None
    assert between.ran == 1
    # Every later one is refused: what the miss loaded was not kept.
    assert _status(server, token) == 401
    assert _status(server, token) == 401


def test_a_block_between_load_and_store_is_not_lost(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    cache = server.runtime.auth_cache

    def block() -> None:
        runtime = server.runtime
        with runtime.sessions() as db, db.begin():
            owner = db.get(User, user["id"])
            assert owner is not None
            owner.state = "blocked"

    between = _Between(block)
    cache.before_store = between
    try:
        assert _status(server, token) == 200
    finally:
        cache.before_store = None
    assert between.ran == 1
    assert _status(server, token) == 403


@pytest.fixture
def other_node(server: LiveServer, tmp_path: Path) -> Iterator[LiveServer]:
    """A second node on the same database. On PostgreSQL it has a data directory of its own (only
    the database links the nodes: LISTEN/NOTIFY); SQLite's nodes share one host and data dir."""
    url = server.runtime.settings.sqlalchemy_url
    if server.backend == "sqlite":
        yield from start_server(server.backend, server.data_dir, url=url)
        return
    data_dir = tmp_path / "node2"
    data_dir.mkdir(mode=0o700)
    shutil.copy2(server.data_dir / "secret_key", data_dir / "secret_key")
    yield from start_server(server.backend, data_dir, url=url)


def test_a_revocation_on_another_node_between_load_and_store(
    server: LiveServer, other_node: LiveServer, factory: Factory
) -> None:
    user, token = factory.user_with_token(["api"])
    token_id = _token_id(server, user["id"])

    def revoke_there() -> None:
        response = other_node.root("DELETE", f"/personal_access_tokens/{token_id}")
        assert response.status_code == 204, response.text

    cache = server.runtime.auth_cache
    between = _Between(revoke_there)
    cache.before_store = between
    try:
        assert _status(server, token) == 200
    finally:
        cache.before_store = None
    assert between.ran == 1
    if server.backend == "sqlite":
        # One host, one data directory: at once.
        assert _status(server, token) == 401
    else:
        assert _within_a_second(lambda: _status(server, token) == 401)
    assert _status(other_node, token) == 401


def test_a_cached_token_revoked_on_another_node_is_refused_within_a_second(
    server: LiveServer, other_node: LiveServer, factory: Factory
) -> None:
    user, token = factory.user_with_token(["api"])
    token_id = _token_id(server, user["id"])
    for _ in range(2):  # cached on both nodes
        assert _status(server, token) == 200
        assert _status(other_node, token) == 200
    assert other_node.root("DELETE", f"/personal_access_tokens/{token_id}").status_code == 204
    assert _status(other_node, token) == 401
    if server.backend == "sqlite":
        assert _status(server, token) == 401
    else:
        assert _within_a_second(lambda: _status(server, token) == 401)


# -- two workers of one `keycrew serve` ----------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _socket_inode(server_port: int, client_port: int) -> str | None:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if (
                int(local.rsplit(":", 1)[1], 16) == server_port
                and int(remote.rsplit(":", 1)[1], 16) == client_port
            ):
                return inode
    return None


def _worker_of(conn: http.client.HTTPConnection, server_port: int, workers: list[int]) -> int | None:
    """The worker process that holds the server side of ``conn``."""
    assert conn.sock is not None
    inode = _socket_inode(server_port, conn.sock.getsockname()[1])
    if inode is None:
        return None
    for pid in workers:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def _call(
    conn: http.client.HTTPConnection, method: str, path: str, token: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    headers = {"PRIVATE-TOKEN": token}
    payload = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        payload = json.dumps(body)
    conn.request(method, "/api/v4" + path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, (json.loads(data) if data else None)


@pytest.fixture(params=BACKENDS)
def two_workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, list[int]]]:
    """`keycrew serve --workers 2`: its port and the two worker processes."""
    pg = PgDatabase.create() if request.param == "postgresql" else None
    port = free_port()
    env = clean_env(tmp_path / "data", KEYCREW_INITIAL_ROOT_TOKEN=ROOT_TOKEN)
    if pg is not None:
        env["KEYCREW_DATABASE_URL"] = pg.url
    running = Running.start(
        [*KEYCREW, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stderr_path=tmp_path / "serve.stderr",
    )
    try:
        running.wait_http(f"http://127.0.0.1:{port}/-/health", 60)
        workers: list[int] = []
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            # uvicorn's supervisor starts the workers; they are its children (or grandchildren).
            workers = [c for child in _children(running.proc.pid) for c in [child, *_children(child)]]
            time.sleep(0.2)
        yield port, workers
    finally:
        running.kill_group()
        if pg is not None:
            pg.drop()


def _connections_on_both(port: int, workers: list[int], token: str) -> dict[int, http.client.HTTPConnection]:
    """One keep-alive connection per worker, each having authenticated ``token`` once."""
    by_worker: dict[int, http.client.HTTPConnection] = {}
    spare: list[http.client.HTTPConnection] = []
    for _ in range(60):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        assert _call(conn, "GET", SELF, token)[0] == 200
        worker = _worker_of(conn, port, workers)
        if worker is not None and worker not in by_worker:
            by_worker[worker] = conn
        else:
            spare.append(conn)
        if len(by_worker) == 2:
            break
    for conn in spare:
        conn.close()
    assert len(by_worker) == 2, f"no connection reached both workers {workers}"
    return by_worker


@pytest.mark.slow
def test_every_worker_refuses_a_revoked_token_at_once(two_workers: tuple[int, list[int]]) -> None:
    port, workers = two_workers
    admin = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    name = uid("w")
    status, user = _call(
        admin,
        "POST",
        "/users",
        ROOT_TOKEN,
        {"username": name, "email": f"{name}@example.com", "name": name, "password": "a-long-password-1"},
    )
    assert status == 201, user
    for round_ in range(3):
        status, made = _call(
            admin,
            "POST",
            f"/users/{user['id']}/personal_access_tokens",
            ROOT_TOKEN,
            {"name": "t", "scopes": ["api"]},
        )
        assert status == 201, made
        token = made["token"]
        conns = _connections_on_both(port, workers, token)
        (first, here), (_second, there) = sorted(conns.items())
        # Warm both once more, then revoke through one worker; the other answers at once.
        assert _call(here, "GET", SELF, token)[0] == 200
        assert _call(there, "GET", SELF, token)[0] == 200
        revoking, other = (here, there) if round_ % 2 == 0 else (there, here)
        assert _call(revoking, "DELETE", f"/personal_access_tokens/{made['id']}", ROOT_TOKEN)[0] == 204
        assert _call(other, "GET", SELF, token)[0] == 401, f"round {round_}: the other worker served it"
        assert _call(revoking, "GET", SELF, token)[0] == 401
        for conn in conns.values():
            conn.close()
        assert first in workers

    # Blocking the owner travels the same way.
    status, made = _call(
        admin,
        "POST",
        f"/users/{user['id']}/personal_access_tokens",
        ROOT_TOKEN,
        {"name": "b", "scopes": ["api"]},
    )
    token = made["token"]
    conns = _connections_on_both(port, workers, token)
    (_a, here), (_b, there) = sorted(conns.items())
    assert _call(there, "GET", SELF, token)[0] == 200
    assert _call(here, "POST", f"/users/{user['id']}/block", ROOT_TOKEN)[0] == 201
    assert _call(there, "GET", SELF, token)[0] == 403
    for conn in [*conns.values(), admin]:
        conn.close()
