"""A background loop for the workers that drain a queue table (e-mail, webhook deliveries).

A daemon thread runs ``round`` until stopped: again at once while the round says more is waiting,
otherwise after ``poll_seconds`` or as soon as ``wake`` is called (after a commit that queued work
in this process). A round that raises is reported to ``failed`` and tried again next time (the
database may be away for a while).
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class PollingLoop:
    def __init__(
        self,
        name: str,
        round: Callable[[], bool],
        *,
        poll_seconds: Callable[[], float],
        join_timeout: float,
        failed: Callable[[Exception], None],
    ) -> None:
        self.name = name
        self.round = round
        self.poll_seconds = poll_seconds
        self.join_timeout = join_timeout
        self.failed = failed
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self.join_timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                if self.round() and not self._stop.is_set():
                    continue  # more is waiting: no pause between full rounds
            except Exception as exc:
                self.failed(exc)
            self._wake.wait(self.poll_seconds())
