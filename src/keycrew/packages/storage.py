"""Package files on disk: staged while they arrive, then placed where their row says.

A file arrives in a private temporary file under ``<root>/.staging`` (its size checked and its
SHA-256 and MD5 computed as it is written), and is renamed to ``<root>/<project id>/<file id>``
inside the transaction that records it. If that transaction does not commit, the placed file is
removed again, so a failed upload leaves neither a row nor a file. Every path is under one root,
so the rename never crosses file systems.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from keycrew.errors import Invalid

STAGING = ".staging"


class StagedFile:
    """A file being received. Use it as a context manager: whatever was not placed is removed."""

    def __init__(self, directory: Path, max_size: int) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-")
        self.path = Path(name)
        self.max_size = max_size
        self.size = 0
        self._handle = os.fdopen(fd, "wb")
        self._sha256 = hashlib.sha256()
        self._md5 = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes) -> None:
        """Append ``data``; Invalid("File is too large") past the size limit (nothing more is kept)."""
        self.size += len(data)
        if self.size > self.max_size:
            raise Invalid("File is too large")
        self._handle.write(data)
        self._sha256.update(data)
        self._md5.update(data)

    def finish(self) -> None:
        """Flush to disk: the row that will point at this file must not outlive a crash without it."""
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    @property
    def sha256(self) -> str:
        return self._sha256.hexdigest()

    @property
    def md5(self) -> str:
        return self._md5.hexdigest()

    def discard(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.discard()


class Placement:
    """The files placed during one transaction; on an exception they are removed again.

    Wrap the transaction (including its commit) in ``with store.placement() as placement:``.
    """

    def __init__(self) -> None:
        self._placed: list[Path] = []

    def place(self, staged: StagedFile, destination: Path) -> None:
        staged.finish()
        destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # os.replace is atomic; it may overwrite only a file left by a crash between placing
        # and committing (ids of rows that never committed can be handed out again on SQLite).
        os.replace(staged.path, destination)
        self._placed.append(destination)

    def __enter__(self) -> Placement:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            for path in self._placed:
                path.unlink(missing_ok=True)


class PackageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, project_id: int, file_id: int) -> Path:
        return self.root / str(project_id) / str(file_id)

    def stage(self, max_size: int) -> StagedFile:
        return StagedFile(self.root / STAGING, max_size)

    def placement(self) -> Placement:
        return Placement()

    def remove_projects(self, project_ids: Iterable[int]) -> None:
        """Remove the files of deleted projects (after their rows are gone: ids are never reused)."""
        for project_id in project_ids:
            shutil.rmtree(self.root / str(project_id), ignore_errors=True)
