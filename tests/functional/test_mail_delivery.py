"""E-mail out: the outbox delivered over SMTP to real SMTP servers (aiosmtpd), with retries.

The session's live server delivers to the session's ``smtp_sink`` (its worker runs in the server).
The other tests use a server of their own without SMTP settings (so that no worker of its own
runs) and drive ``DeliveryWorker`` rounds against its database with a clock they set by hand,
sending to SMTP servers they start: STARTTLS with a login, implicit TLS, a server that refuses
everything for a while, one that is down for a while, one that refuses a recipient for good, and
two workers sharing one database.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import delete, select

from keycrew.clock import FixedClock
from keycrew.config import Settings
from keycrew.context import Actor, Ctx
from keycrew.mail.delivery import CLAIM, MAX_ATTEMPTS, ROUND_SIZE, DeliveryWorker, backoff
from keycrew.mail.render import environment, template_names
from keycrew.outbox.models import FAILED, PENDING, SENT, OutboxMessage
from keycrew.outbox.service import enqueue
from tests.support.backends import BACKENDS
from tests.support.live import LiveServer, free_port, start_server, uid
from tests.support.mail import MailSink, _Handler
from tests.support.processes import clean_env, keycrew

SMTP_PASSWORD = "smtp-secret-password-1"
START = dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.UTC)


# -- helpers ----------------------------------------------------------------------------------


def _address() -> str:
    return f"{uid('m')}@example.com"


def _enqueue(server: LiveServer, clock: Any, to: str, **context: Any) -> int:
    """One committed outbox message (the sample template) to ``to``; its id."""
    with server.runtime.sessions() as db, db.begin():
        ctx = Ctx(db, Actor.system(), server.runtime.instance, clock)
        row = enqueue(
            ctx,
            to_address=to,
            subject=context.pop("subject", "keycrew test e-mail"),
            template=context.pop("template", "test_email"),
            context=context,
        )
        assert row is not None
        db.flush()
        return row.id


def _row(server: LiveServer, message_id: int) -> OutboxMessage:
    with server.runtime.sessions() as db:
        row = db.get(OutboxMessage, message_id)
        assert row is not None
        db.expunge(row)
        return row


def _settled(server: LiveServer, message_id: int, timeout: float = 15.0) -> OutboxMessage:
    """The message once no delivery holds it (the worker released its claim)."""
    deadline = time.monotonic() + timeout
    while True:
        row = _row(server, message_id)
        if (row.claimed_by is None and row.status != PENDING) or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


@pytest.fixture(scope="module", params=BACKENDS)
def quiet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server without SMTP settings: its messages stay in the outbox (no worker runs)."""
    nodes = start_server(request.param, tmp_path_factory.mktemp(f"mail-{request.param}"), smtp_host="")
    live = next(nodes)
    try:
        yield live
    finally:
        nodes.close()


@pytest.fixture
def outbox(quiet: LiveServer) -> LiveServer:
    """The quiet server with an empty outbox (its tests run one after the other in this module)."""
    with quiet.runtime.sessions() as db, db.begin():
        db.execute(delete(OutboxMessage))
    return quiet


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


def _worker(server: LiveServer, clock: FixedClock, port: int, **settings: Any) -> DeliveryWorker:
    configured = Settings(
        data_dir=server.data_dir,
        external_url=server.url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_timeout=5,
        **settings,
    )
    return DeliveryWorker(server.runtime.sessions, configured, clock, poll_seconds=0.05)


@pytest.fixture
def sink() -> Iterator[MailSink]:
    started = MailSink(free_port()).start()
    try:
        yield started
    finally:
        started.stop()


@dataclass
class Certificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (the tests trust it through ``smtp_ca_file``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keycrew test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Certificate(cert_file, key_file)


@dataclass
class Logins:
    """An aiosmtpd authenticator that accepts one user and password, and remembers who logged in."""

    user: str
    password: str
    seen: list[str] = field(default_factory=list)

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        if ok:
            self.seen.append(self.user)
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers: 235, or 535 when refused


class RefusingRecipients(_Handler):
    """Accepts mail, but refuses recipients whose address starts with "nobody" for good."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.startswith("nobody"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def _controller_sink(handler: _Handler, **kwargs: Any) -> tuple[Controller, _Handler, int]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller, handler, port


def _to(handler: _Handler, address: str) -> list[Any]:
    with handler.lock:
        return [m for m in handler.received if address in m.rcpt_tos]


# -- the live server's worker -----------------------------------------------------------------


def test_committed_message_is_delivered_and_a_rolled_back_one_never(
    server: LiveServer, smtp_sink: MailSink
) -> None:
    to = _address()

    class Abandon(Exception):
        pass

    def abandoned() -> None:
        with server.runtime.sessions() as db, db.begin():
            ctx = server.runtime.ctx(db, Actor.system())
            enqueue(ctx, to_address=to, subject="rolled back", template="test_email", context={})
            db.flush()
            raise Abandon

    with pytest.raises(Abandon):
        abandoned()
    note = "Tokens <b>& friends</b>"
    message_id = _enqueue(server, server.clock, to, subject="committed", name="Ada", note=note)

    received = smtp_sink.wait_for(to=to, count=1)
    assert [m.subject for m in received] == ["committed"]
    message = received[0].message
    assert received[0].mail_from == f"keycrew@{server.runtime.settings.host_name}"
    assert message["From"] == f"keycrew <keycrew@{server.runtime.settings.host_name}>"
    assert message["To"] == to
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].startswith(f"<outbox-{message_id}-")
    assert message["Date"]
    assert message.get_content_type() == "multipart/alternative"
    text, html = received[0].body("plain"), received[0].body("html")
    assert "Hello Ada," in text
    assert note in text
    assert "Tokens &lt;b&gt;&amp; friends&lt;/b&gt;" in html
    assert "<b>" not in html
    host = server.runtime.settings.host_name
    footer = f"You're receiving this e-mail because of your account on {host}."
    assert footer in text
    assert footer in html
    assert f"{server.url}/-/profile/notifications" in html
    row = _settled(server, message_id)  # the worker marks it just after the server accepted it
    assert (row.status, row.attempts, row.claimed_by) == (SENT, 0, None)
    assert row.sent_at is not None


# -- delivery rounds against a server of our own ----------------------------------------------


def test_without_smtp_settings_messages_stay_in_the_outbox(outbox: LiveServer) -> None:
    assert not outbox.runtime.settings.smtp_host
    # No e-mail delivery worker without SMTP settings.
    assert not any(isinstance(s, DeliveryWorker) for s in outbox.runtime.services)
    message_id = _enqueue(outbox, outbox.clock, _address())
    row = _row(outbox, message_id)
    assert (row.status, row.attempts, row.sent_at) == (PENDING, 0, None)


def test_a_worker_wakes_when_a_message_is_committed(outbox: LiveServer, sink: MailSink) -> None:
    worker = _worker(outbox, FixedClock(START), sink.port)
    worker.poll_seconds = 3600  # only a commit wakes it
    worker.watch_commits()
    worker.start()
    try:
        to = _address()
        _enqueue(outbox, worker.clock, to)
        assert [m.subject for m in sink.wait_for(to=to)] == ["keycrew test e-mail"]
    finally:
        worker.stop()


def test_starttls_with_login(outbox: LiveServer, clock: FixedClock, certificate: Certificate) -> None:
    logins = Logins("mailer", SMTP_PASSWORD)
    controller, handler, port = _controller_sink(
        _Handler(),
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=logins,
        auth_require_tls=True,
    )
    try:
        to = _address()
        message_id = _enqueue(outbox, clock, to)
        # The server's certificate is verified: unknown CA, no delivery (retried later).
        report = _worker(outbox, clock, port, smtp_tls="starttls", smtp_user="mailer").run_once()
        assert (report.sent, report.retried) == (0, 1)
        assert "CERTIFICATE_VERIFY_FAILED" in (_row(outbox, message_id).last_error or "")
        # Trusted CA, wrong password: refused, retried later; the password is never shown.
        clock.advance(minutes=1)
        wrong = _worker(
            outbox,
            clock,
            port,
            smtp_tls="starttls",
            smtp_user="mailer",
            smtp_password="not-the-password",
            smtp_ca_file=certificate.cert_file,
        )
        assert wrong.run_once().retried == 1
        row = _row(outbox, message_id)
        assert row.attempts == 2
        assert "535" in (row.last_error or "")
        assert "not-the-password" not in (row.last_error or "")
        # Right settings: delivered over TLS after logging in.
        clock.advance(minutes=2)
        right = _worker(
            outbox,
            clock,
            port,
            smtp_tls="starttls",
            smtp_user="mailer",
            smtp_password=SMTP_PASSWORD,
            smtp_ca_file=certificate.cert_file,
        )
        assert right.run_once().sent == 1
        assert len(_to(handler, to)) == 1
        assert logins.seen == ["mailer"]
        assert _row(outbox, message_id).status == SENT
    finally:
        controller.stop()


def test_starttls_is_required_when_configured(outbox: LiveServer, clock: FixedClock) -> None:
    """A server that offers no STARTTLS gets nothing in clear text when TLS is asked for."""
    controller, handler, port = _controller_sink(_Handler())
    try:
        to = _address()
        message_id = _enqueue(outbox, clock, to)
        assert _worker(outbox, clock, port, smtp_tls="starttls").run_once().retried == 1
        assert "STARTTLS" in (_row(outbox, message_id).last_error or "")
        assert _to(handler, to) == []
    finally:
        controller.stop()


def test_implicit_tls(outbox: LiveServer, clock: FixedClock, certificate: Certificate) -> None:
    controller, handler, port = _controller_sink(_Handler(), ssl_context=certificate.server_context())
    try:
        to = _address()
        message_id = _enqueue(outbox, clock, to)
        worker = _worker(outbox, clock, port, smtp_tls="ssl", smtp_ca_file=certificate.cert_file)
        assert worker.run_once().sent == 1
        assert [m.subject for m in _to(handler, to)] == ["keycrew test e-mail"]
        assert _row(outbox, message_id).status == SENT
    finally:
        controller.stop()


def test_a_refusing_server_gets_the_messages_later_with_backoff(
    outbox: LiveServer, clock: FixedClock, sink: MailSink
) -> None:
    addresses = [_address() for _ in range(3)]
    ids = [_enqueue(outbox, clock, to) for to in addresses]
    worker = _worker(outbox, clock, sink.port)
    sink.refuse("421 Service not available, try later")
    assert worker.run_once().retried == 3
    for message_id in ids:
        row = _row(outbox, message_id)
        assert (row.status, row.attempts, row.next_attempt_at) == (PENDING, 1, START + backoff(1))
        assert "421" in (row.last_error or "")
    assert worker.run_once().touched == 0  # not due yet
    clock.advance(minutes=1)
    assert worker.run_once().retried == 3
    assert _row(outbox, ids[0]).next_attempt_at == clock.now() + dt.timedelta(minutes=2)
    sink.refuse(None)
    clock.advance(minutes=1)
    assert worker.run_once().touched == 0  # the second backoff is two minutes
    clock.advance(minutes=1)
    assert worker.run_once().sent == 3
    assert worker.run_once().touched == 0
    for to, message_id in zip(addresses, ids, strict=True):
        assert len(sink.messages(to)) == 1  # none lost, none twice
        row = _row(outbox, message_id)
        assert (row.status, row.attempts) == (SENT, 2)


def test_a_server_down_for_a_while_loses_nothing(outbox: LiveServer, clock: FixedClock) -> None:
    port = free_port()  # nothing listens there yet
    addresses = [_address() for _ in range(5)]
    ids = [_enqueue(outbox, clock, to) for to in addresses]
    worker = _worker(outbox, clock, port)
    for minutes in (1, 2, 4):  # three rounds while the server is down
        assert worker.run_once().retried == 5
        clock.advance(minutes=minutes)
    row = _row(outbox, ids[-1])
    assert (row.status, row.attempts) == (PENDING, 3)
    assert "Connection" in (row.last_error or "") or "refused" in (row.last_error or "")
    sink = MailSink(port).start()
    try:
        assert worker.run_once().sent == 5
        for to in addresses:
            assert len(sink.messages(to)) == 1
        assert all(_row(outbox, i).status == SENT for i in ids)
    finally:
        sink.stop()


def test_a_permanent_refusal_fails_at_once(outbox: LiveServer, clock: FixedClock) -> None:
    controller, handler, port = _controller_sink(RefusingRecipients())
    try:
        refused = f"nobody-{uid()}@example.com"
        good = _address()
        refused_id, good_id = _enqueue(outbox, clock, refused), _enqueue(outbox, clock, good)
        report = _worker(outbox, clock, port).run_once()
        assert (report.sent, report.failed) == (1, 1)
        row = _row(outbox, refused_id)
        assert (row.status, row.attempts) == (FAILED, 1)
        assert "550" in (row.last_error or "")
        assert len(_to(handler, good)) == 1
        assert _row(outbox, good_id).status == SENT
    finally:
        controller.stop()


def test_a_message_whose_template_fails_is_given_up(
    outbox: LiveServer, clock: FixedClock, sink: MailSink
) -> None:
    missing = _enqueue(outbox, clock, _address(), template=f"no_such_template_{uid()}")
    assert _worker(outbox, clock, sink.port).run_once().failed == 1
    row = _row(outbox, missing)
    assert row.status == FAILED
    assert "no_such_template" in (row.last_error or "")
    assert sink.messages(row.to_address) == []


def test_the_last_attempt_gives_up(outbox: LiveServer, clock: FixedClock) -> None:
    message_id = _enqueue(outbox, clock, _address())
    with outbox.runtime.sessions() as db, db.begin():
        row = db.get(OutboxMessage, message_id)
        assert row is not None
        row.attempts = MAX_ATTEMPTS - 1
    report = _worker(outbox, clock, free_port()).run_once()
    assert report.failed == 1
    assert (_row(outbox, message_id).status, _row(outbox, message_id).attempts) == (FAILED, MAX_ATTEMPTS)


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [backoff(n) for n in (1, 2, 3, 6, 7, 25)] == [
        dt.timedelta(minutes=m) for m in (1, 2, 4, 32, 60, 60)
    ]


def test_a_lapsed_claim_is_taken_over(outbox: LiveServer, clock: FixedClock, sink: MailSink) -> None:
    """A worker that died holding a claim: the message goes out once the claim lapses."""
    to = _address()
    message_id = _enqueue(outbox, clock, to)
    with outbox.runtime.sessions() as db, db.begin():
        row = db.get(OutboxMessage, message_id)
        assert row is not None
        row.claimed_by, row.claimed_until = "dead-node", clock.now() + CLAIM
    worker = _worker(outbox, clock, sink.port)
    assert worker.run_once().touched == 0  # claimed by someone else
    clock.advance(seconds=CLAIM.total_seconds() + 1)
    assert worker.run_once().sent == 1
    assert len(sink.messages(to)) == 1


def test_two_workers_never_send_one_message_twice(outbox: LiveServer, sink: MailSink) -> None:
    clock = FixedClock(START)
    to = _address()
    with outbox.runtime.sessions() as db, db.begin():
        ctx = Ctx(db, Actor.system(), outbox.runtime.instance, clock)
        for n in range(50):
            enqueue(ctx, to_address=to, subject=f"message {n}", template="test_email", context={})
    workers = [_worker(outbox, clock, sink.port), _worker(outbox, clock, sink.port)]
    for worker in workers:
        worker.start()
    try:
        received = sink.wait_for(to=to, count=50)
    finally:
        for worker in workers:
            worker.stop()
    received = sink.messages(to)  # after both stopped: every message they sent
    assert sorted(m.subject for m in received) == sorted(f"message {n}" for n in range(50))
    assert len({m.message["Message-ID"] for m in received}) == 50
    with outbox.runtime.sessions() as db:
        rows = list(db.scalars(select(OutboxMessage).where(OutboxMessage.to_address == to)))
    assert len(rows) == 50
    assert {r.status for r in rows} == {SENT}
    assert {r.claimed_by for r in rows} == {None}


# -- keycrew mail test ------------------------------------------------------------------------


def _cli_env(server: LiveServer, **extra: str) -> dict[str, str]:
    return clean_env(
        server.data_dir,
        KEYCREW_DATABASE_URL=server.runtime.settings.database_url,
        KEYCREW_EXTERNAL_URL=server.url,
        **extra,
    )


@pytest.mark.slow
def test_the_mail_test_command_sends_at_once_or_says_why_not(outbox: LiveServer, sink: MailSink) -> None:
    to = _address()
    smtp = {"KEYCREW_SMTP_HOST": "127.0.0.1", "KEYCREW_SMTP_PORT": str(sink.port)}
    other = _enqueue(outbox, FixedClock(START), _address())  # due too, but not the command's to send

    result = keycrew("mail", "test", to, env=_cli_env(outbox, **smtp))
    assert result.returncode == 0, result.stderr
    assert f"to {to} through 127.0.0.1:{sink.port} (none)" in result.stdout
    assert [m.subject for m in sink.messages(to)] == ["keycrew test e-mail"]
    assert "Sent with `keycrew mail test`." in sink.messages(to)[0].body("plain")
    assert _row(outbox, other).status == PENDING

    sink.refuse("421 Try again later")
    refused = keycrew("mail", "test", to, env=_cli_env(outbox, **smtp))
    assert refused.returncode == 1
    assert "421 Try again later" in refused.stderr
    assert "stays in the outbox" in refused.stderr

    unconfigured = keycrew("mail", "test", to, env=_cli_env(outbox))
    assert unconfigured.returncode == 1
    assert "outgoing e-mail is not configured" in unconfigured.stderr
    bad = keycrew("mail", "test", "not an address", env=_cli_env(outbox, **smtp))
    assert bad.returncode == 2
    assert len(sink.messages(to)) == 1


def test_a_header_cannot_be_smuggled_in(outbox: LiveServer, clock: FixedClock, sink: MailSink) -> None:
    to = _address()
    message_id = _enqueue(outbox, clock, to, subject="Hello\r\nBcc: someone-else@example.com")
    assert _worker(outbox, clock, sink.port).run_once().failed == 1
    row = _row(outbox, message_id)
    assert row.status == FAILED
    assert "unusable message" in (row.last_error or "")
    assert sink.messages() == []


def test_the_metrics_count_pending_and_failed_messages(outbox: LiveServer, clock: FixedClock) -> None:
    for _ in range(2):
        _enqueue(outbox, clock, _address())
    failed = _enqueue(outbox, clock, _address(), template=f"no_such_template_{uid()}")
    assert _worker(outbox, clock, free_port()).run_once(only=[failed]).failed == 1
    text = requests.get(f"{outbox.url}/-/metrics", timeout=10).text
    assert "\nkeycrew_outbox_pending 2.0\n" in text
    assert "\nkeycrew_outbox_failed 1.0\n" in text


def test_every_template_has_both_bodies_and_compiles() -> None:
    env = environment()
    files = [n for n in env.list_templates(extensions=["txt", "html"]) if not n.startswith("_")]
    stems = {n.rsplit(".", 1)[0] for n in files}
    assert "test_email" in stems
    assert sorted(stems) == template_names()  # no body without its other half
    for stem in stems:
        env.get_template(f"{stem}.txt")
        env.get_template(f"{stem}.html")
    env.get_template("_layout.html")  # the shared layout compiles too


def test_a_backlog_goes_out_in_rounds_without_pauses(outbox: LiveServer, sink: MailSink) -> None:
    clock = FixedClock(START)
    to = _address()
    with outbox.runtime.sessions() as db, db.begin():
        ctx = Ctx(db, Actor.system(), outbox.runtime.instance, clock)
        for n in range(ROUND_SIZE + 20):
            enqueue(ctx, to_address=to, subject=f"backlog {n}", template="test_email", context={})
    worker = _worker(outbox, clock, sink.port)
    worker.poll_seconds = 3600  # no commit wakes it: only a full round leads straight to the next
    worker.start()
    try:
        received = sink.wait_for(to=to, count=ROUND_SIZE + 20, timeout=60)
    finally:
        worker.stop()
    assert len({m.subject for m in received}) == ROUND_SIZE + 20
