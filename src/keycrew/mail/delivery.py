"""Delivering the outbox over SMTP: a worker thread in every serving process that has SMTP settings.

Each round the worker looks for due messages (pending, ``next_attempt_at`` reached, no live
claim), claims each one with a conditional UPDATE (``claimed_by`` = this worker, ``claimed_until``
= now + 2 minutes; the UPDATE matches only while nobody else's claim is live, so on SQLite and
PostgreSQL alike two workers never both hold one message), renders it, sends it, and marks it
sent. A failure counts an attempt and sets the next one after a backoff (1, 2, 4 … minutes, at
most an hour); after ``MAX_ATTEMPTS`` attempts, or at once when the server refuses the message for
good (a 5xx reply to RCPT or DATA), the message is ``failed`` and stays in the outbox, where an
admin can retry it.

Delivery is at least once: a worker killed after the server accepted a message but before it
marked it sent leaves a claim that lapses, and another round sends the message again (with the
same Message-ID, so that mail systems can tell).

The worker wakes at once after this process commits a new outbox row, and otherwise every
``POLL_SECONDS``; time is the runtime's clock (tests move it).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
import socket
import ssl
import threading
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from keycrew.clock import Clock
from keycrew.config import Settings
from keycrew.infra.refresh import on_commit_of
from keycrew.infra.worker import PollingLoop
from keycrew.mail.render import RenderError, Site, render
from keycrew.outbox.models import FAILED, PENDING, SENT, OutboxMessage

log = logging.getLogger("keycrew.mail")

# How many times a message is tried before it is given up on (``failed``). With the backoff below
# the attempts span about 20 hours (GitLab's mailers, on Sidekiq, retry about as many times).
MAX_ATTEMPTS = 25
FIRST_BACKOFF = dt.timedelta(minutes=1)
MAX_BACKOFF = dt.timedelta(hours=1)
# How long a claim holds: far longer than one delivery (``smtp_timeout`` per SMTP step).
CLAIM = dt.timedelta(minutes=2)
POLL_SECONDS = 5.0
# Messages looked at per round (a round ends early when the server cannot be reached).
ROUND_SIZE = 100
SENDER_NAME = "keycrew"
# The headers a message may set for itself (``OutboxMessage.headers``: Service Desk threads).
THREAD_HEADERS = ("message-id", "in-reply-to", "references", "reply-to")
# Not a header: the display name of the sender, for a message sent on a bot's behalf ("GitLab
# Support Bot"); the address stays the instance's.
FROM_NAME = "from_name"
MAX_ERROR_LENGTH = 1000


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed attempt: 1, 2, 4 … minutes, at most an hour."""
    return min(FIRST_BACKOFF * 2 ** min(max(attempts - 1, 0), 16), MAX_BACKOFF)


class Permanent(Exception):
    """This message can never be delivered as it is (refused for good, or not renderable)."""


class Unreachable(Exception):
    """No SMTP session could be opened (connection, TLS or authentication failed)."""


@dataclass
class RoundReport:
    """What one round did (for the tests and the logs)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # claimed by someone else first
    # The round took as many messages as it may and more may be due: the next one starts at once.
    more: bool = False

    @property
    def touched(self) -> int:
        return self.sent + self.retried + self.failed


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificates and host names are always verified; ``smtp_ca_file`` adds a private CA."""
    context = ssl.create_default_context()
    if settings.smtp_ca_file is not None and str(settings.smtp_ca_file) not in ("", "."):
        context.load_verify_locations(cafile=str(settings.smtp_ca_file))
    return context


def describe_error(exc: BaseException) -> str:
    """What the outbox shows of a failure: the SMTP reply or the exception's kind and message
    (never the password: smtplib does not put it in its errors, and neither do we)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        parts = [f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in exc.recipients.items()]
        text = "recipient refused: " + "; ".join(parts)
    elif isinstance(exc, smtplib.SMTPResponseException):
        text = f"{type(exc).__name__}: {exc.smtp_code} {_text(exc.smtp_error)}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_LENGTH]


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def is_permanent(exc: BaseException) -> bool:
    """A refusal that another attempt would not change: 5xx to every recipient, 5xx to DATA."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPDataError):
        return exc.smtp_code >= 500
    return isinstance(exc, smtplib.SMTPNotSupportedError)


class Mailer:
    """One SMTP session at a time, opened on first need and kept for the rest of a round."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        s = self.settings
        host, port, timeout = s.smtp_host, s.smtp_port, s.smtp_timeout
        smtp: smtplib.SMTP
        try:
            if s.smtp_tls == "ssl":
                smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=tls_context(s))
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            try:
                smtp.ehlo()
                if s.smtp_tls == "starttls":
                    smtp.starttls(context=tls_context(s))
                    smtp.ehlo()
                if s.smtp_user:
                    password = s.smtp_password.get_secret_value() if s.smtp_password else ""
                    smtp.login(s.smtp_user, password)
            except BaseException:
                smtp.close()
                raise
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            raise Unreachable(describe_error(exc)) from exc
        return smtp

    def send(self, message: EmailMessage, to_address: str) -> None:
        if self._smtp is None:
            self._smtp = self._open()
        try:
            self._smtp.send_message(message, from_addr=self.settings.sender, to_addrs=[to_address])
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, smtplib.SMTPSenderRefused):
            # smtplib reset the transaction (or closed the session on a 421): usable or reopened.
            if self._smtp.sock is None:
                self._smtp = None
            raise
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()


def build_message(row: OutboxMessage, settings: Settings, site: Site, now: dt.datetime) -> EmailMessage:
    """The message as sent: multipart/alternative (plain text, then HTML) with keycrew's headers.
    Raises Permanent when the template cannot be rendered or a header is unusable."""
    try:
        rendered = render(row, site)
    except RenderError as exc:
        raise Permanent(str(exc)) from exc
    message = EmailMessage(policy=SMTP_POLICY)
    try:
        message["From"] = formataddr(((row.headers or {}).get(FROM_NAME) or SENDER_NAME, settings.sender))
        message["To"] = row.to_address
        message["Subject"] = row.subject
        message["Date"] = format_datetime(now.astimezone(dt.UTC))
        # Stable per message: a message sent twice (at least once delivery) carries one Message-ID.
        message["Message-ID"] = f"<outbox-{row.id}-{int(row.created_at.timestamp())}@{site.host}>"
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
        for name, value in (row.headers or {}).items():
            if name.lower() in THREAD_HEADERS and value:
                del message[name]
                message[name] = str(value)
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
    except (ValueError, TypeError) as exc:
        raise Permanent(f"unusable message: {exc}") from exc
    return message


@dataclass
class DeliveryWorker:
    """The outbox's delivery worker: ``start``/``stop`` with the server (a Runtime service);
    ``run_once`` is one round (the thread calls it, tests may too)."""

    sessions: sessionmaker[Session]
    settings: Settings
    clock: Clock
    poll_seconds: float = POLL_SECONDS
    node: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    _loop: PollingLoop = field(init=False, repr=False)
    _round: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def site(self) -> Site:
        return Site.of(self.settings, reveal=True)

    def watch_commits(self) -> DeliveryWorker:
        """Wake at once after a commit in this process that adds or changes an outbox row."""
        on_commit_of(self.sessions, (OutboxMessage,), self.wake)
        return self

    # -- the thread -------------------------------------------------------------------------

    def __post_init__(self) -> None:
        self._loop = PollingLoop(
            "keycrew-mail-delivery",
            lambda: self.run_once().more,
            poll_seconds=lambda: self.poll_seconds,
            join_timeout=self.settings.smtp_timeout * 4 + 5,
            failed=lambda exc: log.warning("e-mail delivery round failed: %s", type(exc).__name__),
        )

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def wake(self) -> None:
        self._loop.wake()

    # -- one round --------------------------------------------------------------------------

    def due(
        self, now: dt.datetime, limit: int = ROUND_SIZE, only: Collection[int] | None = None
    ) -> list[int]:
        with self.sessions() as db:
            db.connection(execution_options={"sqlite_begin": "DEFERRED"})
            query = (
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.status == PENDING,
                    OutboxMessage.next_attempt_at <= now,
                    or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
            )
            if only is not None:
                query = query.where(OutboxMessage.id.in_(list(only)))
            return list(db.scalars(query))

    def run_once(self, only: Collection[int] | None = None) -> RoundReport:
        """Deliver what is due now (of the messages ``only`` names, if given); returns what was done."""
        report = RoundReport()
        with self._round:
            mailer = Mailer(self.settings)
            unreachable: str | None = None
            try:
                due = self.due(self.clock.now(), only=only)
                for message_id in due:
                    if self._loop.stopping:
                        break
                    row = self._claim(message_id)
                    if row is None:
                        report.skipped += 1
                        continue
                    if unreachable is not None:
                        # The server could not be reached for an earlier message of this round:
                        # this one counts the same failed attempt without waiting a timeout again.
                        self._failed(row, unreachable, permanent=False, report=report)
                        continue
                    unreachable = self._deliver(mailer, row, report)
                report.more = len(due) >= ROUND_SIZE and unreachable is None and not self._loop.stopping
            finally:
                mailer.close()
        return report

    def _claim(self, message_id: int) -> OutboxMessage | None:
        """Claim one message (None if another worker has it, or it is no longer due)."""
        now = self.clock.now()
        with self.sessions() as db, db.begin():
            claimed = db.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == message_id,
                    OutboxMessage.status == PENDING,
                    OutboxMessage.next_attempt_at <= now,
                    or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
                )
                .values(claimed_by=self.node, claimed_until=now + CLAIM)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return None
            row = db.get(OutboxMessage, message_id)
            if row is None:
                return None
            db.expunge(row)
            return row

    def _deliver(self, mailer: Mailer, row: OutboxMessage, report: RoundReport) -> str | None:
        """Send one claimed message; returns the error when the server could not be reached."""
        try:
            message = build_message(row, self.settings, self.site, self.clock.now())
            mailer.send(message, row.to_address)
        except Permanent as exc:
            self._failed(row, str(exc)[:MAX_ERROR_LENGTH], permanent=True, report=report)
        except Unreachable as exc:
            self._failed(row, str(exc), permanent=False, report=report)
            return str(exc)
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            self._failed(row, describe_error(exc), permanent=is_permanent(exc), report=report)
        else:
            self._finish(row, values={"status": SENT, "sent_at": self.clock.now(), "last_error": None})
            report.sent += 1
            log.info("e-mail %s sent (%s)", row.id, row.template)
        return None

    def _failed(self, row: OutboxMessage, error: str, *, permanent: bool, report: RoundReport) -> None:
        attempts = row.attempts + 1
        give_up = permanent or attempts >= MAX_ATTEMPTS
        values: dict[str, object] = {"attempts": attempts, "last_error": error}
        if give_up:
            values["status"] = FAILED
            report.failed += 1
        else:
            values["next_attempt_at"] = self.clock.now() + backoff(attempts)
            report.retried += 1
        self._finish(row, values=values)
        log.warning(
            "e-mail %s (%s) %s after attempt %d: %s",
            row.id,
            row.template,
            "failed" if give_up else "will be retried",
            attempts,
            error,
        )

    def _finish(self, row: OutboxMessage, *, values: dict[str, object]) -> None:
        """Record the outcome and release the claim (only while the claim is still ours)."""
        with self.sessions() as db, db.begin():
            db.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id, OutboxMessage.claimed_by == self.node)
                .values(claimed_by=None, claimed_until=None, **values)
                .execution_options(synchronize_session=False)
            )


def delivery_worker(sessions: sessionmaker[Session], settings: Settings, clock: Clock) -> DeliveryWorker:
    """The worker a serving process runs (``keycrew.app`` adds it when ``smtp_host`` is set)."""
    return DeliveryWorker(sessions, settings, clock).watch_commits()
