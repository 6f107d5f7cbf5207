"""repos.with_branches: which projects of a page have a branch, with one stat of the root when
nothing changed, and never a stale answer after a repository appears or goes."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from keycrew.repos import storage

COMMIT = storage.InitialCommit(
    author_name="Ada",
    author_email="ada@example.com",
    message="first",
    files={"README.md": b"hi\n"},
    when=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
)


def settle(root: Path) -> None:
    """Make the root look quiet (changed long ago), as it is between pushes on a real instance."""
    past = time.time() - 60
    os.utime(root, (past, past))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "repositories"
    path.mkdir()
    return path


def test_missing_root_and_missing_repositories_have_no_branch(tmp_path: Path, root: Path) -> None:
    assert storage.with_branches(tmp_path / "absent", [1, 2]) == set()
    assert storage.with_branches(root, [1, 2]) == set()


def test_only_repositories_with_a_branch_are_named(root: Path) -> None:
    storage.create(root, 1, "main", COMMIT)
    storage.create(root, 2, "main")  # empty: no branch yet
    settle(root)
    assert storage.with_branches(root, [1, 2, 3]) == {1}
    assert str(root) in storage._present  # remembered: the next page costs one stat
    assert storage.with_branches(root, [1, 2, 3]) == {1}
    assert storage.has_branch(root, 1)
    assert not storage.has_branch(root, 2)


def test_a_repository_created_after_a_listing_is_seen(root: Path) -> None:
    settle(root)
    assert storage.with_branches(root, [5]) == set()  # the quiet root is remembered empty
    storage.create(root, 5, "main", COMMIT)  # moves the root's mtime
    assert storage.with_branches(root, [5]) == {5}


def test_a_removed_repository_is_no_longer_seen(root: Path) -> None:
    storage.create(root, 6, "main", COMMIT)
    settle(root)
    assert storage.with_branches(root, [6]) == {6}
    storage.remove(root, 6)
    assert storage.with_branches(root, [6]) == set()


def test_a_root_changed_within_the_quiet_window_is_read_again(root: Path) -> None:
    """Two changes inside one tick of the kernel's clock leave the same mtime: a listing made
    between them must not be trusted, so a recently changed root is not remembered."""
    storage.create(root, 7, "main", COMMIT)
    stamp = os.stat(root).st_mtime_ns
    assert storage.with_branches(root, [7, 8]) == {7}
    assert str(root) not in storage._present
    storage.create(root, 8, "main", COMMIT)
    os.utime(root, ns=(stamp, stamp))  # the second change landed in the same tick
    assert storage.with_branches(root, [7, 8]) == {7, 8}


def test_a_push_to_an_existing_repository_is_seen(root: Path) -> None:
    """A push changes refs inside a repository, not the root: emptiness is read each time."""
    storage.create(root, 9, "main")
    settle(root)
    assert storage.with_branches(root, [9]) == set()
    repository = root / "9.git"
    storage.git("update-ref", "refs/heads/main", _commit(repository), cwd=repository)
    assert storage.with_branches(root, [9]) == {9}


def _commit(repository: Path) -> str:
    tree = storage.git("mktree", cwd=repository, stdin=b"").decode().strip()
    env = {"GIT_AUTHOR_NAME": "A", "GIT_AUTHOR_EMAIL": "a@example.com"}
    env |= {"GIT_COMMITTER_NAME": "A", "GIT_COMMITTER_EMAIL": "a@example.com"}
    return storage.git("commit-tree", tree, "-m", "pushed", cwd=repository, env=env).decode().strip()
