"""A child process with asyncio streams for its pipes, started cheaply from a large server process.

uvloop starts children with fork(), which copies the page tables of the whole server (about 5 ms
for a 100 MB process, on every git request); subprocess.Popen uses vfork() and takes a fraction
of a millisecond. So the child is started with Popen and its pipes are handed to the event loop;
its exit is watched through a pidfd (Linux), or a worker thread elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import IO


class Child:
    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdin: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        exited: asyncio.Future[int],
    ) -> None:
        self.popen = popen
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._exited = exited

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        """SIGKILL, unless it has already been reaped (its pid may then belong to another)."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()


class _PipeEnd:
    """One end of a child's pipe, owned by the event loop's transport from now on.

    The fd is a duplicate, and the Popen's own file object is closed at once, so exactly one
    party closes each fd. That matters in a threaded server: uvloop's transports close the fd
    themselves (libuv) and then call the pipe object's close() again, which on a real file object
    closes the same number a second time; by then another thread (a SQLite connection in the
    threadpool, say) may have been given that number, and loses its file. So here close() closes
    only under asyncio's own loop, whose transports close through the pipe object.
    """

    def __init__(self, file: IO[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._fd: int | None = os.dup(file.fileno())
        file.close()
        self._loop_closes = type(loop).__module__.startswith("uvloop")

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("I/O operation on closed pipe")
        return self._fd

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and not self._loop_closes:
            os.close(fd)


def _watch_exit(loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    exited: asyncio.Future[int] = loop.create_future()
    try:
        pidfd = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):
        return asyncio.ensure_future(loop.run_in_executor(None, popen.wait))

    def ready() -> None:
        loop.remove_reader(pidfd)
        os.close(pidfd)
        if not exited.done():
            exited.set_result(popen.wait())  # it has exited: this only reaps it

    loop.add_reader(pidfd, ready)
    return exited


async def spawn(argv: Sequence[str], env: Mapping[str, str], *, limit: int = 2**16) -> Child:
    """Start ``argv`` with pipes on stdin, stdout and stderr."""
    loop = asyncio.get_running_loop()
    popen = subprocess.Popen(  # noqa: S603 (the caller's fixed command)
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        close_fds=True,
    )
    assert popen.stdin is not None
    assert popen.stdout is not None
    assert popen.stderr is not None
    try:
        stdout = asyncio.StreamReader(limit=limit, loop=loop)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stdout, loop=loop), _PipeEnd(popen.stdout, loop)
        )
        stderr = asyncio.StreamReader(limit=limit, loop=loop)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stderr, loop=loop), _PipeEnd(popen.stderr, loop)
        )
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), _PipeEnd(popen.stdin, loop)
        )
        stdin = asyncio.StreamWriter(transport, protocol, None, loop)
    except BaseException:
        popen.kill()
        popen.wait()
        raise
    return Child(popen, stdin, stdout, stderr, _watch_exit(loop, popen))
