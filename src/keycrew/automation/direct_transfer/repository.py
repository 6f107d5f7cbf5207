"""Copying a project's repository: ``git fetch`` of every branch and tag from the source into the
project's bare repository.

The token travels in an ``Authorization`` header given to git through its environment
(``GIT_CONFIG_*``), never in its arguments (which ``ps`` shows every user) nor in the URL; what git
says on failure is scrubbed of it before it goes anywhere. Fetching with forced refspecs again is
harmless, so a rerun after a crash simply fetches again; an empty source repository fetches nothing.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from keycrew.automation.direct_transfer.work import Work, set_stats
from keycrew.imports.source import JSONObject, SourceProtocolError
from keycrew.repos import storage as repos

# A large repository may take long; a source that stalls is stopped by git's low-speed limit.
FETCH_TIMEOUT = 3600
REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
# What git says when the source refused us or has no such repository: retrying will not help.
PERMANENT = (
    "authentication failed",
    "could not read username",
    "http 401",
    "http 403",
    "http 404",
    "error: 401",
    "error: 403",
    "error: 404",
    "not found",
    "repository not exported",
)


class RepositoryCopyFailed(Exception):
    """git could not fetch the source repository (the message holds no secret)."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


def _clean_url(project: JSONObject, source_url: str) -> str:
    """The project's ``http_url_to_repo`` without credentials, on the source's own host: the
    token goes with every git request, so a source naming another host (the local network, a
    third party) is refused rather than followed."""
    raw = project.get("http_url_to_repo")
    if not isinstance(raw, str) or not raw:
        raise SourceProtocolError("the source did not give the project's repository URL")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceProtocolError("the source gave a repository URL that is not http(s)")
    if parts.hostname.lower() != (urlsplit(source_url).hostname or "").lower():
        raise SourceProtocolError(
            f"the source gave a repository URL on another host ({parts.hostname}): not followed",
            source_url=source_url,
        )
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _scrub(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[FILTERED]")
    return text


def fetch_repository(work: Work, source_project: JSONObject, destination: Path) -> None:
    """Fetch every branch and tag of the source project into ``destination`` (a bare repository)."""
    url = _clean_url(source_project, work.source.url)
    basic = base64.b64encode(f"oauth2:{work.token}".encode()).decode()
    env = {
        **repos.git_environment(),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_COUNT": "4",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
        "GIT_CONFIG_KEY_1": "http.lowSpeedLimit",
        "GIT_CONFIG_VALUE_1": "1",
        "GIT_CONFIG_KEY_2": "http.lowSpeedTime",
        "GIT_CONFIG_VALUE_2": "120",
        # The header goes with every request: never to wherever a redirect points.
        "GIT_CONFIG_KEY_3": "http.followRedirects",
        "GIT_CONFIG_VALUE_3": "false",
    }
    secrets = (work.token, basic)
    try:
        done = subprocess.run(  # noqa: S603 (fixed executable; the arguments hold no secret)
            ["git", "fetch", "--quiet", "--no-write-fetch-head", "--prune", url, *REFSPECS],  # noqa: S607
            cwd=destination,
            env=env,
            capture_output=True,
            timeout=FETCH_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise RepositoryCopyFailed("git fetch from the source timed out", transient=True) from None
    except OSError as exc:
        raise RepositoryCopyFailed(f"git could not run: {type(exc).__name__}", transient=False) from None
    if done.returncode != 0:
        said = _scrub(done.stderr.decode(errors="replace").strip(), secrets)[-1000:]
        permanent = any(marker in said.lower() for marker in PERMANENT)
        raise RepositoryCopyFailed(f"git fetch from the source failed: {said}", transient=not permanent)


def copy_repository(work: Work, source_full_path: str) -> None:
    """The repository stage: the source project's refs into the destination project's repository."""
    source_project = work.source.project(source_full_path)
    with work.batch() as step:
        project_id = step.entity.project_id
        root = step.ctx.instance.repositories_dir
    if project_id is None or root is None:
        with work.batch() as step:
            set_stats(step.entity, "repository", source=1, fetched=0, imported=0)
        return
    destination = repos.repository_path(root, project_id)
    if not destination.is_dir():
        raise RepositoryCopyFailed("the destination project has no repository", transient=False)
    fetch_repository(work, source_project, destination)
    with work.batch() as step:
        set_stats(step.entity, "repository", source=1, fetched=1, imported=1)
        work.run.count("repositories copied")
