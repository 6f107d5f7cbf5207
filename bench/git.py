"""Benchmark: cloning through keycrew's git smart HTTP bridge versus `git clone file://`.

    python bench/git.py [--size-mb 50] [--rounds 7] [--backend sqlite|postgresql]

Starts `keycrew serve` on a fresh data directory, pushes a repository of about --size-mb MiB
(random, incompressible files over 50 commits) into a new private project, then clones it
alternately through keycrew (http://127.0.0.1, a personal access token as the password) and
straight from the same bare repository on disk (file://), --rounds times each, and prints the
median of each and their ratio (target keycrew/direct <= 1.3). Both clones check out a working
tree; a bare (--mirror-like) pair is measured too, where the transfer is all there is. It also
reads the server's peak resident size (VmHWM) before and after, which must not grow with the
repository. Only 127.0.0.1 is contacted; everything started is stopped and removed.
"""

from __future__ import annotations

import argparse
import json
import os
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

ROOT_TOKEN = "glpat-bench-git-root-token-00000001"
PG_ADMIN = os.environ.get("KEYCREW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
COMMITS = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/true",
        "LANG": "C",
    }


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Server:
    """`keycrew serve` on a fresh data directory (and, for postgresql, a fresh database)."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.tmp = Path(tempfile.mkdtemp(prefix="keycrew-bench-git-"))
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

    def __enter__(self) -> Server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYCREW_")}
        env.update(
            KEYCREW_DATA_DIR=str(self.tmp / "data"),
            KEYCREW_DATABASE_URL=self.database_url(),
            KEYCREW_INITIAL_ROOT_TOKEN=ROOT_TOKEN,
            KEYCREW_INITIAL_ROOT_PASSWORD="bench-password-123",
            KEYCREW_LOG_LEVEL="warning",
        )
        keycrew = shutil.which("keycrew") or str(Path(sys.executable).with_name("keycrew"))
        self.process = subprocess.Popen(
            [keycrew, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
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
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.db_name is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        shutil.rmtree(self.tmp, ignore_errors=True)

    def create_project(self) -> dict[str, object]:
        request = urllib.request.Request(
            self.url + "/api/v4/projects",
            data=json.dumps({"name": f"bench-{secrets.token_hex(4)}"}).encode(),
            headers={"PRIVATE-TOKEN": ROOT_TOKEN, "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read()))


def make_source(path: Path, size_mb: int, env: dict[str, str]) -> None:
    """A repository of COMMITS commits adding random files, ~size_mb MiB in all, via fast-import."""
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(path)], env=env, check=True)
    per_commit = size_mb * 1024 * 1024 // COMMITS
    files = 10
    stream = path / "import.stream"
    with stream.open("wb") as out:
        for c in range(COMMITS):
            message = f"commit {c}".encode()
            out.write(b"commit refs/heads/main\n")
            out.write(f"committer Bench <bench@example.com> {1700000000 + c} +0000\n".encode())
            out.write(f"data {len(message)}\n".encode() + message + b"\n")
            for f in range(files):
                blob = os.urandom(per_commit // files)
                out.write(f"M 100644 inline dir{c % 7}/file{c}-{f}.bin\ndata {len(blob)}\n".encode())
                out.write(blob + b"\n")
        out.write(b"done\n")
    with stream.open("rb") as source:
        subprocess.run(
            ["git", "fast-import", "--quiet", "--done"], cwd=path, stdin=source, env=env, check=True
        )
    stream.unlink()
    subprocess.run(["git", "checkout", "--quiet", "main"], cwd=path, env=env, check=True)


def timed_clone(url: str, target: Path, env: dict[str, str], bare: bool) -> float:
    args = [
        "git",
        "-c",
        "credential.helper=",
        "clone",
        "--quiet",
        *(["--bare"] if bare else []),
        url,
        str(target),
    ]
    started = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


def run(backend: str, size_mb: int, rounds: int) -> dict[str, object]:
    with Server(backend) as server:
        work = server.tmp / "work"
        work.mkdir()
        env = git_env(work)
        project = server.create_project()
        full_path = str(project["path_with_namespace"])
        bare_repo = server.tmp / "data" / "repositories" / f"{project['id']}.git"
        http_url = f"http://root:{ROOT_TOKEN}@127.0.0.1:{server.port}/{full_path}.git"
        file_url = f"file://{bare_repo}"

        source = work / "source"
        make_source(source, size_mb, env)
        subprocess.run(["git", "push", "--quiet", http_url, "main"], cwd=source, env=env, check=True)
        pack_bytes = sum(p.stat().st_size for p in (bare_repo / "objects").rglob("*") if p.is_file())
        assert server.process is not None
        hwm_before = vm_hwm_kb(server.process.pid)

        times: dict[str, list[float]] = {k: [] for k in ("keycrew", "direct", "keycrew_bare", "direct_bare")}
        # One unmeasured clone each warms the page cache and keycrew's code paths.
        timed_clone(http_url, work / "warm1", env, bare=False)
        timed_clone(file_url, work / "warm2", env, bare=False)
        for i in range(rounds):
            # Alternate which goes first, so drift and cache effects hit both alike.
            order = [("keycrew", http_url), ("direct", file_url)]
            if i % 2:
                order.reverse()
            for name, url in order:
                times[name].append(timed_clone(url, work / f"c-{name}-{i}", env, bare=False))
                times[f"{name}_bare"].append(timed_clone(url, work / f"b-{name}-{i}", env, bare=True))
        hwm_after = vm_hwm_kb(server.process.pid)

    medians = {k: statistics.median(v) for k, v in times.items()}
    return {
        "backend": backend,
        "repository_mib": round(pack_bytes / 1024 / 1024, 1),
        "rounds": rounds,
        "median_seconds": {k: round(v, 3) for k, v in medians.items()},
        "ratio": round(medians["keycrew"] / medians["direct"], 3),
        "ratio_bare": round(medians["keycrew_bare"] / medians["direct_bare"], 3),
        "server_vmhwm_mib": {"before": hwm_before // 1024, "after": hwm_after // 1024},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    result = run(args.backend, args.size_mb, args.rounds)
    m = result["median_seconds"]
    assert isinstance(m, dict)
    print(f"repository: {result['repository_mib']} MiB on disk, backend {args.backend}, {args.rounds} rounds")
    print(
        f"clone (checkout)  keycrew {m['keycrew']:.3f} s   file:// {m['direct']:.3f} s   "
        f"ratio {result['ratio']}"
    )
    print(
        f"clone --bare      keycrew {m['keycrew_bare']:.3f} s   file:// {m['direct_bare']:.3f} s   "
        f"ratio {result['ratio_bare']}"
    )
    hwm = result["server_vmhwm_mib"]
    assert isinstance(hwm, dict)
    print(f"keycrew VmHWM: {hwm['before']} MiB before the clones, {hwm['after']} MiB after")
    print("target: ratio <= 1.3")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "git.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
