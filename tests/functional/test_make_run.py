"""The README's promise: a fresh clone, `make run`, and python-gitlab signs in with the printed token."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import gitlab
import pytest

from tests.support.live import free_port
from tests.support.processes import BANNER_TOKEN, Running, clean_env, find_process

pytestmark = pytest.mark.slow

# Creating the virtual environment and installing (from pip's cache) takes most of this.
SETUP_TIMEOUT = 600


def repository_root() -> Path | None:
    found = subprocess.run(
        ["git", "-C", str(Path(__file__).parent), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    return Path(found.stdout.strip()) if found.returncode == 0 else None


def test_fresh_clone_make_run_then_python_gitlab_auth(tmp_path: Path) -> None:
    root = repository_root()
    if root is None:
        pytest.skip("not running from a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(root), str(clone)], check=True, timeout=120)
    port = free_port()

    started = time.monotonic()
    make = Running.start(
        ["make", "run", f"PORT={port}"],
        env=clean_env(tmp_path / "data"),
        cwd=clone,
        stderr_path=tmp_path / "make-run.stderr",
    )
    try:
        token = make.wait_for(BANNER_TOKEN.pattern, SETUP_TIMEOUT).group(1)
        url = f"http://127.0.0.1:{port}"
        assert f"URL:      {url}" in make.stdout
        make.wait_http(f"{url}/-/health", 60)
        print(f"make run served after {time.monotonic() - started:.0f} s")

        gl = gitlab.Gitlab(url, private_token=token)
        gl.auth()
        assert gl.user is not None
        assert gl.user.username == "root"

        # Stop the server the way a service manager does; make then ends as it does.
        server = find_process(make.proc.pid, "keycrew", "serve")
        assert make.terminate(pid=server) == 0, make.output()
    finally:
        make.kill_group()
    assert (clone / ".venv" / "bin" / "keycrew").exists()
    assert (tmp_path / "data" / "keycrew.sqlite3").exists()
    assert "keycrew: stopped" in make.stderr
    assert "Traceback" not in make.output()
