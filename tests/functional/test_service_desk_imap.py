"""Service Desk over IMAP (GitLab's mail_room way): a live server polls a private Dovecot.

Debian's Dovecot runs as the current user (tests/support/dovecot.py); each backend's server reads a
mailbox of its own over implicit TLS, trusting the throwaway CA through
``KEYCREW_INCOMING_IMAP_CA_FILE``. Mail is delivered by APPENDing it, as a delivery agent would; the
tests watch the API for its effects and the mailbox for the flags the poller left. On PostgreSQL the
server reaches its database through a TCP proxy that the outage test cuts; on SQLite the outage is
an exclusive lock the test holds until the poller has deferred the message.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from keycrew.config import Settings
from keycrew.incoming.imap import ImapPoller, RoundReport
from keycrew.servicedesk.incoming import Receipt, receive
from tests.functional.test_db_outage import Proxy
from tests.support.backends import BACKENDS
from tests.support.dovecot import PASSWORD, USER, Dovecot
from tests.support.live import LiveServer, PgDatabase, start_server, uid
from tests.support.mail import MailSink

INCOMING = "incoming+%{key}@desk.example.com"
POLL = 0.3  # seconds between the server's polls
# Seconds SQLite waits for a lock (KEYCREW_DB_BUSY_TIMEOUT) before the poller gives up.
BUSY_TIMEOUT = 3.0
SEEN = "\\Seen"


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    server = Dovecot.start(tmp_path_factory.mktemp("dovecot"))
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Desk:
    server: LiveServer
    dovecot: Dovecot
    mailbox: str
    proxy: Proxy | None

    def imap_settings(self, **overrides: Any) -> Settings:
        """The server's settings with other IMAP settings (for a poller of the test's own)."""
        return self.server.runtime.settings.model_copy(update=overrides)


def _mailbox(dovecot: Dovecot, name: str) -> str:
    with dovecot.client(mailbox="") as imap:
        status, data = imap.create(name)
        assert status == "OK", data
    return name


@pytest.fixture(scope="module", params=BACKENDS)
def desk(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    dovecot: Dovecot,
    smtp_sink: MailSink,
) -> Iterator[Desk]:
    backend = request.param
    mailbox = _mailbox(dovecot, f"desk-{backend}-{uuid.uuid4().hex[:6]}")
    assert dovecot.certificate is not None
    settings: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_sink.port,
        "incoming_email_address": INCOMING,
        "incoming_imap_host": "127.0.0.1",
        "incoming_imap_port": dovecot.tls_port,
        "incoming_imap_ssl": True,
        "incoming_imap_ca_file": dovecot.certificate.cert_file,
        "incoming_imap_user": USER,
        "incoming_imap_password": PASSWORD,
        "incoming_imap_mailbox": mailbox,
        "incoming_imap_poll_interval": POLL,
        # The SQLite outage test waits it out: seconds, not the default 30.
        "db_busy_timeout": BUSY_TIMEOUT,
    }
    tmp = Path(tmp_path_factory.mktemp(f"imap-{backend}"))
    pg: PgDatabase | None = None
    proxy: Proxy | None = None
    url: str | None = None
    if backend == "postgresql":
        # The server reaches its database through a proxy the outage test cuts.
        pg = PgDatabase.create()
        parsed = make_url(pg.url)
        proxy = Proxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    nodes = start_server(backend, tmp, url=url, **settings)
    try:
        yield Desk(next(nodes), dovecot, mailbox, proxy)
    finally:
        nodes.close()
        if proxy is not None:
            proxy.close()
        if pg is not None:
            pg.drop()


# -- helpers ----------------------------------------------------------------------------------


def _service_desk(desk: Desk) -> tuple[dict[str, Any], str]:
    """A new project with Service Desk on, and its address."""
    server = desk.server
    project = server.root("POST", "/projects", json={"name": uid("desk")})
    assert project.status_code == 201, project.text
    updated = server.root("PUT", f"/projects/{project.json()['id']}", json={"service_desk_enabled": True})
    assert updated.status_code == 200, updated.text
    address = updated.json()["service_desk_address"]
    assert address, updated.json()
    assert address.endswith("@desk.example.com"), address
    return updated.json(), address


def _mail(to: str, subject: str, body: str, **headers: str) -> tuple[bytes, str]:
    """A message from an outsider to ``to``; its bytes and its Message-ID."""
    message = EmailMessage()
    message["From"] = f"Outsider <{uid('o')}@customer.example.org>"
    message["To"] = to
    message["Subject"] = subject
    message_id = make_msgid(domain="customer.example.org")
    message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message.as_bytes(), message_id


def _until(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``probe()``'s first truthy answer (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.1)


def _issues(desk: Desk, project_id: int) -> list[dict[str, Any]]:
    response = desk.server.root("GET", f"/projects/{project_id}/issues")
    assert response.status_code == 200, response.text
    return list(response.json())


def _notes(desk: Desk, project_id: int, iid: int) -> list[dict[str, Any]]:
    response = desk.server.root("GET", f"/projects/{project_id}/issues/{iid}/notes")
    assert response.status_code == 200, response.text
    return list(response.json())


def _seen(desk: Desk, message_id: str) -> set[str] | None:
    return desk.dovecot.wait_flags(message_id, lambda f: f is not None and SEEN in f, mailbox=desk.mailbox)


def _records(caplog: pytest.LogCaptureFixture, *words: str) -> list[logging.LogRecord]:
    return [
        r
        for r in list(caplog.records)
        if r.name.startswith("keycrew.incoming") and all(w in r.getMessage() for w in words)
    ]


def _assert_unseen(desk: Desk, message_id: str) -> None:
    flags = desk.dovecot.flags(message_id, desk.mailbox)
    assert flags is not None, "the message is gone"
    assert SEEN not in flags, flags


# -- tests ------------------------------------------------------------------------------------


def test_an_email_becomes_a_confidential_issue_by_support_bot_and_is_marked_seen(desk: Desk) -> None:
    project, address = _service_desk(desk)
    subject = f"Printer on fire {uid()}"
    raw, message_id = _mail(address, subject, "It smokes since this morning.")
    desk.dovecot.append(raw, desk.mailbox)

    issues = _until("issue", lambda: _issues(desk, project["id"]))
    assert len(issues) == 1
    issue = issues[0]
    assert issue["title"] == subject
    assert issue["confidential"] is True
    assert issue["author"]["username"] == "support-bot"
    assert "It smokes since this morning." in issue["description"]
    assert SEEN in (_seen(desk, message_id) or set())
    # Marked seen, not deleted (KEYCREW_INCOMING_IMAP_DELETE_AFTER_DELIVERY is off).
    assert desk.dovecot.flags(message_id, desk.mailbox) is not None


def test_a_reply_becomes_a_note_by_support_bot(desk: Desk) -> None:
    project, address = _service_desk(desk)
    raw, first_id = _mail(address, f"Question {uid()}", "How do I reset it?")
    desk.dovecot.append(raw, desk.mailbox)
    issue = _until("issue", lambda: _issues(desk, project["id"]))[0]
    _seen(desk, first_id)

    reply, reply_id = _mail(
        address, "Re: question", "Found it, thanks.", In_Reply_To=first_id, References=first_id
    )
    desk.dovecot.append(reply, desk.mailbox)
    notes = _until(
        "note",
        lambda: [n for n in _notes(desk, project["id"], issue["iid"]) if "Found it, thanks." in n["body"]],
    )
    assert notes[0]["author"]["username"] == "support-bot"
    assert SEEN in (_seen(desk, reply_id) or set())
    assert len(_issues(desk, project["id"])) == 1  # a note, not a second issue


def test_an_auto_reply_is_marked_seen_and_ignored(desk: Desk) -> None:
    project, address = _service_desk(desk)
    raw, message_id = _mail(address, "Out of office", "I am away.", Auto_Submitted="auto-replied")
    desk.dovecot.append(raw, desk.mailbox)
    assert SEEN in (_seen(desk, message_id) or set())
    # Seen only once handled: nothing was written for it.
    assert _issues(desk, project["id"]) == []


def test_the_database_down_leaves_the_message_unseen_until_it_is_back(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keycrew.incoming")
    project, address = _service_desk(desk)
    subject = f"While the database was away {uid()}"
    raw, message_id = _mail(address, subject, "Please keep this one.")

    deferred = ("left unread", "skipped: database unavailable")
    if desk.proxy is not None:
        desk.proxy.cut()
        try:
            caplog.clear()
            desk.dovecot.append(raw, desk.mailbox)
            _until("deferral", lambda: any(_records(caplog, word) for word in deferred), timeout=60)
            _assert_unseen(desk, message_id)
        finally:
            desk.proxy.restore()
    else:
        database = make_url(desk.server.runtime.settings.sqlalchemy_url).database
        assert database
        holder = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            caplog.clear()
            desk.dovecot.append(raw, desk.mailbox)
            # The poller waits out SQLite's busy timeout (BUSY_TIMEOUT), then leaves the message unread.
            _until("deferral", lambda: any(_records(caplog, word) for word in deferred), timeout=90)
            _assert_unseen(desk, message_id)
        finally:
            holder.execute("ROLLBACK")
            holder.close()

    assert SEEN in (desk.dovecot.wait_flags(message_id, lambda f: f and SEEN in f, 60, desk.mailbox) or set())
    issues = _until("issue", lambda: _issues(desk, project["id"]))
    assert [i["title"] for i in issues] == [subject]


def test_delete_after_delivery_expunges_the_handled_message(desk: Desk) -> None:
    mailbox = _mailbox(desk.dovecot, f"desk-delete-{uuid.uuid4().hex[:6]}")
    poller = ImapPoller(
        desk.server.runtime.sessions,
        desk.imap_settings(incoming_imap_mailbox=mailbox, incoming_imap_delete_after_delivery=True),
        desk.server.clock,
    )
    project, address = _service_desk(desk)
    raw, message_id = _mail(address, f"Delete me {uid()}", "Once read.")
    desk.dovecot.append(raw, mailbox)
    assert desk.dovecot.flags(message_id, mailbox) is not None

    report = poller.run_once()
    assert report.handled == 1, report
    assert desk.dovecot.flags(message_id, mailbox) is None  # deleted and expunged
    assert len(_issues(desk, project["id"])) == 1


def test_a_wrong_password_is_logged_without_it_and_retried(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keycrew.incoming")
    wrong = f"wrong-imap-password-{uuid.uuid4().hex}"
    poller = ImapPoller(
        desk.server.runtime.sessions,
        desk.imap_settings(
            incoming_imap_port=desk.dovecot.port,  # STARTTLS this time
            incoming_imap_ssl=False,
            incoming_imap_start_tls=True,
            incoming_imap_password=SecretStr(wrong),
            incoming_imap_poll_interval=0.05,
        ),
        desk.server.clock,
    )
    poller.start()
    try:
        failures = _until(
            "two failed logins",
            lambda: _records(caplog, "unreachable")[1:] and _records(caplog, "unreachable"),
        )
    finally:
        poller.stop()
    assert poller.failures >= 2
    assert poller.wait_seconds() > 0.05  # backing off
    messages = [r.getMessage() for r in caplog.records]
    assert any("AUTHENTICATIONFAILED" in m or "Authentication failed" in m for m in messages), messages
    assert all(wrong not in m for m in messages)
    assert all(wrong not in r.getMessage() for r in failures)


def test_a_certificate_not_trusted_is_refused(desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="keycrew.incoming")
    poller = ImapPoller(
        desk.server.runtime.sessions,
        desk.imap_settings(incoming_imap_ca_file=None, incoming_imap_mailbox="INBOX"),
        desk.server.clock,
    )
    poller.run_once()
    assert poller.failures == 1
    assert _records(caplog, "unreachable", "CERTIFICATE_VERIFY_FAILED")


def test_two_pollers_of_one_mailbox_never_take_a_message_twice(desk: Desk) -> None:
    """While one poller's round runs, another poller of the same mailbox (another worker or
    node) skips its round: the lock of the mailbox, not the \\Seen flag, keeps them apart."""
    mailbox = _mailbox(desk.dovecot, f"desk-two-{uuid.uuid4().hex[:6]}")
    settings = desk.imap_settings(incoming_imap_mailbox=mailbox)
    inside, release = threading.Event(), threading.Event()

    def held_receive(*args: Any, **kwargs: Any) -> Receipt:
        inside.set()
        assert release.wait(30)
        return receive(*args, **kwargs)  # the real Service Desk

    first = ImapPoller(desk.server.runtime.sessions, settings, desk.server.clock, receive=held_receive)
    second = ImapPoller(desk.server.runtime.sessions, settings, desk.server.clock)
    project, address = _service_desk(desk)
    raw, message_id = _mail(address, f"Only once {uid()}", "One issue, please.")
    desk.dovecot.append(raw, mailbox)

    reports: list[RoundReport] = []
    worker = threading.Thread(target=lambda: reports.append(first.run_once()))
    worker.start()
    try:
        assert inside.wait(30), "the first poller never reached the message"
        skipped = second.run_once()
        assert skipped.skipped, skipped
        assert skipped.handled == 0, skipped
    finally:
        release.set()
        worker.join(timeout=60)
    assert len(reports) == 1
    assert reports[0].handled == 1, reports
    assert second.run_once().handled == 0  # already \Seen
    assert SEEN in (desk.dovecot.flags(message_id, mailbox) or set())
    assert len(_issues(desk, project["id"])) == 1


def test_a_message_delivered_twice_opens_one_issue(desk: Desk) -> None:
    """Mail read again (a poll cut off after processing, before \\Seen; a redelivery) is known by
    its Message-ID: both copies are marked seen, one issue exists."""
    project, address = _service_desk(desk)
    raw, message_id = _mail(address, f"Twice {uid()}", "Sent once, delivered twice.")
    desk.dovecot.append(raw, desk.mailbox)
    _until("issue", lambda: _issues(desk, project["id"]))
    _seen(desk, message_id)
    desk.dovecot.append(raw, desk.mailbox)  # the same message again, unseen
    _until(
        "both copies seen",
        lambda: all(SEEN in f for f in _copies(desk, message_id)) and len(_copies(desk, message_id)) == 2,
    )
    assert len(_issues(desk, project["id"])) == 1


def _copies(desk: Desk, message_id: str) -> list[set[str]]:
    """The flags of every copy of ``message_id`` in the desk's mailbox."""
    with desk.dovecot.client(desk.mailbox) as imap:
        status, data = imap.uid("SEARCH", "HEADER", "Message-ID", message_id)
        assert status == "OK", data
        uids = data[0].split() if data and data[0] else []
        copies = []
        for message_uid in uids:
            status, parts = imap.uid("FETCH", message_uid, "(FLAGS)")
            assert status == "OK", parts
            text = b" ".join(p if isinstance(p, bytes) else p[0] for p in parts if p).decode()
            copies.append(set(text.split("FLAGS (", 1)[1].split(")", 1)[0].split()))
        return copies


def test_start_tls_and_ssl_together_are_refused() -> None:
    with pytest.raises(
        ValueError, match="KEYCREW_INCOMING_IMAP_START_TLS needs KEYCREW_INCOMING_IMAP_SSL=false"
    ):
        Settings(incoming_imap_host="imap.example.com", incoming_imap_ssl=True, incoming_imap_start_tls=True)
