"""Benchmark: what authentication costs on the hot path, as ratios measured side by side.

    python bench/auth.py [--backend sqlite|postgresql|both] [--duration 8] [--connections 32]
                         [--workers 1] [--tokens-large 1000000]

For each backend it starts `keycrew serve` on a fresh database and drives it with wrk (Debian's
`wrk` package) from the same machine, alternating the two requests so that noise hits both:
  unauth: GET /-/liveness                              (no credential, no database)
  auth:   GET /api/v4/personal_access_tokens/self      (PRIVATE-TOKEN, digest lookup via the cache)
and prints auth/unauth (target >= 0.7). On PostgreSQL it then measures the authenticated request
with 1,000 and with --tokens-large tokens in the table (target 1M/1k >= 0.9), plus the cold digest
lookup itself (one indexed query) at both sizes. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import os
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
import urllib.request
from pathlib import Path

from api import lift_rate_limits  # bench/api.py: every benchmark lifts the request limits

ROOT_TOKEN = "glpat-bench-root-token-000000000001"
PG_ADMIN = os.environ.get("KEYCREW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(url: str, seconds: int, connections: int, header: str | None = None) -> float:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if header:
        cmd += ["-H", header]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if match is None or non2xx is not None:
        raise RuntimeError(f"wrk run failed or saw errors:\n{out}")
    return float(match.group(1))


class Server:
    def __init__(self, backend: str, workers: int) -> None:
        self.backend = backend
        self.workers = workers
        self.tmp = Path(tempfile.mkdtemp(prefix="keycrew-bench-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_name: str | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def database_url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp / 'keycrew.sqlite3'}"
        import psycopg

        self.db_name = f"keycrew_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        return (
            PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{self.db_name}"
        )

    def pg_dsn(self) -> str:
        assert self.db_name is not None
        return PG_ADMIN.rsplit("/", 1)[0] + f"/{self.db_name}"

    def __enter__(self) -> Server:
        env = dict(
            os.environ,
            KEYCREW_DATA_DIR=str(self.tmp),
            KEYCREW_DATABASE_URL=self.database_url(),
            KEYCREW_INITIAL_ROOT_TOKEN=ROOT_TOKEN,
            KEYCREW_INITIAL_ROOT_PASSWORD="bench-password-123",
            KEYCREW_LOG_LEVEL="warning",
            KEYCREW_EXTERNAL_URL=self.url,
        )
        keycrew = shutil.which("keycrew") or str(Path(sys.executable).with_name("keycrew"))
        self.process = subprocess.Popen(
            [
                keycrew,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/-/readiness", timeout=2) as response:
                    if response.status == 200:
                        lift_rate_limits(self.url, ROOT_TOKEN)
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("keycrew did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        if self.db_name is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        shutil.rmtree(self.tmp, ignore_errors=True)


def side_by_side(server: Server, seconds: int, connections: int, rounds: int = 3) -> dict[str, float]:
    """Median req/s of each request over alternating rounds."""
    unauth_url = server.url + "/-/liveness"
    auth_url = server.url + "/api/v4/personal_access_tokens/self"
    header = f"PRIVATE-TOKEN: {ROOT_TOKEN}"
    wrk(unauth_url, 2, connections)  # warm up both paths
    wrk(auth_url, 2, connections, header)
    unauth, auth = [], []
    for _ in range(rounds):
        unauth.append(wrk(unauth_url, seconds, connections))
        auth.append(wrk(auth_url, seconds, connections, header))
    return {"unauth": statistics.median(unauth), "auth": statistics.median(auth)}


def fill_tokens(dsn: str, total: int) -> None:
    """Grow personal_access_tokens to ``total`` rows for root (random digests, never valid)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM personal_access_tokens").fetchone()[0]  # type: ignore[index]
        missing = total - int(have)
        if missing > 0:
            conn.execute(
                """
                INSERT INTO personal_access_tokens
                  (user_id, name, token_digest, scopes, impersonation, revoked, expires_at,
                   last_used_ips, created_at, updated_at)
                SELECT 1, 'filler ' || g, md5(random()::text || g) || md5(g::text || random()::text),
                       '["read_api"]', false, false, CURRENT_DATE + 300, '[]', now(), now()
                FROM generate_series(1, %s) AS g
                """,
                (missing,),
            )
            conn.execute("VACUUM ANALYZE personal_access_tokens")


def cold_lookup_us(dsn: str, samples: int = 3000) -> float:
    """Median microseconds of the digest lookup itself (a miss and a hit alternating)."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        digests = [
            r[0]
            for r in conn.execute(
                "SELECT token_digest FROM personal_access_tokens ORDER BY random() LIMIT 200"
            ).fetchall()
        ]
        times = []
        query = "SELECT id, user_id, revoked, expires_at FROM personal_access_tokens WHERE token_digest = %s"
        for i in range(samples):
            digest = digests[i % len(digests)] if i % 2 else secrets.token_hex(32)
            start = time.perf_counter()
            conn.execute(query, (digest,)).fetchall()
            times.append(time.perf_counter() - start)
        return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tokens-large", type=int, default=1_000_000)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/auth.py needs wrk: apt-get install -y wrk (or `make bench`)")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results: dict[str, object] = {"workers": args.workers, "connections": args.connections}
    for backend in backends:
        with Server(backend, args.workers) as server:
            figures = side_by_side(server, args.duration, args.connections)
            ratio = figures["auth"] / figures["unauth"]
            results[backend] = {**figures, "ratio": ratio}
            print(
                f"{backend:10} unauth {figures['unauth']:9.0f} req/s   auth {figures['auth']:9.0f} req/s   "
                f"auth/unauth {ratio:.2f} (target >= 0.70)",
                flush=True,
            )
            if backend == "postgresql":
                dsn = server.pg_dsn()
                fill_tokens(dsn, 1000)
                small = side_by_side(server, args.duration, args.connections)["auth"]
                small_lookup = cold_lookup_us(dsn)
                fill_tokens(dsn, args.tokens_large)
                large = side_by_side(server, args.duration, args.connections)["auth"]
                large_lookup = cold_lookup_us(dsn)
                results["postgresql_scale"] = {
                    "auth_1k": small,
                    "auth_large": large,
                    "ratio": large / small,
                    "lookup_us_1k": small_lookup,
                    "lookup_us_large": large_lookup,
                    "large": args.tokens_large,
                }
                print(
                    f"{'':10} auth with 1k tokens {small:9.0f} req/s   with {args.tokens_large:,} tokens "
                    f"{large:9.0f} req/s   large/1k {large / small:.2f} (target >= 0.90)",
                    flush=True,
                )
                print(
                    f"{'':10} digest lookup (uncached, one indexed query): {small_lookup:.0f} us at 1k, "
                    f"{large_lookup:.0f} us at {args.tokens_large:,}",
                    flush=True,
                )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "auth.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
