"""`keycrew serve` as an operator runs it: first boot banner, real clients, restarts, SIGTERM."""

from __future__ import annotations

import stat
from pathlib import Path

import gitlab
import pytest
import requests
from gitlab.v4.objects import CurrentUser
from sqlalchemy import select

from keycrew.config import Settings
from keycrew.db.engine import make_engine
from keycrew.identity.models import User
from keycrew.identity.passwords import verify_password
from tests.support.live import free_port
from tests.support.processes import BANNER_PASSWORD, BANNER_TOKEN, KEYCREW, Running, clean_env

pytestmark = pytest.mark.slow

START_TIMEOUT = 60


def serve(tmp_path: Path, data_dir: Path, *args: str, **env: str) -> tuple[Running, str]:
    port = free_port()
    running = Running.start(
        [*KEYCREW, "serve", "--port", str(port), *args],
        env=clean_env(data_dir, **env),
        cwd=tmp_path,
        stderr_path=tmp_path / f"serve-{port}.stderr",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        running.wait_http(f"{url}/-/health", START_TIMEOUT)
    except BaseException:
        running.kill_group()
        raise
    return running, url


def stop_cleanly(running: Running) -> None:
    try:
        code = running.terminate(timeout=10)
        assert code == 0, running.output()
        assert "Shutting down" in running.stderr
        assert "Traceback" not in running.output()
    finally:
        running.kill_group()


def whoami(url: str, token: str) -> CurrentUser:
    """python-gitlab's own sign-in with the token: the user it authenticates as."""
    gl = gitlab.Gitlab(url, private_token=token)
    gl.auth()
    assert gl.user is not None
    return gl.user


def test_first_boot_prints_root_credentials_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    running, url = serve(tmp_path, data_dir)
    try:
        banner = running.wait_for(r"^=+\n(?:.*\n)*?=+$", START_TIMEOUT).group(0)
        password = BANNER_PASSWORD.search(banner)
        token = BANNER_TOKEN.search(banner)
        assert password is not None, banner
        assert token is not None, banner
        assert token.group(1).startswith("glpat-")
        assert f"URL:      {url}" in banner

        user = whoami(url, token.group(1))
        assert user.username == "root"
        assert user.id == 1
        assert user.is_admin is True

        for path in ("/-/health", "/-/readiness", "/-/liveness"):
            response = requests.get(url + path, timeout=10)
            assert response.status_code == 200, (path, response.text)
            assert response.json()["status"] == "ok"
    finally:
        stop_cleanly(running)

    # The printed password is root's, and the secrets on disk are the owner's alone.
    engine = make_engine(Settings(data_dir=data_dir).sqlalchemy_url)
    with engine.connect() as conn:
        digest = conn.scalar(select(User.password_digest).where(User.username == "root"))
    engine.dispose()
    assert verify_password(digest, password.group(1))
    assert stat.S_IMODE((data_dir / "secret_key").stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700

    # A second start on the same data directory keeps root and prints no credentials.
    again, url = serve(tmp_path, data_dir)
    try:
        assert whoami(url, token.group(1)).username == "root"
    finally:
        stop_cleanly(again)
    assert "password" not in again.stdout
    assert token.group(1) not in again.output()


def test_initial_root_credentials_from_the_environment(tmp_path: Path) -> None:
    token = "a-chosen-root-token-20"  # 20+ characters, any form
    running, url = serve(
        tmp_path,
        tmp_path / "data",
        KEYCREW_INITIAL_ROOT_PASSWORD="chosen-root-password",
        KEYCREW_INITIAL_ROOT_TOKEN=token,
    )
    try:
        banner = running.wait_for(r"token:.*$", START_TIMEOUT).group(0)
        assert "(from KEYCREW_INITIAL_ROOT_TOKEN)" in banner
        assert "chosen-root-password" not in running.stdout
        assert token not in running.stdout
        assert whoami(url, token).username == "root"
    finally:
        stop_cleanly(running)


def test_two_workers_serve_and_stop_together(tmp_path: Path) -> None:
    # A previous run's metrics file: removed at start, not counted again.
    (tmp_path / "data" / "metrics").mkdir(parents=True)
    (tmp_path / "data" / "metrics" / "counter_1.db").write_bytes(b"stale")
    running, url = serve(tmp_path, tmp_path / "data", "--workers", "2")
    try:
        token = running.wait_for(BANNER_TOKEN.pattern, START_TIMEOUT).group(1)
        # New connections each time, so that both workers get some of them.
        for _ in range(6):
            response = requests.get(f"{url}/api/v4/user", headers={"PRIVATE-TOKEN": token}, timeout=10)
            assert response.status_code == 200, response.text
            assert response.json()["username"] == "root"
        # The workers' figures add up, whichever worker answers the scrape.
        for _ in range(2):
            metrics = requests.get(f"{url}/-/metrics", timeout=10)
            assert metrics.status_code == 200, metrics.text
            assert 'keycrew_http_requests_total{method="GET",route="/api/v4/user",status="200"} 6.0' in (
                metrics.text
            )
        assert not (tmp_path / "data" / "metrics" / "counter_1.db").exists()
        assert whoami(url, token).username == "root"
    finally:
        stop_cleanly(running)
    assert running.stderr.count("Finished server process") == 2


def test_a_taken_port_is_a_readable_failure(tmp_path: Path) -> None:
    running, url = serve(tmp_path, tmp_path / "data")
    try:
        port = url.rsplit(":", 1)[1]
        second = Running.start(
            [*KEYCREW, "serve", "--port", port],
            env=clean_env(tmp_path / "data"),
            cwd=tmp_path,
            stderr_path=tmp_path / "second.stderr",
        )
        try:
            assert second.proc.wait(timeout=START_TIMEOUT) == 1
        finally:
            second.kill_group()
        assert "could not start on 127.0.0.1:" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        stop_cleanly(running)
