"""The live-server fixtures: a pytest plugin that tests/conftest.py loads for the whole suite.

None of them starts anything unless a test asks for it: the unit tests (tests/unit/) see them but
never start a server, and this module imports the live-server machinery (keycrew's app,
python-gitlab, uvicorn) only when a fixture that needs it runs.

- `token_hygiene` (session): records every token value and log line of the session and checks them
  at its end (tests/support/hygiene.py). tests/functional/conftest.py and tests/browser/conftest.py
  make it autouse for their tests; `server` depends on it.
- `server` (session, one per backend): a live keycrew shared by every test of that backend; its
  database is checked for token values when it stops, at the end of the session.
- `smtp_sink` (session): a real SMTP server (aiosmtpd); the live servers deliver e-mail to it.
- `gl`: python-gitlab as root. `factory`: creates users, groups, projects and tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.backends import BACKENDS

if TYPE_CHECKING:
    import gitlab

    from tests.support.live import Factory, LiveServer
    from tests.support.mail import MailSink

# What the token-hygiene check covered, for the end-of-run summary.
_HYGIENE_SUMMARY: list[str] = []


@pytest.fixture(scope="session")
def token_hygiene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Records for the whole session, then checks that no token value was logged (at its teardown,
    after every test of the session whatever their order)."""
    from tests.support import hygiene

    with hygiene.recording(tmp_path_factory.mktemp("logs") / "keycrew.log"):
        yield
        hygiene.check_log()
        _HYGIENE_SUMMARY.append(hygiene.summary())


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[MailSink]:
    """A real SMTP server for the session; the session's live servers deliver their e-mail to it."""
    from tests.support.live import free_port
    from tests.support.mail import MailSink

    sink = MailSink(free_port()).start()
    try:
        yield sink
    finally:
        sink.stop()


class _Servers:
    """The session's live servers by backend, each started on first use and kept to the end."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory, smtp_sink: MailSink) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.smtp_sink = smtp_sink
        self.running: dict[str, tuple[LiveServer, Iterator[LiveServer]]] = {}

    def get(self, backend: str) -> LiveServer:
        if backend not in self.running:
            from tests.support.live import start_server

            nodes = start_server(
                backend,
                self.tmp_path_factory.mktemp(f"keycrew-{backend}"),
                smtp_host="127.0.0.1",
                smtp_port=self.smtp_sink.port,
            )
            self.running[backend] = (next(nodes), nodes)
        return self.running[backend][0]


@pytest.fixture(scope="session")
def _servers(
    tmp_path_factory: pytest.TempPathFactory, token_hygiene: None, smtp_sink: MailSink
) -> Iterator[_Servers]:
    """Holds the `server` of each backend for the whole session, then checks and stops them.

    `server` itself cannot hold them: pytest finishes a parametrized session fixture whenever the
    next test wants another parameter, and pytest-xdist's `--dist loadfile` hands a worker one file
    after another, each running its sqlite tests and then its postgresql ones: the servers would
    restart twice per file (about 2.5 s each time, some five minutes over the suite).
    """
    from tests.support import hygiene

    servers = _Servers(tmp_path_factory, smtp_sink)
    try:
        yield servers
    finally:
        with contextlib.ExitStack() as stack:
            for live, nodes in reversed(servers.running.values()):  # checked in start order
                stack.callback(nodes.close)
                stack.callback(hygiene.check_server, live)


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest, _servers: _Servers) -> LiveServer:
    """One live keycrew per backend for the whole session; tests use unique names (uid()).
    When the session ends, after every test that used it, its database is checked for token
    values. Its e-mail goes to the session's ``smtp_sink``."""
    return _servers.get(request.param)


@pytest.fixture
def gl(server: LiveServer) -> gitlab.Gitlab:
    """python-gitlab as root."""
    return server.gl()


@pytest.fixture(autouse=True)
def _reset_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Undo a test's moves of a server's clock; touches only a server the test already uses."""
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").clock.reset()


@pytest.fixture
def factory(server: LiveServer) -> Factory:
    from tests.support.live import Factory

    return Factory(server)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _HYGIENE_SUMMARY:
        terminalreporter.write_line(line)
