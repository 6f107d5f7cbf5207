"""The live-server fixtures: a pytest plugin that tests/conftest.py loads for the whole suite.

None of them starts anything unless a test asks for it: the unit tests (tests/unit/) see them but
never start a server, and this module imports the live-server machinery (keycrew's app,
python-gitlab, uvicorn) only when a fixture that needs it runs.

- `token_hygiene` (session): records every token value and log line of the session and checks them
  at its end (tests/support/hygiene.py). tests/functional/conftest.py and tests/browser/conftest.py
  make it autouse for their tests; `server` depends on it.
- `server` (session, one per backend): a live keycrew shared by every test of that backend; its
  database is checked for token values when it stops.
- `smtp_sink` (session): a real SMTP server (aiosmtpd); the live servers deliver e-mail to it.
- `gl`: python-gitlab as root. `factory`: creates users, groups, projects and tokens.
"""

from __future__ import annotations

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


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    token_hygiene: None,
    smtp_sink: MailSink,
) -> Iterator[LiveServer]:
    """One live keycrew per backend for the whole session; tests use unique names (uid()).
    When it stops, after every test that used it, its database is checked for token values.
    Its e-mail goes to the session's ``smtp_sink``."""
    from tests.support import hygiene
    from tests.support.live import start_server

    nodes = start_server(
        request.param,
        tmp_path_factory.mktemp(f"keycrew-{request.param}"),
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
    )
    live = next(nodes)
    try:
        yield live
        hygiene.check_server(live)
    finally:
        nodes.close()


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
