"""The real `git` client against a live keycrew: an isolated environment, URLs with credentials,
and the smart HTTP discovery request."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from tests.support.live import LiveServer, uid


def git_env(home: Path) -> dict[str, str]:
    """An environment in which git never prompts and no user or system configuration applies."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/true",
        "GIT_AUTHOR_NAME": "Tester",
        "GIT_AUTHOR_EMAIL": "tester@example.com",
        "GIT_COMMITTER_NAME": "Tester",
        "GIT_COMMITTER_EMAIL": "tester@example.com",
        "LANG": "C",
    }


class Git:
    """Runs the real git in a scratch directory; never prompts (credentials go in the URL)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = git_env(tmp)

    def run(
        self, *args: str, cwd: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["git", "-c", "credential.helper=", "-c", "init.defaultBranch=main", *args],
            cwd=cwd or self.tmp,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def clone(self, url: str, check: bool = True) -> tuple[Path, subprocess.CompletedProcess[str]]:
        target = self.tmp / uid("clone")
        return target, self.run("clone", "--quiet", url, str(target), check=check)

    def commit(self, repo: Path, name: str = "file.txt", content: str | None = None) -> str:
        (repo / name).write_text(content if content is not None else uid("content"))
        self.run("add", name, cwd=repo)
        self.run("commit", "--quiet", "-m", f"change {name}", cwd=repo)
        return self.run("rev-parse", "HEAD", cwd=repo).stdout.strip()

    def new_repo(self) -> Path:
        repo = self.tmp / uid("work")
        repo.mkdir()
        self.run("init", "--quiet", cwd=repo)
        return repo

    def push(
        self, repo: Path, url: str, *refspecs: str, check: bool = False
    ) -> subprocess.CompletedProcess[str]:
        return self.run("push", "--porcelain", url, *refspecs, cwd=repo, check=check)


def repo_url(server: LiveServer, full_path: str, user: str | None = None, secret: str | None = None) -> str:
    return remote_url(server.url, full_path, user, secret)


def remote_url(base: str, full_path: str, user: str | None = None, secret: str | None = None) -> str:
    """``base``/``full_path``.git with the credentials in it (git sends them when asked)."""
    host = base.removeprefix("http://")
    auth = ""
    if user is not None:
        auth = quote(user, safe="") + (":" + quote(secret, safe="") if secret is not None else "") + "@"
    return f"http://{auth}{host}/{full_path}.git"


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def info_refs(
    server: LiveServer, full_path: str, service: str = "git-upload-pack", **kwargs: Any
) -> requests.Response:
    return requests.get(
        f"{server.url}/{full_path}.git/info/refs", params={"service": service}, timeout=30, **kwargs
    )
