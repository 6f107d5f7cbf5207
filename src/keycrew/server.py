"""The uvicorn factory: each worker process builds its own runtime from the environment.

``keycrew serve`` runs uvicorn with ``HTTP_PROTOCOL`` below: httptools' parser, as uvicorn's
default, with a cap on the request head (request line and headers, ``KEYCREW_HTTP_MAX_HEADER_SIZE``)
that httptools lacks; a longer head is answered 431 and the connection closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from keycrew.app import asgi
from keycrew.bootstrap import build
from keycrew.config import Settings
from keycrew.infra.memory import limit_malloc_arenas

HTTP_PROTOCOL = "keycrew.server:HeadLimitedHttpTools"
DEFAULT_MAX_HEAD = Settings.model_fields["http_max_header_size"].default


class HeadTooLarge(Exception):
    """The request head grew past the cap."""


class HeadLimitedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head longer than ``max_head`` bytes.

    The head is measured twice: exactly, as the parser hands out the URL and each header; and by
    the bytes received while it is incomplete, which bounds a single header that never ends (the
    parser buffers a header until its end).
    """

    max_head: int = DEFAULT_MAX_HEAD

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_head = True
        self._head_received = 0
        self._head_parsed = 0
        self._head_refused = False

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_received += len(data)
        super().data_received(data)
        if self._in_head and self._head_received > self.max_head and not self.transport.is_closing():
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_parsed = 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_received = True, 0

    def _count(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > self.max_head:
            self._head_refused = True
            raise HeadTooLarge  # the parser stops; uvicorn answers through send_400_response

    def send_400_response(self, msg: str) -> None:
        if self._head_refused:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        message = b"Request header fields too large"
        self.transport.write(
            b"".join(
                [
                    STATUS_LINE[431],
                    b"content-type: text/plain; charset=utf-8\r\n",
                    b"content-length: %d\r\n" % len(message),
                    b"connection: close\r\n\r\n",
                    message,
                ]
            )
        )
        self.transport.close()


def application() -> Any:
    limit_malloc_arenas()  # before the threadpool's threads allocate
    settings = Settings()
    HeadLimitedHttpTools.max_head = settings.http_max_header_size
    return asgi(build(settings))
