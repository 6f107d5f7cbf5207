"""A 100 MB push and clone through `keycrew serve` do not hold the repository in keycrew's memory.

The bridge streams request and response bodies between the socket and `git http-backend`; the
server process's peak resident size (VmHWM) must grow by far less than the data that went through.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.git import Git, remote_url
from tests.support.live import BACKENDS, PgDatabase, free_port, uid
from tests.support.processes import KEYCREW, Running, clean_env, descendants

pytestmark = pytest.mark.slow

ROOT_TOKEN = "glpat-keycrew-memory-test-token-01"
# 100 MiB of random (incompressible) data in 100 files: at least 100 objects, so that the server
# keeps the pushed pack as it is (fewer are exploded into loose objects, which only costs time).
BLOB_SIZE = 1024 * 1024
BLOBS = 100
MAX_GROWTH_KB = 30 * 1024


def vm_hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def random_repository(git: Git, path: Path) -> str:
    """A repository whose one commit holds BLOBS files of random bytes, written by fast-import."""
    git.run("init", "--quiet", str(path))
    stream = path / "import.stream"
    with stream.open("wb") as out:
        out.write(b"commit refs/heads/main\n")
        out.write(b"committer Tester <tester@example.com> 1700000000 +0000\ndata 4\nbig\n")
        for i in range(BLOBS):
            out.write(f"M 100644 inline blob{i}.bin\ndata {BLOB_SIZE}\n".encode())
            out.write(os.urandom(BLOB_SIZE))
            out.write(b"\n")
        out.write(b"done\n")
    with stream.open("rb") as source:
        done = subprocess.run(
            ["git", "-c", "core.compression=0", "fast-import", "--quiet", "--done"],
            cwd=path,
            stdin=source,
            env=git.env,
            check=False,
        )
    assert done.returncode == 0
    stream.unlink()
    return git.run("rev-parse", "main", cwd=path).stdout.strip()


@pytest.fixture(params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Running, str]]:
    pg = PgDatabase.create() if request.param == "postgresql" else None
    data = tmp_path / "data"
    port = free_port()
    env = clean_env(data, KEYCREW_INITIAL_ROOT_TOKEN=ROOT_TOKEN, KEYCREW_INITIAL_ROOT_PASSWORD="x" * 16)
    if pg is not None:
        env["KEYCREW_DATABASE_URL"] = pg.url
    running = Running.start(
        [*KEYCREW, "serve", "--port", str(port)], env=env, cwd=tmp_path, stderr_path=tmp_path / "serve.stderr"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        running.wait_http(f"{url}/-/health", 60)
        yield running, url
    finally:
        running.kill_group()
        if pg is not None:
            pg.drop()


def test_a_100_mb_push_and_clone_are_streamed(served: tuple[Running, str], tmp_path: Path) -> None:
    running, url = served
    git = Git(tmp_path)
    headers = {"PRIVATE-TOKEN": ROOT_TOKEN}
    created = requests.post(f"{url}/api/v4/projects", json={"name": uid("big")}, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    full = created.json()["path_with_namespace"]
    remote = remote_url(url, full, "root", ROOT_TOKEN)

    # Warm up every code path once with a small push and clone, then take the baseline.
    small = git.new_repo()
    git.commit(small)
    assert git.push(small, remote, "HEAD:refs/heads/warmup").returncode == 0
    git.clone(remote)
    baseline = vm_hwm_kb(running.proc.pid)

    big = tmp_path / "big"
    sha = random_repository(git, big)
    started = time.monotonic()
    pushed = git.run("push", "--quiet", remote, "main", cwd=big, check=False)
    assert pushed.returncode == 0, pushed.stderr
    push_seconds = time.monotonic() - started
    after_push = vm_hwm_kb(running.proc.pid)

    started = time.monotonic()
    clone, _ = git.clone(remote)
    clone_seconds = time.monotonic() - started
    assert git.run("rev-parse", "HEAD", cwd=clone).stdout.strip() == sha
    after_clone = vm_hwm_kb(running.proc.pid)

    report = (
        f"VmHWM baseline {baseline // 1024} MiB, after 100 MiB push {after_push // 1024} MiB "
        f"({push_seconds:.1f} s), after clone {after_clone // 1024} MiB ({clone_seconds:.1f} s)"
    )
    print(report)
    assert after_push - baseline < MAX_GROWTH_KB, report
    assert after_clone - baseline < MAX_GROWTH_KB, report

    # A clone abandoned halfway stops its git processes on the server.
    abandoned = subprocess.Popen(
        ["git", "-c", "credential.helper=", "clone", "--quiet", remote, str(tmp_path / "abandoned")],
        env=git.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not any(_is_pack_objects(pid) for pid in descendants(running.proc.pid)):
        assert time.monotonic() < deadline, "the clone never reached pack-objects"
        time.sleep(0.02)
    abandoned.kill()
    abandoned.wait()
    deadline = time.monotonic() + 10
    while descendants(running.proc.pid):
        assert time.monotonic() < deadline, (
            f"git still running below the server: {descendants(running.proc.pid)}"
        )
        time.sleep(0.1)


def _is_pack_objects(pid: int) -> bool:
    try:
        return b"pack-objects" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
