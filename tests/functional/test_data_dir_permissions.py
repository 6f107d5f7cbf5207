"""The data directory is private to keycrew's user, also when it existed before keycrew started.

A directory made 0755 by an operator (or by an earlier, looser version) is tightened to 0700; the
SQLite database and its -wal and -shm files are 0600, whether SQLite or an earlier run created
them, and so are the secrets; what `keycrew serve` creates at run time (repositories, packages) is
its user's only. The registry certificate is public on purpose and stays 0644.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import requests

from keycrew.bootstrap import build
from keycrew.config import Settings
from keycrew.migrations import upgrade
from tests.functional.test_serve_process import serve, stop_cleanly
from tests.support.live import start_server

SQLITE_FILES = ("keycrew.sqlite3", "keycrew.sqlite3-wal", "keycrew.sqlite3-shm")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _loose_dir(path: Path) -> Path:
    path.mkdir()
    path.chmod(0o755)
    assert _mode(path) == 0o755
    return path


def test_a_preexisting_open_directory_is_tightened_by_the_runtime(tmp_path: Path) -> None:
    data_dir = _loose_dir(tmp_path / "data")
    old_umask = os.umask(0o022)  # what an operator's shell usually has
    try:
        nodes = start_server("sqlite", data_dir)
        server = next(nodes)
        try:
            response = server.root("GET", "/user")  # a write (WAL) and a read: -wal and -shm exist
            assert response.status_code == 200, response.text
            assert _mode(data_dir) == 0o700
            for name in (*SQLITE_FILES, "secret_key"):
                assert (data_dir / name).exists(), name
                assert _mode(data_dir / name) == 0o600, (name, oct(_mode(data_dir / name)))
        finally:
            nodes.close()
    finally:
        os.umask(old_umask)


def test_files_of_an_earlier_looser_run_are_tightened(tmp_path: Path) -> None:
    data_dir = _loose_dir(tmp_path / "data")
    settings = Settings(data_dir=data_dir, database_url="", secret_key=None)
    old_umask = os.umask(0o022)
    try:
        # A secret an earlier version left readable by everyone, and no database yet.
        (data_dir / "secret_key").write_text("k" * 64)
        (data_dir / "secret_key").chmod(0o644)
        runtime = build(settings)
        try:
            upgrade(runtime.engine)
        finally:
            runtime.engine.dispose()
        assert _mode(data_dir) == 0o700
        for name in ("keycrew.sqlite3", "secret_key"):
            assert _mode(data_dir / name) == 0o600, name
        # A database with its journals, all 0644 in a 0755 directory: tightened at the next start.
        data_dir.chmod(0o755)
        for name in SQLITE_FILES:
            (data_dir / name).touch(exist_ok=True)
            (data_dir / name).chmod(0o644)
        build(settings).engine.dispose()
        assert _mode(data_dir) == 0o700
        for name in (*SQLITE_FILES, "secret_key"):
            assert _mode(data_dir / name) == 0o600, name
    finally:
        os.umask(old_umask)


@pytest.mark.slow
def test_keycrew_serve_keeps_what_it_creates_private(tmp_path: Path) -> None:
    data_dir = _loose_dir(tmp_path / "data")
    old_umask = os.umask(0o022)  # inherited by the server: keycrew sets its own
    try:
        running, url = serve(tmp_path, data_dir)
    finally:
        os.umask(old_umask)
    try:
        token = running.wait_for(r"^\s+token:\s+(\S+)$", 60).group(1)
        headers = {"PRIVATE-TOKEN": token}
        project = requests.post(
            f"{url}/api/v4/projects",
            headers=headers,
            json={"name": "perm", "initialize_with_readme": True},
            timeout=30,
        )
        assert project.status_code == 201, project.text
        assert _mode(data_dir) == 0o700
        for name in (*SQLITE_FILES, "secret_key"):
            assert _mode(data_dir / name) == 0o600, (name, oct(_mode(data_dir / name)))
        # Whatever it created below, directories and files alike: nothing for group or others.
        loose = [
            (str(path), oct(_mode(path)))
            for path in data_dir.rglob("*")
            if not path.is_symlink() and _mode(path) & 0o077 and path.name != "registry-token.crt"
        ]
        assert loose == []
    finally:
        stop_cleanly(running)
