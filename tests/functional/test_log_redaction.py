"""Token values never reach the access log or pagination links, however the parameter is spelled
(issue 10, item 15).

The access log of the live server (uvicorn.access, filtered by keycrew's RedactTokens) is captured
around each request; tests/support/hygiene.py checks the whole session's log as well.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from keycrew.infra.redaction import credential_parameter, redact
from tests.support.live import Factory, LiveServer


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextmanager
def access_log() -> Iterator[Captured]:
    logger = logging.getLogger("uvicorn.access")
    handler = Captured()
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def get_raw(server: LiveServer, target: str) -> http.client.HTTPResponse:
    """GET ``target`` byte for byte (requests would normalise %6F to o in the URL)."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def logged(server: LiveServer, query: str) -> tuple[int, str]:
    """GET /api/v4/user?<query> as given: its status and the access-log lines."""
    with access_log() as log:
        response = get_raw(server, f"/api/v4/user?{query}")
    return response.status, "\n".join(log.lines)


@pytest.mark.parametrize(
    "name",
    [
        "private_token",
        "private_t%6Fken",
        "private%5Ftoken",
        "%70rivate_token",
        "PRIVATE_TOKEN",
        "Private_T%6Fken",
        "private_t%256Fken",
        "access_t%6Fken",
        "access_token",
        "job_token",
        "token",
    ],
)
def test_the_access_log_never_shows_a_token(server: LiveServer, factory: Factory, name: str) -> None:
    user_id = server.root("GET", "/user").json()["id"]
    token = factory.token(user_id, ["read_user"])
    status, lines = logged(server, f"a=1&{name}={token}&b=2")
    assert "/api/v4/user?" in lines, "the request was logged"
    assert token not in lines
    assert "[FILTERED]" in lines
    assert "a=1" in lines
    assert "b=2" in lines
    if name in ("private_token", "access_token"):
        assert status == 200  # the server read the token: the redaction hid a live credential


def test_the_root_token_is_hidden_under_an_encoded_name(server: LiveServer) -> None:
    status, lines = logged(server, f"private_t%6Fken={server.root_token}")
    assert status in (200, 401)
    assert "/api/v4/user?" in lines
    assert server.root_token not in lines


def test_pagination_links_never_carry_a_credential(server: LiveServer, factory: Factory) -> None:
    for _ in range(2):
        factory.group()
    token = server.root_token
    for name in ("private_token", "private_t%6Fken", "access_token"):
        response = get_raw(server, f"/api/v4/groups?{name}={token}&per_page=1&search=")
        assert response.status == 200
        link = response.headers["Link"]
        assert 'rel="next"' in link
        assert token not in link
        assert "private_token" not in link
        assert "access_token" not in link
        assert "search=" in link  # other parameters are kept
        assert token not in (response.headers.get("X-Next-Page") or "")


def test_credential_parameters() -> None:
    for name in (
        "private_token",
        "PRIVATE_TOKEN",
        "private_t%6Fken",
        "private_t%256Fken",
        "job_token",
        "token",
    ):
        assert credential_parameter(name), name
    for name in ("page", "per_page", "search", "token_id", "tokens"):
        assert not credential_parameter(name), name
    line = '127.0.0.1:1 - "GET /api/v4/user?page=2&private_t%6Fken=glpat-x&job_token=y HTTP/1.1" 200'
    assert redact(line) == (
        '127.0.0.1:1 - "GET /api/v4/user?page=2&private_t%6Fken=[FILTERED]&job_token=[FILTERED] HTTP/1.1" 200'
    )
