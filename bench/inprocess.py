"""Per-request cost of each call of bench/api.py inside one process, without a network or a server.

    python bench/inprocess.py [--backend sqlite|postgresql] [--scale 0.05] [--n 2000]
                              [--calls REGEX] [--profile] [--top 25]

bench/api.py gives the verdict (ratios to a bare app under real load); this is the developer's
microscope. It fills an instance with bench/api.py's own fill, builds keycrew's ASGI application
in this process (as `keycrew serve` does), and drives each read call straight through the ASGI
interface, sequentially, timing microseconds per request; it also times the bare app the same way.
With --profile it prints the cProfile functions that cost most for each call. Nothing here is a
test and no figure from it is a target: compare runs of the same tree only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))
sys.path.insert(0, str(BENCH))

import api as bench_api  # noqa: E402  (bench/api.py: the fill, the calls, the bare app)


async def call(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def time_statement(url: str, sql: str, parameters: Any, n: int = 200) -> float:
    """Microseconds one statement takes on a connection of sqlite3 itself (SQLite only; else 0)."""
    if not url.startswith("sqlite:///"):
        return 0.0
    import sqlite3

    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        started = time.perf_counter()
        for _ in range(n):
            connection.execute(sql, parameters).fetchall()
        return (time.perf_counter() - started) / n * 1e6
    finally:
        connection.close()


async def timed(app: Any, path: str, headers: list[tuple[bytes, bytes]], n: int) -> tuple[float, int]:
    status = await call(app, path, headers)  # warm
    started = time.perf_counter()
    for _ in range(n):
        await call(app, path, headers)
    return (time.perf_counter() - started) / n * 1e6, status


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--scale", type=float, default=0.05)
    parser.add_argument("--n", type=int, default=2000, help="requests per call")
    parser.add_argument("--calls", default="", help="only the calls matching this regex")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--sql", action="store_true", help="print each call's statements, timed alone on SQLite's driver"
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--inline", action="store_true", help="run threadpool work inline, so cProfile sees it all"
    )
    args = parser.parse_args()
    if args.inline:
        import anyio.to_thread

        async def inline(func: Any, *func_args: Any, **_: Any) -> Any:
            return func(*func_args)

        anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    tmp = Path(tempfile.mkdtemp(prefix="keycrew-inprocess-"))
    database = bench_api.Database(args.backend, tmp)
    try:
        filled = bench_api.fill(tmp, database.url, args.scale)
        url = "http://127.0.0.1:8080"
        os.environ.update(bench_api.keycrew_env(tmp, database.url, url))
        from sqlalchemy import event

        from keycrew.app import asgi
        from keycrew.bootstrap import build
        from keycrew.config import Settings

        runtime = build(Settings())
        app = asgi(runtime)
        statements = [0]
        seen: list[tuple[str, Any]] = []

        @event.listens_for(runtime.engine, "before_cursor_execute")
        def _count(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
            statements[0] += 1
            seen.append((sql, parameters))

        headers = [(b"host", b"127.0.0.1:8080"), (b"private-token", bench_api.ROOT_TOKEN.encode())]
        calls = [
            (name, path)
            for name, category, path, _ in bench_api.reads(filled, "none/none", filled.project_id)
            if category != "other" or "liveness" in name
        ]
        calls = [c for c in calls if re.search(args.calls, c[0])]

        async def run() -> None:
            runtime.start_background()
            try:
                bare_us, _ = await timed(bench_api.bare_app, "/", [], args.n)
                print(f"{'bare app':48} {bare_us:8.1f} µs")
                for name, path in calls:
                    await call(app, path, headers)
                    before = statements[0]
                    await call(app, path, headers)
                    queries = statements[0] - before
                    shown = seen[-queries:] if queries else []
                    us, status = await timed(app, path, headers, args.n)
                    print(
                        f"{name:48} {us:8.1f} µs ({status}) {us / bare_us:6.1f} x bare, {queries} statements",
                        flush=True,
                    )
                    if args.sql:
                        for sql, parameters in shown:
                            alone = time_statement(database.url, sql, parameters)
                            print(f"    {alone:8.1f} µs  {sql} {parameters!r}")
                    if args.profile:
                        profiler = cProfile.Profile()
                        profiler.enable()
                        for _ in range(min(args.n, 500)):
                            await call(app, path, headers)
                        profiler.disable()
                        stats = pstats.Stats(profiler)
                        stats.sort_stats(os.environ.get("SORT", "tottime")).print_stats(args.top)
            finally:
                runtime.stop_background()

        asyncio.run(run())
    finally:
        database.drop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
