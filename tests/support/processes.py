"""Running `keycrew` (and `make run`) as real processes: the operator's view, stdout and signals."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
# The installed console script when there is one (the venv's), else the module itself.
KEYCREW: list[str] = (
    [str(BIN / "keycrew")] if (BIN / "keycrew").exists() else [sys.executable, "-m", "keycrew.cli"]
)
BANNER_PASSWORD = re.compile(r"^\s+password: (\S+)$", re.MULTILINE)
BANNER_TOKEN = re.compile(r"^\s+token:\s+(\S+)$", re.MULTILINE)
# Variables of an enclosing `make` that would leak its command line into a nested one.
MAKE_VARIABLES = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MAKE_TERMOUT", "MAKE_TERMERR")


def _bytecode_cache() -> str:
    """A folder for the compiled modules of the processes started here, removed at exit."""
    if not _PYCACHE:
        _PYCACHE.append(tempfile.mkdtemp(prefix="keycrew-pycache-"))
        atexit.register(shutil.rmtree, _PYCACHE[0], ignore_errors=True)
    return _PYCACHE[0]


_PYCACHE: list[str] = []


def clean_env(data_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without KEYCREW_* settings or make's variables, plus ``extra``.

    Where PYTHONDONTWRITEBYTECODE is set (the CI machine's environment sets it), every `keycrew`
    process would compile keycrew's modules again, some 0.4 s of CPU each, a few hundred times per
    run: the processes started here share their compiled modules in a folder of the session's.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYCREW_") and k not in MAKE_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    if env.get("PYTHONDONTWRITEBYTECODE") and "PYTHONPYCACHEPREFIX" not in env:
        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = _bytecode_cache()
    if data_dir is not None:
        env["KEYCREW_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def keycrew(
    *args: str, env: Mapping[str, str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KEYCREW, *args],
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Running:
    """A started process whose stdout is read line by line as it comes."""

    proc: subprocess.Popen[str]
    stderr_path: Path
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @classmethod
    def start(cls, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, stderr_path: Path) -> Running:
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,  # its own process group: nothing is left behind
            )
        running = cls(proc, stderr_path)
        running._reader = threading.Thread(target=running._read, daemon=True)
        running._reader.start()
        return running

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def stdout(self) -> str:
        return "".join(self.lines)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of ``pattern`` in stdout, waiting for it as long as the process lives."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := regex.search(self.stdout):
                return match
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader drain what is left
                if match := regex.search(self.stdout):
                    return match
                raise AssertionError(f"exited {self.proc.returncode} before {pattern!r}\n{self.output()}")
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s\n{self.output()}")

    def wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode} before serving\n{self.output()}")
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} did not answer within {timeout} s\n{self.output()}")

    def terminate(self, pid: int | None = None, timeout: float = 15) -> int:
        """SIGTERM to ``pid`` (default: the process started), then its exit code."""
        os.kill(pid or self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self._reader is not None:
                self._reader.join(timeout=5)

    def kill_group(self) -> None:
        """Make sure nothing started here outlives the test."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, children first (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found + [d for child in found for d in descendants(child)]


def find_process(root: int, *words: str) -> int:
    """The first process below ``root`` whose command line has all of ``words``."""
    for pid in descendants(root):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if all(any(word in arg for arg in argv) for word in words):
            return pid
    raise AssertionError(f"no process {' '.join(words)!r} below {root}")
