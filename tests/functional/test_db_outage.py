"""A database outage answers 503 with Retry-After, and the server recovers on its own (issue 10,
item 4).

PostgreSQL only, and never the machine's PostgreSQL itself: a server of its own reaches its
database through a TCP proxy on 127.0.0.1 that the test cuts (every connection dropped, new ones
closed at once, as during a restart) and restores.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.backends import PG_ENABLED
from tests.support.live import LiveServer, PgDatabase, start_server

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_ENABLED, reason="PostgreSQL tests need KEYCREW_TEST_POSTGRES=1"),
]

UNAVAILABLE = {"message": "503 Service Unavailable"}


class Proxy:
    """A TCP proxy from 127.0.0.1:<port> to ``upstream``, which ``cut`` takes down and ``restore``
    brings back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.down = False
        self.lock = threading.Lock()
        self.open: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.open += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.down = True
        with self.lock:
            doomed, self.open = self.open, []
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self.down = False

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Proxy]]:
    pg = PgDatabase.create()
    url = make_url(pg.url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    nodes = start_server("postgresql", Path(tmp_path_factory.mktemp("keycrew-outage")), url=through)
    try:
        yield next(nodes), proxy
    finally:
        nodes.close()
        proxy.close()
        pg.drop()


def _assert_unavailable(response: object) -> None:
    import requests

    assert isinstance(response, requests.Response)
    assert response.status_code == 503, response.text
    assert response.json() == UNAVAILABLE
    assert int(response.headers["Retry-After"]) > 0


def test_an_outage_answers_503_and_the_server_recovers(proxied: tuple[LiveServer, Proxy]) -> None:
    server, proxy = proxied
    group = server.root("POST", "/groups", json={"name": "outage", "path": "outage"})
    assert group.status_code == 201, group.text
    assert server.root("GET", "/projects").status_code == 200
    proxy.cut()
    try:
        for _ in range(3):
            _assert_unavailable(server.root("GET", "/projects"))
            _assert_unavailable(server.root("GET", f"/groups/{group.json()['id']}"))
            _assert_unavailable(server.root("POST", "/projects", json={"name": "during"}))
            _assert_unavailable(
                server.root("PUT", f"/groups/{group.json()['id']}", json={"description": "x"})
            )
            # An unknown token needs the database too.
            _assert_unavailable(server.request("GET", "/user", token="glpat-not-a-known-token-000000"))
    finally:
        proxy.restore()
    # Reads are retried once on a fresh connection: the first one after the outage succeeds.
    assert server.root("GET", "/projects").status_code == 200
    assert server.root("GET", f"/groups/{group.json()['id']}").status_code == 200
    # Writes are not retried; they work again at the latest on the second try.
    statuses = []
    for attempt in range(2):
        created = server.root("POST", "/projects", json={"name": f"after-{attempt}"})
        statuses.append(created.status_code)
        if created.status_code == 201:
            break
        _assert_unavailable(created)
    assert statuses[-1] == 201, statuses


def test_cut_connections_are_replaced_without_a_restart(proxied: tuple[LiveServer, Proxy]) -> None:
    server, proxy = proxied
    for _ in range(3):
        assert server.root("GET", "/projects").status_code == 200
        proxy.cut()
        proxy.restore()
        # Every pooled connection died; a read still answers at once.
        assert server.root("GET", "/projects").status_code == 200
        assert server.root("GET", "/user").status_code == 200
