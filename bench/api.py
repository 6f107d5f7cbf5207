"""Benchmark: the API the way clients use it, each call as a ratio to a bare ASGI app.

    python bench/api.py [--backend sqlite|postgresql|both] [--workers 1|2] [--workers-both]
                        [--scale 1.0] [--duration 8] [--rounds 3] [--connections 32]
                        [--write-concurrency 8] [--skip-cold-start]

It fills a fresh database in this process, before serving, with the real migrations, root seeded
by keycrew's own first-boot code (KEYCREW_INITIAL_ROOT_TOKEN), then SQLAlchemy Core bulk inserts:
10,000 users (each with a personal namespace and its route), 1,000 groups in a tree four levels
deep, 10,000 projects (half in groups, half in personal namespaces, routes claimed), 100,000
personal access tokens (stored as digests, like keycrew stores them) and 100,000 memberships,
all times --scale. It then starts `keycrew serve` (this worktree's code: PYTHONPATH=src) and a
bare ASGI app answering every request with one small JSON body, on the same uvicorn settings and
worker count, and measures each call on both, alternating, in the same run:

  reads (wrk, --connections):  every GET listed in READS below, git info/refs with Basic auth
  writes (a Python asyncio/httpx client with --write-concurrency workers, the same client on
  both servers): personal token create, self-rotate, revoke; project access token create,
  self-rotate, revoke; project creation

and prints keycrew req/s / bare req/s for each, beside the targets of issue 9: single-object
reads >= 0.15, lists of 20 >= 0.08, token create/rotate/revoke >= 0.03. With --workers-both it
measures 1 and 2 workers and prints keycrew's scaling / the bare app's (target >= 0.9). It also
times a cold start (`keycrew serve` on an empty SQLite data dir to a healthy /-/health, median of
3; target <= 1.5 s). Results go to bench/results/api-<backend>-<workers>w-<timestamp>.json|md.
Only 127.0.0.1 is ever contacted; every loop is bounded by time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
ROOT_TOKEN = "glpat-bench-root-token-000000000001"
ROOT_PASSWORD = "bench-password-123"
PG_ADMIN = os.environ.get("KEYCREW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGETS = {"single": 0.15, "list": 0.08, "token write": 0.03}
SCALING_TARGET = 0.9
COLD_START_TARGET = 1.5
MAX_WRITES = 100_000  # per phase, whatever the duration

# -- the bare app ------------------------------------------------------------------------------

_BARE_BODY = b'{"id":1,"status":"ok"}'


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The baseline: any method, any path, one small JSON body. No framework, no database."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_BARE_BODY)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _BARE_BODY})


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], limit: float = 90, step: float = 0.2) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(step)
    raise RuntimeError(f"{url} did not become healthy")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def keycrew_env(data_dir: Path, database_url: str, url: str) -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p),
        KEYCREW_DATA_DIR=str(data_dir),
        KEYCREW_DATABASE_URL=database_url,
        KEYCREW_INITIAL_ROOT_TOKEN=ROOT_TOKEN,
        KEYCREW_INITIAL_ROOT_PASSWORD=ROOT_PASSWORD,
        KEYCREW_LOG_LEVEL="warning",
        KEYCREW_EXTERNAL_URL=url,
    )


def start_keycrew(
    env: dict[str, str], port: int, workers: int, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``keycrew serve`` from this tree; its stderr goes to ``log`` when given."""
    cmd = [sys.executable, "-m", "keycrew.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    stderr: Any = log.open("wb") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [*cmd, "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    finally:
        if log is not None:
            stderr.close()


def start_bare(port: int, workers: int) -> subprocess.Popen[bytes]:
    """The bare app on keycrew serve's uvicorn settings (see keycrew.cli.serve)."""
    code = (
        f"import uvicorn; uvicorn.run('api:bare_app', app_dir={str(BENCH)!r}, host='127.0.0.1', "
        f"port={port}, workers={workers}, log_level='warning', proxy_headers=True, "
        "forwarded_allow_ips='127.0.0.1', timeout_graceful_shutdown=10)"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


class Database:
    """A fresh database: a SQLite file in the data dir, or a new PostgreSQL database."""

    def __init__(self, backend: str, data_dir: Path) -> None:
        self.backend = backend
        self.name: str | None = None
        if backend == "sqlite":
            self.url = f"sqlite:///{data_dir / 'keycrew.sqlite3'}"
            return
        import psycopg

        self.name = f"keycrew_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        self.url = f"{base}/{self.name}"

    def drop(self) -> None:
        if self.name is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


# -- filling -----------------------------------------------------------------------------------


@dataclass
class Filled:
    users: int = 0
    groups: int = 0
    projects: int = 0
    tokens: int = 0
    memberships: int = 0
    seconds: float = 0.0
    user_id: int = 0
    group_id: int = 0
    group_path: str = ""
    project_id: int = 0


def _chunks(rows: list[dict[str, Any]], size: int = 5000) -> list[list[dict[str, Any]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def group_levels(total: int) -> list[int]:
    """Groups per level of a four-level tree: 10 %, 20 %, 30 %, 40 % of the total."""
    if total <= 0:
        return []
    levels = [max(1, total * share // 10) for share in (1, 2, 3)]
    return [*levels, max(0, total - sum(levels))]


def fill(data_dir: Path, database_url: str, scale: float) -> Filled:
    """Migrate, seed root through keycrew's first boot, then bulk insert the instance."""
    from sqlalchemy import func, insert, select, text

    from keycrew.access.models import Member
    from keycrew.bootstrap import build, migrate, seed
    from keycrew.config import Settings
    from keycrew.crypto import digest
    from keycrew.identity.models import User
    from keycrew.namespaces.models import Namespace, Project, Route
    from keycrew.tokens.models import PersonalAccessToken
    from keycrew.tokens.secrets import PAT_PREFIX, generate

    started = time.monotonic()
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        initial_root_token=ROOT_TOKEN,
        initial_root_password=ROOT_PASSWORD,
    )  # type: ignore[call-arg]
    runtime = build(settings)
    migrate(runtime)
    seed(runtime)
    secret = runtime.instance.secret_key
    engine = runtime.engine
    rng = random.Random(9)
    now = dt.datetime.now(dt.UTC)
    expires = now.date() + dt.timedelta(days=300)
    n_users, n_groups = round(10_000 * scale), round(1_000 * scale)
    n_projects, n_tokens, n_members = round(10_000 * scale), round(100_000 * scale), round(100_000 * scale)
    stamps = {"created_at": now, "updated_at": now}

    with engine.begin() as conn:

        def next_id(model: Any) -> int:
            return int(conn.scalar(select(func.coalesce(func.max(model.id), 0))) or 0) + 1

        user0, ns0, route0 = next_id(User), next_id(Namespace), next_id(Route)
        project0, member0, token0 = next_id(Project), next_id(Member), next_id(PersonalAccessToken)
        users, namespaces, routes = [], [], []
        user_ns: list[tuple[int, str, str]] = []  # (namespace id, full path, full name)
        for i in range(n_users):
            uid, nsid, name = user0 + i, ns0 + i, f"Bench User {i}"
            users.append(
                {
                    "id": uid,
                    "username": f"user{i}",
                    "username_lower": f"user{i}",
                    "name": name,
                    "email": f"user{i}@bench.example.com",
                    "password_digest": None,
                    "user_type": 0,
                    "state": "active",
                    "admin": False,
                    "external": False,
                    "private_profile": False,
                    "can_create_group": True,
                    "projects_limit": 100000,
                    "bio": "",
                    "sign_in_count": 0,
                    "failed_attempts": 0,
                    "confirmed_at": now,
                    **stamps,
                }
            )
            namespaces.append(
                {
                    "id": nsid,
                    "kind": "user",
                    "name": name,
                    "path": f"user{i}",
                    "full_path": f"user{i}",
                    "full_name": name,
                    "owner_id": uid,
                    "parent_id": None,
                    "visibility_level": 20,
                    "description": "",
                    **stamps,
                }
            )
            user_ns.append((nsid, f"user{i}", name))
        groups: list[tuple[int, str, str]] = []
        previous: list[tuple[int, str, str]] = []
        gid = ns0 + n_users
        for depth, count in enumerate(group_levels(n_groups)):
            level = []
            for j in range(count):
                path, name = f"g{depth}-{j}", f"Group {depth}-{j}"
                parent = previous[j % len(previous)] if previous else None
                full_path = f"{parent[1]}/{path}" if parent else path
                full_name = f"{parent[2]} / {name}" if parent else name
                namespaces.append(
                    {
                        "id": gid,
                        "kind": "group",
                        "name": name,
                        "path": path,
                        "full_path": full_path,
                        "full_name": full_name,
                        "owner_id": None,
                        "parent_id": parent[0] if parent else None,
                        "visibility_level": 0,
                        "description": "",
                        **stamps,
                    }
                )
                level.append((gid, full_path, full_name))
                gid += 1
            groups.extend(level)
            previous = level or previous
        for nsid, full_path, full_name in [*user_ns, *groups]:
            routes.append(
                {
                    "source_type": "Namespace",
                    "source_id": nsid,
                    "path": full_path,
                    "path_lower": full_path.lower(),
                    "name": full_name,
                }
            )
        projects = []
        owners = user_ns or groups
        for k in range(n_projects):
            pid = project0 + k
            in_group = groups and (k % 2 == 0 or not user_ns)
            nsid, ns_path, ns_name = groups[(k // 2) % len(groups)] if in_group else owners[k % len(owners)]
            path = f"p{k}"
            projects.append(
                {
                    "id": pid,
                    "name": f"Project {k}",
                    "path": path,
                    "full_path": f"{ns_path}/{path}",
                    "namespace_id": nsid,
                    "creator_id": user0 + (k % max(1, n_users)) if n_users else 1,
                    "description": "",
                    "visibility_level": 0,
                    "default_branch": "main",
                    "archived": False,
                    "last_issue_iid": 0,
                    "last_activity_at": now,
                    **stamps,
                }
            )
            routes.append(
                {
                    "source_type": "Project",
                    "source_id": pid,
                    "path": f"{ns_path}/{path}",
                    "path_lower": f"{ns_path}/{path}".lower(),
                    "name": f"{ns_name} / Project {k}",
                }
            )
        for i, row in enumerate(routes):
            row["id"] = route0 + i
        tokens = []
        for t in range(n_tokens):
            tokens.append(
                {
                    "id": token0 + t,
                    "user_id": user0 + (t % n_users) if n_users else 1,
                    "name": f"bench token {t}",
                    "token_digest": digest(secret, generate(PAT_PREFIX)),
                    "scopes": ["read_api"],
                    "impersonation": False,
                    "revoked": False,
                    "expires_at": expires,
                    "last_used_ips": [],
                    **stamps,
                }
            )
        members = []
        sources = [("Namespace", g[0]) for g in groups] + [("Project", p["id"]) for p in projects]
        seen: set[tuple[str, int, int]] = set()
        budget = n_members * 5
        while sources and n_users and len(members) < n_members and budget > 0:
            budget -= 1
            source_type, source_id = sources[rng.randrange(len(sources))]
            key = (source_type, source_id, user0 + rng.randrange(n_users))
            if key in seen:
                continue
            seen.add(key)
            members.append(
                {
                    "id": member0 + len(members),
                    "source_type": key[0],
                    "source_id": key[1],
                    "user_id": key[2],
                    "access_level": rng.choice((10, 20, 30, 40, 50)),
                    "expires_at": None,
                    "created_by_id": 1,
                    **stamps,
                }
            )
        for model, rows in (
            (User, users),
            (Namespace, namespaces),
            (Route, routes),
            (Project, projects),
            (PersonalAccessToken, tokens),
            (Member, members),
        ):
            for chunk in _chunks(rows):
                conn.execute(insert(model.__table__), chunk)  # type: ignore[arg-type]
        if engine.dialect.name == "postgresql":
            for table in ("users", "namespaces", "routes", "projects", "personal_access_tokens", "members"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    runtime.engine.dispose()
    first_group = groups[0] if groups else (1, "root", "root")
    group_project = next((p for p in projects if p["namespace_id"] == first_group[0]), None)
    return Filled(
        users=len(users),
        groups=len(groups),
        projects=len(projects),
        tokens=len(tokens),
        memberships=len(members),
        seconds=time.monotonic() - started,
        user_id=user0 if users else 1,
        group_id=first_group[0],
        group_path=first_group[1],
        project_id=group_project["id"] if group_project else 0,
    )


# -- measuring ---------------------------------------------------------------------------------


def wrk(
    url: str, seconds: int, connections: int, headers: list[str], failures: list[int] | None = None
) -> float:
    """Requests per second; non-2xx answers are counted into ``failures`` (an error without it)."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s"]
    for header in headers:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or (non2xx is not None and failures is None):
        raise RuntimeError(f"wrk run failed or saw errors:\n{out}")
    if non2xx is not None and failures is not None:
        failures.append(int(non2xx.group(1)))
    return float(match.group(1))


def status_of(url: str, headers: list[str]) -> int:
    request = urllib.request.Request(url, headers=dict(h.split(": ", 1) for h in headers))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass
class Row:
    call: str
    category: str  # single, list, token write, other
    bare: float = 0.0
    keycrew: float = 0.0
    status: str = "ok"
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.keycrew / self.bare if self.status == "ok" and self.bare else None

    @property
    def target(self) -> float | None:
        return TARGETS.get(self.category)


def reads(filled: Filled, git_path: str, access_project: int) -> list[tuple[str, str, str, bool]]:
    """(call, category, path, optional): optional calls may 404, reported as not implemented."""
    u, g, p = filled.user_id, filled.group_id, filled.project_id
    return [
        ("GET /personal_access_tokens/self", "single", "/api/v4/personal_access_tokens/self", False),
        ("GET /user", "single", "/api/v4/user", False),
        ("GET /projects/:id", "single", f"/api/v4/projects/{p}", False),
        ("GET /users/:id", "single", f"/api/v4/users/{u}", False),
        ("GET /groups/:id", "single", f"/api/v4/groups/{g}", False),
        (
            "GET /personal_access_tokens?per_page=20",
            "list",
            "/api/v4/personal_access_tokens?per_page=20",
            False,
        ),
        ("GET /projects?per_page=20", "list", "/api/v4/projects?per_page=20", False),
        ("GET /users?per_page=20", "list", "/api/v4/users?per_page=20", False),
        ("GET /groups/:id/projects", "list", f"/api/v4/groups/{g}/projects", False),
        ("GET /projects/:id/members/all", "list", f"/api/v4/projects/{p}/members/all", False),
        ("GET /groups/:id/members/all", "list", f"/api/v4/groups/{g}/members/all", False),
        (
            "GET /projects/:id/access_tokens",
            "list",
            f"/api/v4/projects/{access_project}/access_tokens",
            False,
        ),
        ("GET /users/:id/memberships", "list", f"/api/v4/users/{u}/memberships", True),
        ("GET /-/liveness", "other", "/-/liveness", False),
        ("git info/refs (Basic auth)", "other", f"/{git_path}.git/info/refs?service=git-upload-pack", False),
    ]


def measure_reads(
    kc_url: str, bare_url: str, calls: list[tuple[str, str, str, bool]], args: argparse.Namespace
) -> list[Row]:
    token = [f"PRIVATE-TOKEN: {ROOT_TOKEN}"]
    basic = base64.b64encode(f"root:{ROOT_TOKEN}".encode()).decode()
    rows = []
    for call, category, path, optional in calls:
        if not re.search(args.calls, call):
            continue
        headers = [f"Authorization: Basic {basic}"] if path.endswith("git-upload-pack") else token
        row = Row(call, category)
        rows.append(row)
        code = status_of(kc_url + path, headers)
        if code == 404 and optional:
            row.status = "not implemented (404)"
            print(f"  {call:42} not implemented (404)", flush=True)
            continue
        if not 200 <= code < 300:
            row.status = f"error (HTTP {code})"
            print(f"  {call:42} HTTP {code}, skipped", flush=True)
            continue
        try:
            wrk(bare_url + path, 1, args.connections, headers)  # warm up both
            wrk(kc_url + path, 1, args.connections, headers)
            bare, keycrew, failures = [], [], []
            for _ in range(args.rounds):
                bare.append(wrk(bare_url + path, args.duration, args.connections, headers))
                keycrew.append(wrk(kc_url + path, args.duration, args.connections, headers, failures))
        except (RuntimeError, subprocess.SubprocessError) as exc:
            row.status = "error (wrk)"
            detail = " ".join(
                line.strip()
                for line in str(exc).splitlines()
                if re.search(r"errors|Non-2xx|Requests/sec", line)
            )
            row.note = (detail or f"{type(exc).__name__}: {exc}")[:300]
            print(f"  {call:42} wrk error: {row.note}", flush=True)
            continue
        row.bare, row.keycrew = statistics.median(bare), statistics.median(keycrew)
        if failures:
            row.note = f"keycrew answered {sum(failures)} request(s) with a non-2xx status under load"
        print_row(row)
    return rows


def print_row(row: Row) -> None:
    target = f"(target >= {row.target:.2f})" if row.target is not None else ""
    ratio = f"{row.ratio:.3f}" if row.ratio is not None else row.status
    print(
        f"  {row.call:42} bare {row.bare:8.0f}/s  keycrew {row.keycrew:8.0f}/s  ratio {ratio} {target}",
        flush=True,
    )
    if row.note:
        print(f"  {'':42} note: {row.note}", flush=True)


# Writes: a Python client, the same one on both servers. The bare app answers {"id": 1, ...}, so
# the client falls back to placeholder ids and keeps its token value there.

Step = Callable[[Any, dict[str, Any]], Awaitable[None]]


@dataclass
class WriteOp:
    call: str
    setup: Callable[[Any, int], Awaitable[dict[str, Any]]] | None
    step: Step
    pool: str | None = None  # consumes ids a previous phase produced
    produces: str | None = None
    pools: dict[str, list[Any]] = field(default_factory=dict)


def check(response: Any) -> dict[str, Any]:
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} "
            f"{response.text[:200]}"
        )
    return response.json() if response.content else {}


def write_ops(project_id: int) -> list[WriteOp]:
    expires = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=300)).isoformat()
    pat_body = {"scopes": ["api"], "expires_at": expires}
    prat_body = {"scopes": ["api"], "access_level": 40, "expires_at": expires}
    pats = f"/api/v4/projects/{project_id}/access_tokens"
    counter = iter(range(10**9))

    def name(kind: str) -> str:
        return f"bench {kind} {next(counter)} {secrets.token_hex(3)}"

    async def pat_create(client: Any, state: dict[str, Any]) -> None:
        body = check(
            await client.post(
                "/api/v4/users/1/personal_access_tokens", json={**pat_body, "name": name("pat")}
            )
        )
        state["out"].append(body.get("id", 1))

    async def pat_revoke(client: Any, state: dict[str, Any]) -> None:
        check(await client.delete(f"/api/v4/personal_access_tokens/{state['pool'].pop()}"))

    async def pat_setup(client: Any, worker: int) -> dict[str, Any]:
        body = check(
            await client.post(
                "/api/v4/users/1/personal_access_tokens", json={**pat_body, "name": name("rot")}
            )
        )
        return {"token": body.get("token", ROOT_TOKEN)}

    async def self_rotate(path: str, client: Any, state: dict[str, Any]) -> None:
        body = check(
            await client.post(path, json={"expires_at": expires}, headers={"PRIVATE-TOKEN": state["token"]})
        )
        state["token"] = body.get("token", state["token"])

    async def pat_rotate(client: Any, state: dict[str, Any]) -> None:
        await self_rotate("/api/v4/personal_access_tokens/self/rotate", client, state)

    async def prat_create(client: Any, state: dict[str, Any]) -> None:
        body = check(await client.post(pats, json={**prat_body, "name": name("prat")}))
        state["out"].append(body.get("id", 1))

    async def prat_revoke(client: Any, state: dict[str, Any]) -> None:
        check(await client.delete(f"{pats}/{state['pool'].pop()}"))

    async def prat_setup(client: Any, worker: int) -> dict[str, Any]:
        body = check(await client.post(pats, json={**prat_body, "name": name("prot")}))
        return {"token": body.get("token", ROOT_TOKEN)}

    async def prat_rotate(client: Any, state: dict[str, Any]) -> None:
        await self_rotate(f"{pats}/self/rotate", client, state)

    async def project_create(client: Any, state: dict[str, Any]) -> None:
        check(await client.post("/api/v4/projects", json={"name": name("project").replace(" ", "-")}))

    return [
        WriteOp("POST /users/:id/personal_access_tokens", None, pat_create, produces="pat"),
        WriteOp("POST /personal_access_tokens/self/rotate", pat_setup, pat_rotate),
        WriteOp("DELETE /personal_access_tokens/:id", None, pat_revoke, pool="pat"),
        WriteOp("POST /projects/:id/access_tokens", None, prat_create, produces="prat"),
        WriteOp("POST /projects/:id/access_tokens/self/rotate", prat_setup, prat_rotate),
        WriteOp("DELETE /projects/:id/access_tokens/:id", None, prat_revoke, pool="prat"),
        WriteOp("POST /projects", None, project_create),
    ]


async def write_phase(
    url: str, op: WriteOp, pools: dict[str, list[Any]], seconds: float, concurrency: int
) -> float:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"PRIVATE-TOKEN": ROOT_TOKEN}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
        states = []
        for worker in range(concurrency):
            state = await op.setup(client, worker) if op.setup else {}
            if op.produces:
                state["out"] = pools.setdefault(op.produces, [])
            if op.pool:
                state["pool"] = pools.setdefault(op.pool, [])
            states.append(state)
        done = 0
        start = time.monotonic()
        deadline = start + seconds

        async def worker_loop(state: dict[str, Any]) -> None:
            nonlocal done
            while time.monotonic() < deadline and done < MAX_WRITES:
                if op.pool and not state["pool"]:
                    return
                await op.step(client, state)
                done += 1

        await asyncio.gather(*(worker_loop(s) for s in states))
        elapsed = time.monotonic() - start
    if done == 0:
        raise RuntimeError("no request completed")
    return done / elapsed


def measure_writes(kc_url: str, bare_url: str, project_id: int, args: argparse.Namespace) -> list[Row]:
    rows = []
    kc_pools: dict[str, list[Any]] = {}
    bare_pools: dict[str, list[Any]] = {}
    results: dict[str, tuple[list[float], list[float]]] = {}
    ops = write_ops(project_id)
    failed: dict[str, str] = {}
    for _ in range(args.rounds):
        for op in ops:
            if op.call in failed or not re.search(args.calls, op.call):
                continue
            bare, keycrew = results.setdefault(op.call, ([], []))
            try:
                bare.append(
                    asyncio.run(write_phase(bare_url, op, bare_pools, args.duration, args.write_concurrency))
                )
                keycrew.append(
                    asyncio.run(write_phase(kc_url, op, kc_pools, args.duration, args.write_concurrency))
                )
            except Exception as exc:  # report the call as failed, measure the others
                failed[op.call] = f"{type(exc).__name__}: {exc}"[:200]
                print(f"  {op.call:42} error: {failed[op.call]}", flush=True)
    for op in ops:
        if not re.search(args.calls, op.call):
            continue
        category = "other" if op.call == "POST /projects" else "token write"
        row = Row(op.call, category)
        bare, keycrew = results.get(op.call, ([], []))
        if op.call in failed:
            row.status, row.note = "error", failed[op.call]
        elif bare and keycrew:
            row.bare, row.keycrew = statistics.median(bare), statistics.median(keycrew)
        rows.append(row)
        print_row(row)
    return rows


# -- one configuration -------------------------------------------------------------------------


def api_json(url: str, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"PRIVATE-TOKEN": ROOT_TOKEN, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.loads(response.read()))


# keycrew's request throttles are on by default (docs/operations.md, "Rate limits"): a benchmark keeps
# them counting, as in production, but raises every limit past what wrk can send.
LIFTED_LIMITS = {
    f"throttle_{name}_requests_per_period": 2_147_483_647
    for name in ("authenticated_api", "unauthenticated_api", "authenticated_git_http")
}
SETTINGS_RELOAD_SECONDS = 6  # every worker rereads the throttle settings within 5 s


def lift_rate_limits(url: str, token: str = ROOT_TOKEN) -> None:
    """Raise the instance's request limits beyond any benchmark's load, then wait until every
    worker has reread them."""
    request = urllib.request.Request(
        url + "/api/v4/application/settings",
        data=json.dumps(LIFTED_LIMITS).encode(),
        method="PUT",
        headers={"PRIVATE-TOKEN": token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
    time.sleep(SETTINGS_RELOAD_SECONDS)


def run_one(backend: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="keycrew-bench-api-"))
    database: Database | None = None
    kc: subprocess.Popen[bytes] | None = None
    bare: subprocess.Popen[bytes] | None = None
    try:
        database = Database(backend, tmp)
        filled = fill(tmp, database.url, args.scale)
        print(
            f"{backend}, {workers} worker(s): filled {filled.users:,} users, {filled.groups:,} groups, "
            f"{filled.projects:,} projects, {filled.tokens:,} tokens, {filled.memberships:,} memberships "
            f"in {filled.seconds:.1f} s",
            flush=True,
        )
        kc_port, bare_port = free_port(), free_port()
        kc_url, bare_url = f"http://127.0.0.1:{kc_port}", f"http://127.0.0.1:{bare_port}"
        kc_log = tmp / "keycrew-serve.log"
        kc = start_keycrew(keycrew_env(tmp, database.url, kc_url), kc_port, workers, kc_log)
        bare = start_bare(bare_port, workers)
        wait_healthy(kc_url + "/-/readiness", kc)
        wait_healthy(bare_url + "/", bare)
        lift_rate_limits(kc_url)
        # A project with a repository (created through the API) in a filled group, for git and tokens.
        project = api_json(
            kc_url, "POST", "/api/v4/projects", {"name": "bench-git", "namespace_id": filled.group_id}
        )
        for i in range(5):
            api_json(
                kc_url,
                "POST",
                f"/api/v4/projects/{project['id']}/access_tokens",
                {"name": f"listed {i}", "scopes": ["read_api"], "access_level": 30},
            )
        rows = measure_reads(
            kc_url, bare_url, reads(filled, project["path_with_namespace"], project["id"]), args
        )
        incidents = exited(kc, bare, "reads")
        if not incidents:
            rows += measure_writes(kc_url, bare_url, project["id"], args)
            incidents = exited(kc, bare, "writes")
        if incidents:  # what keycrew said last, kept with the results
            tail = kc_log.read_text(errors="replace").splitlines()[-20:]
            incidents.append("keycrew serve's stderr, last lines:\n" + "\n".join(tail))
        for incident in incidents:
            print(f"  {incident}", flush=True)
        return {
            "incidents": incidents,
            "backend": backend,
            "workers": workers,
            "filled": filled.__dict__,
            "rows": [{**r.__dict__, "ratio": r.ratio, "target": r.target} for r in rows],
        }
    finally:
        stop(kc)
        stop(bare)
        if database is not None:
            database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def fill_only(backend: str, scale: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="keycrew-bench-fill-"))
    database: Database | None = None
    try:
        database = Database(backend, tmp)
        f = fill(tmp, database.url, scale)
        print(
            f"{backend}: filled {f.users:,} users, {f.groups:,} groups, {f.projects:,} projects, "
            f"{f.tokens:,} tokens, {f.memberships:,} memberships in {f.seconds:.1f} s",
            flush=True,
        )
    finally:
        if database is not None:
            database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


def exited(kc: subprocess.Popen[bytes], bare: subprocess.Popen[bytes], phase: str) -> list[str]:
    """Servers that stopped during a phase (a crash, or something else on the machine ended them)."""
    return [
        f"{label} exited with code {process.returncode} during the {phase}"
        for label, process in (("keycrew serve", kc), ("the bare app", bare))
        if process.poll() is not None
    ]


def cold_start(samples: int = 3) -> list[float]:
    times = []
    for _ in range(samples):
        tmp = Path(tempfile.mkdtemp(prefix="keycrew-bench-cold-"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = None
        try:
            env = keycrew_env(tmp, f"sqlite:///{tmp / 'keycrew.sqlite3'}", url)
            start = time.monotonic()
            process = start_keycrew(env, port, 1)
            wait_healthy(url + "/-/health", process, limit=60, step=0.01)
            times.append(time.monotonic() - start)
        finally:
            stop(process)
            shutil.rmtree(tmp, ignore_errors=True)
    return times


# -- reporting ---------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# bench/api.py, {report['backend']}, {report['workers']} worker(s)",
        "",
        f"{report['when']}, scale {report['scale']}, {report['duration']} s per run, {report['rounds']} "
        f"round(s), wrk -c{report['connections']}, write client concurrency {report['write_concurrency']}, "
        f"{report['cores']} cores.",
        "",
    ]
    for run in report["runs"]:
        f = run["filled"]
        lines += [
            f"## {run['backend']}, {run['workers']} worker(s)",
            "",
            f"Filled {f['users']:,} users, {f['groups']:,} groups, {f['projects']:,} projects, "
            f"{f['tokens']:,} tokens, {f['memberships']:,} memberships in {f['seconds']:.1f} s.",
            "",
            "| call | bare req/s | keycrew req/s | ratio | target |",
            "|---|---:|---:|---:|---:|",
        ]
        for incident in run.get("incidents", []):
            head, _, rest = incident.partition("\n")
            lines += [f"**{head}**", ""] + (["```", rest, "```", ""] if rest else [])
        for r in run["rows"]:
            ratio = fmt(r["ratio"]) if r["ratio"] is not None else r["status"]
            target = f">= {r['target']:.2f}" if r["target"] is not None else "-"
            note = f" ({r['note']})" if r["note"] else ""
            lines.append(
                f"| `{r['call']}`{note} | {r['bare']:.0f} | {r['keycrew']:.0f} | {ratio} | {target} |"
            )
        lines.append("")
    if report.get("scaling"):
        lines += [
            "## Scaling, 2 workers / 1 worker",
            "",
            "| backend | call | keycrew scaling / bare scaling | target |",
            "|---|---|---:|---:|",
        ]
        for s in report["scaling"]:
            lines.append(f"| {s['backend']} | `{s['call']}` | {fmt(s['ratio'], 2)} | >= {SCALING_TARGET} |")
        lines.append("")
    if report.get("cold_start"):
        cold = report["cold_start"]
        lines += [
            "## Cold start",
            "",
            f"`keycrew serve` on an empty SQLite data dir to a healthy `/-/health`: median "
            f"{cold['median']:.2f} s of {', '.join(f'{t:.2f}' for t in cold['samples'])} "
            f"(target <= {COLD_START_TARGET} s).",
            "",
        ]
    return "\n".join(lines)


def scaling(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    by_key = {(r["backend"], r["workers"]): r for r in runs}
    for (backend, workers), run in by_key.items():
        two = by_key.get((backend, 2))
        if workers != 1 or two is None:
            continue
        rows2 = {r["call"]: r for r in two["rows"]}
        for r1 in run["rows"]:
            r2 = rows2.get(r1["call"])
            if not r2 or not (r1["keycrew"] and r1["bare"] and r2["keycrew"] and r2["bare"]):
                continue
            ratio = (r2["keycrew"] / r1["keycrew"]) / (r2["bare"] / r1["bare"])
            out.append({"backend": backend, "call": r1["call"], "ratio": ratio})
            print(f"  {backend:10} {r1['call']:42} scaling ratio {ratio:.2f} (target >= {SCALING_TARGET})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--workers", type=int, choices=[1, 2], default=1)
    parser.add_argument("--workers-both", action="store_true", help="measure 1 and 2 workers, print scaling")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full instance size")
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per call (median)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections for reads")
    parser.add_argument("--write-concurrency", type=int, default=8, help="client workers for writes")
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--calls", default="", help="measure only the calls matching this regex")
    parser.add_argument("--fill-only", action="store_true", help="time the fill alone, serve nothing")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/api.py needs wrk: apt-get install -y wrk (or `make bench`)")
    sys.path.insert(0, str(SRC))  # fill with this tree's keycrew, as the server runs it
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if args.fill_only:
        for backend in backends:
            fill_only(backend, args.scale)
        return
    worker_counts = [1, 2] if args.workers_both else [args.workers]
    runs = []
    for backend in backends:
        for workers in worker_counts:
            runs.append(run_one(backend, workers, args))
    report: dict[str, Any] = {
        "backend": args.backend,
        "workers": "1+2" if args.workers_both else args.workers,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scale": args.scale,
        "duration": args.duration,
        "rounds": args.rounds,
        "connections": args.connections,
        "write_concurrency": args.write_concurrency,
        "cores": os.cpu_count(),
        "runs": runs,
        "scaling": scaling(runs),
    }
    if not args.skip_cold_start:
        samples = cold_start()
        median = statistics.median(samples)
        report["cold_start"] = {"samples": samples, "median": median, "target": COLD_START_TARGET}
        print(f"cold start: median {median:.2f} s (target <= {COLD_START_TARGET} s)", flush=True)
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    workers_label = "1+2" if args.workers_both else str(args.workers)
    base = out / f"api-{args.backend}-{workers_label}w-{stamp}"
    base.with_suffix(".json").write_text(json.dumps(report, indent=2))
    base.with_suffix(".md").write_text(markdown(report))
    print(f"wrote {base}.json and .md", flush=True)


if __name__ == "__main__":
    main()
