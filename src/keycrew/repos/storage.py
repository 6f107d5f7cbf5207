"""Bare repositories on disk: one per project, named by the project's id so renames move nothing.

Layout under the repositories root (``<data dir>/repositories``)::

    <project id>.git   a bare repository (HEAD names the project's default branch)
    .hooks/            the server-side hooks every push runs (see repos/hooks.py)
    .tmp/              repositories being built or removed; never served

A repository appears and disappears with one rename, so a reader never sees half of one. Changes
that belong to a database transaction (creating or removing a project's repository) are tied to
it with ``after_commit`` / ``on_rollback``: a repository made for a project whose transaction
rolls back is removed again, and one whose project is deleted goes only once the deletion is
committed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from keycrew.infra.transactions import after_commit, on_rollback

log = logging.getLogger("keycrew.repos")

TMP_DIR = ".tmp"
HOOKS_DIR = ".hooks"
GIT_TIMEOUT = 120

# check-ref-format's rules for a branch name (refs/heads/<name>), as one pattern per rule.
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_BAD_REF_SEQUENCES = ("..", "//", "@{", "/.")


class GitFailed(RuntimeError):
    """A git command failed (a broken installation or disk, not a user's mistake)."""


def valid_branch_name(name: str) -> bool:
    """Whether ``name`` is a branch name git accepts (``git check-ref-format --branch``)."""
    if not name or len(name) > 255 or name in ("HEAD", "@") or name.startswith(("-", "/", ".")):
        return False
    if name.endswith(("/", ".", ".lock")) or _BAD_REF_CHARS.search(name):
        return False
    if any(seq in name for seq in _BAD_REF_SEQUENCES):
        return False
    return not any(part.endswith(".lock") for part in name.split("/"))


def git(
    *args: str, cwd: Path | None = None, stdin: bytes | None = None, env: Mapping[str, str] | None = None
) -> bytes:
    """Run ``git args...`` and return its stdout; GitFailed with git's stderr if it fails."""
    try:
        done = subprocess.run(  # noqa: S603 (fixed executable, arguments are ours)
            ["git", *args],  # noqa: S607 (git is found on PATH, as for git http-backend)
            cwd=cwd,
            input=stdin,
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
            env={**git_environment(), **(env or {})},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitFailed(f"git {args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise GitFailed(f"git {args[0]} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def git_environment() -> dict[str, str]:
    """The environment git runs in: none of keycrew's own settings (secrets) leak into it."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
    return {k: v for k, v in os.environ.items() if k in keep}


def repository_path(root: Path, project_id: int) -> Path:
    return root / f"{project_id}.git"


def _scratch(root: Path, prefix: str) -> Path:
    tmp = root / TMP_DIR
    tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=tmp))


@dataclass(frozen=True)
class InitialCommit:
    """The first commit of a repository (``initialize_with_readme``)."""

    author_name: str
    author_email: str
    when: dt.datetime
    files: Mapping[str, bytes] = field(default_factory=dict)
    message: str = "Initial commit"


def _ident(value: str) -> str:
    # git identities cannot hold angle brackets or line breaks; keep the rest of the name.
    cleaned = re.sub(r"[<>\x00-\x1f]", "", value).strip()
    return cleaned or "unknown"


def _fast_import_stream(branch: str, commit: InitialCommit) -> bytes:
    stamp = f"{int(commit.when.timestamp())} +0000"
    who = f"{_ident(commit.author_name)} <{_ident(commit.author_email)}> {stamp}"
    message = commit.message.encode()
    out = [
        f"commit refs/heads/{branch}\n".encode(),
        f"author {who}\ncommitter {who}\n".encode(),
        f"data {len(message)}\n".encode() + message + b"\n",
    ]
    for name, content in sorted(commit.files.items()):
        out.append(f"M 100644 inline {name}\ndata {len(content)}\n".encode() + content + b"\n")
    out.append(b"done\n")
    return b"".join(out)


def create(root: Path, project_id: int, default_branch: str, initial: InitialCommit | None = None) -> Path:
    """Make the project's bare repository (HEAD → ``default_branch``), with a first commit if asked.

    Built beside the live repositories and renamed into place. A stale directory of the same name
    (left by a crash after a deletion committed) is replaced. Raises GitFailed.
    """
    target = repository_path(root, project_id)
    work = _scratch(root, f"new-{project_id}-")
    try:
        git("init", "--quiet", "--bare", "--template=", f"--initial-branch={default_branch}", str(work))
        if initial is not None:
            git(
                "fast-import",
                "--quiet",
                "--done",
                cwd=work,
                stdin=_fast_import_stream(default_branch, initial),
            )
        if target.exists():
            log.warning("replacing a stale repository directory %s", target)
            _discard(root, target)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def ensure(root: Path, project_id: int, default_branch: str) -> Path:
    """The project's repository, created empty if it is missing (projects made before repositories)."""
    target = repository_path(root, project_id)
    if target.is_dir():
        return target
    work = _scratch(root, f"new-{project_id}-")
    try:
        git("init", "--quiet", "--bare", "--template=", f"--initial-branch={default_branch}", str(work))
        with contextlib.suppress(OSError):  # another request made it first: use theirs
            work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def remove(root: Path, project_id: int) -> None:
    """Remove the project's repository, if there is one (renamed away first, then deleted)."""
    target = repository_path(root, project_id)
    if target.exists():
        _discard(root, target)


def _discard(root: Path, path: Path) -> None:
    graveyard = _scratch(root, "deleted-")
    try:
        path.rename(graveyard / path.name)
    finally:
        shutil.rmtree(graveyard, ignore_errors=True)


# What repositories a root holds, as of the root directory's modification time: a listing asks
# whether each project on its page has a branch, and most repositories of an instance are never
# pushed to. A repository appears or disappears only by an entry of the root changing (created,
# renamed in, renamed away), which moves the root's mtime. The kernel stamps that time at a coarse
# tick, so a root changed in the last QUIET_SECONDS is read again rather than trusted.
QUIET_SECONDS = 1.0
_PRESENT_ROOTS = 16
_present: dict[str, tuple[int, frozenset[str]]] = {}
_present_lock = threading.Lock()


def _repositories_in(root: str) -> frozenset[str]:
    """The names of the repositories directly under ``root`` (``<id>.git``), one directory read
    whenever the root changed."""
    try:
        stamp = os.stat(root).st_mtime_ns
    except OSError:
        return frozenset()
    found = _present.get(root)
    if found is not None and found[0] == stamp:
        return found[1]
    try:
        with os.scandir(root) as entries:
            names = frozenset(e.name for e in entries if e.name.endswith(".git"))
    except OSError:
        return frozenset()
    if time.time_ns() - stamp > QUIET_SECONDS * 1e9:
        with _present_lock:
            if root not in _present and len(_present) >= _PRESENT_ROOTS:
                _present.pop(next(iter(_present)))
            _present[root] = (stamp, names)
    return names


def with_branches(root: Path | None, project_ids: Iterable[int]) -> set[int]:
    """Which of ``project_ids`` have a repository with a branch: one ``stat`` of the root for a
    whole page, then only the repositories that exist are looked into (none without a root)."""
    if root is None:
        return set()
    present = _repositories_in(str(root))
    return {
        project_id
        for project_id in project_ids
        if f"{project_id}.git" in present and not is_empty(repository_path(root, project_id))
    }


def has_branch(root: Path, project_id: int) -> bool:
    """Whether the project's repository has a branch (GitLab's ``empty_repo`` is the opposite).

    A listing asks this of every project on its page, and most repositories of an instance are
    never pushed to: a missing one costs a single ``stat`` here, without building a Path.
    """
    if not os.path.isdir(f"{root}/{project_id}.git"):
        return False
    return not is_empty(repository_path(root, project_id))


def is_empty(path: Path) -> bool:
    """No branch yet (GitLab's ``empty_repo``); a missing repository is empty too. Reads files only."""
    heads = path / "refs" / "heads"
    if not path.is_dir():
        return True
    if (path / "reftable").is_dir():  # newer git's ref storage: ask git itself
        return not git("for-each-ref", "--count=1", "--format=x", "refs/heads/", cwd=path).strip()
    if heads.is_dir() and any(p.is_file() for p in heads.rglob("*")):
        return False
    try:
        packed = (path / "packed-refs").read_text(errors="replace")
    except OSError:
        return True
    return not any(" refs/heads/" in line for line in packed.splitlines() if not line.startswith(("#", "^")))


def branch_exists(path: Path, branch: str) -> bool:
    if not path.is_dir():
        return False
    try:
        git("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", cwd=path)
    except GitFailed:
        return False
    return True


def set_head(path: Path, branch: str) -> None:
    """Point HEAD at ``branch`` (what clones check out)."""
    if path.is_dir():
        git("symbolic-ref", "HEAD", f"refs/heads/{branch}", cwd=path)


def create_in_transaction(
    db: Session, root: Path, project_id: int, default_branch: str, initial: InitialCommit | None = None
) -> Path:
    """create(), undone if the transaction does not commit."""
    path = create(root, project_id, default_branch, initial)
    on_rollback(db, lambda: remove(root, project_id))
    return path


def remove_after_commit(db: Session, root: Path, project_ids: Iterable[int]) -> None:
    ids = list(project_ids)

    def remove_all() -> None:
        for project_id in ids:
            remove(root, project_id)

    if ids:
        after_commit(db, remove_all)
