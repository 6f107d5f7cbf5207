"""Service Desk mail read from an IMAP mailbox, the way GitLab's mail_room does (polling, not IDLE).

A serving process with ``KEYCREW_INCOMING_IMAP_HOST`` runs one ``ImapPoller`` (a Runtime service).
Every ``KEYCREW_INCOMING_IMAP_POLL_INTERVAL`` seconds it connects (implicit TLS, STARTTLS or plain,
certificates and host name verified, ``_CA_FILE`` trusted beside the system's CAs), logs in,
selects the mailbox and looks for UNSEEN messages, oldest first. Each one is fetched with
``BODY.PEEK[]`` (reading it does not mark it read) and handed to Service Desk
(``keycrew.servicedesk.incoming.receive``):

- handled (an issue, a note, or ignored as an auto-reply or a loop) or refused for good
  (``Rejected``: too large, not for us): the message is marked ``\\Seen``, and with
  ``_DELETE_AFTER_DELIVERY`` also ``\\Deleted``, expunged at the end of the round (mail_room's
  ``delete_after_delivery`` and ``expunge_deleted``);
- the database out of reach (``TemporaryFailure``): the message stays UNSEEN and the round ends;
  the next poll tries it again, so nothing is lost while the database is briefly down;
- anything else (a bug): logged with its traceback and marked ``\\Seen`` but never deleted, so that
  one bad message cannot stop the mailbox and an operator still finds it there.

When the server cannot be reached or refuses the login, the poller logs why (never the password)
and tries again after a backoff that doubles from the poll interval up to ``MAX_BACKOFF``.

One poller per mailbox at a time: setting \\Seen after processing is not an atomic claim, so two
pollers reading one mailbox together could both take a message. Each round therefore holds a lock
named after the mailbox first, and a poller that cannot take it skips the round: on PostgreSQL a
transaction-level advisory lock (every worker of every node sharing the database), on SQLite a
file lock in the data directory (every worker of the node). mail_room runs one process per mailbox
for the same reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import imaplib
import logging
import re
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from keycrew.clock import Clock
from keycrew.config import Settings
from keycrew.db.engine import is_unavailable, unavailable_reason
from keycrew.infra.worker import PollingLoop
from keycrew.servicedesk.incoming import Receipt, Rejected, TemporaryFailure, receive

log = logging.getLogger("keycrew.incoming.imap")

# Seconds to wait for the IMAP server on each step before the poll counts as failed.
TIMEOUT = 30.0
# The longest wait between two attempts while the server cannot be reached.
MAX_BACKOFF = 15 * 60.0
# Messages handled per round; when more are waiting the next round starts at once.
ROUND_SIZE = 100

Receive = Callable[..., Receipt]


class Unreachable(Exception):
    """No usable IMAP session: the server, TLS, the login or the mailbox failed."""


@dataclass
class RoundReport:
    """What one poll did (for the logs and the tests)."""

    handled: int = 0  # processed (issue, note or ignored), marked seen
    rejected: int = 0  # refused for good, marked seen
    failed: int = 0  # an unexpected error, marked seen, kept
    deferred: int = 0  # database out of reach: left unseen for the next poll
    skipped: bool = False  # another poller holds the mailbox this round
    more: bool = False


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Certificates and host names are always verified; ``incoming_imap_ca_file`` adds a CA."""
    context = ssl.create_default_context()
    ca_file = settings.incoming_imap_ca_file
    if ca_file is not None and str(ca_file) not in ("", "."):
        context.load_verify_locations(cafile=str(ca_file))
    return context


def _quoted(mailbox: str) -> str:
    """A mailbox name as an IMAP quoted string (names may hold spaces)."""
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ok(result: tuple[str, Any], what: str) -> list[Any]:
    status, data = result
    if status != "OK":
        raise imaplib.IMAP4.error(f"{what}: {status} {data!r}")
    return list(data or [])


_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


@dataclass
class ImapPoller:
    """``start``/``stop`` with the server; ``run_once`` is one poll (the thread calls it)."""

    sessions: sessionmaker[Session]
    settings: Settings
    clock: Clock
    receive: Receive = receive
    failures: int = 0  # polls in a row that failed (the mailbox out of reach, or a fault)
    _loop: PollingLoop = field(init=False, repr=False)
    _round: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._loop = PollingLoop(
            "keycrew-incoming-imap",
            lambda: self.run_once().more,
            poll_seconds=self.wait_seconds,
            join_timeout=TIMEOUT * 2 + 5,
            failed=self._failed,
        )

    def _failed(self, exc: Exception) -> None:
        """A poll that broke unexpectedly: logged, and the next one waits as after an outage."""
        self.failures += 1
        log.error("IMAP poll of %s failed: %s", self.mailbox, type(exc).__name__, exc_info=exc)

    @property
    def mailbox(self) -> str:
        """Where the poller reads, for the logs: user@host:port/mailbox (never the password)."""
        s = self.settings
        return (
            f"{s.incoming_imap_user}@{s.incoming_imap_host}:{s.incoming_imap_port}/{s.incoming_imap_mailbox}"
        )

    def wait_seconds(self) -> float:
        """The pause before the next poll: the interval, doubled per failed poll in a row."""
        interval = self.settings.incoming_imap_poll_interval
        if self.failures == 0:
            return interval
        return min(interval * 2 ** min(self.failures - 1, 20), max(MAX_BACKOFF, interval))

    def start(self) -> None:
        s = self.settings
        if not (s.incoming_imap_ssl or s.incoming_imap_start_tls):
            log.warning("IMAP mailbox %s is read without TLS: the password crosses the network", self.mailbox)
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def wake(self) -> None:
        self._loop.wake()

    # -- one poll ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _only_poller(self) -> Iterator[bool]:
        """Whether this poller holds the mailbox's lock for the round (see the module's docstring)."""
        s = self.settings
        name = ":".join(
            (
                "keycrew-imap",
                s.incoming_imap_host,
                str(s.incoming_imap_port),
                s.incoming_imap_user,
                s.incoming_imap_mailbox,
            )
        )
        with self.sessions() as db:
            if db.get_bind().dialect.name == "postgresql":
                key = zlib.crc32(name.encode())
                with db.begin():
                    yield bool(db.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}))
                return
        s.data_dir.mkdir(parents=True, exist_ok=True)
        with open(s.data_dir / f".incoming-imap-{zlib.crc32(name.encode()):08x}.lock", "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def run_once(self) -> RoundReport:
        report = RoundReport()
        with self._round:
            try:
                with self._only_poller() as alone:
                    if alone:
                        self._round_alone(report)
                    else:
                        report.skipped = True
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # The lock's own transaction could not be had or ended: the mail waits unseen.
                log.warning(
                    "IMAP poll of %s skipped: database unavailable (%s)",
                    self.mailbox,
                    unavailable_reason(exc),
                )
        return report

    def _round_alone(self, report: RoundReport) -> None:
        try:
            with self._session() as imap:
                self.failures = 0
                self._poll(imap, report)
        except Unreachable as exc:
            self.failures += 1
            log.warning(
                "IMAP mailbox %s unreachable (attempt %d, next in %g s): %s",
                self.mailbox,
                self.failures,
                self.wait_seconds(),
                exc,
            )

    def _redact(self, text: str) -> str:
        password = self.settings.incoming_imap_password
        secret = password.get_secret_value() if password else ""
        return text.replace(secret, "[FILTERED]") if secret else text

    def _describe(self, exc: BaseException) -> str:
        """The failure as logged: its kind and the server's words (imaplib keeps them as bytes)."""
        words = " ".join(a.decode(errors="replace") if isinstance(a, bytes) else str(a) for a in exc.args)
        return self._redact(f"{type(exc).__name__}: {words}")[:500]

    @contextlib.contextmanager
    def _session(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in session with the mailbox selected (read-write), logged out afterwards."""
        s = self.settings
        imap: imaplib.IMAP4 | None = None
        try:
            if s.incoming_imap_ssl:
                imap = imaplib.IMAP4_SSL(
                    s.incoming_imap_host, s.incoming_imap_port, ssl_context=tls_context(s), timeout=TIMEOUT
                )
            else:
                imap = imaplib.IMAP4(s.incoming_imap_host, s.incoming_imap_port, timeout=TIMEOUT)
                if s.incoming_imap_start_tls:
                    imap.starttls(ssl_context=tls_context(s))
            password = s.incoming_imap_password.get_secret_value() if s.incoming_imap_password else ""
            imap.login(s.incoming_imap_user, password)
            _ok(imap.select(_quoted(s.incoming_imap_mailbox)), "SELECT")
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            if imap is not None:
                self._close(imap)
            raise Unreachable(self._describe(exc)) from None
        try:
            yield imap
        finally:
            self._close(imap)

    @staticmethod
    def _close(imap: imaplib.IMAP4) -> None:
        with contextlib.suppress(OSError, imaplib.IMAP4.error, ssl.SSLError):
            imap.logout()
        with contextlib.suppress(OSError):
            imap.shutdown()

    def _poll(self, imap: imaplib.IMAP4, report: RoundReport) -> None:
        try:
            found = _ok(imap.uid("SEARCH", "UNSEEN"), "SEARCH")
            uids = found[0].decode().split() if found and isinstance(found[0], bytes) else []
            for uid in uids[:ROUND_SIZE]:
                if self._loop.stopping or not self._one(imap, uid, report):
                    break
            else:
                report.more = len(uids) > ROUND_SIZE
            if self.settings.incoming_imap_delete_after_delivery and (report.handled or report.rejected):
                _ok(imap.expunge(), "EXPUNGE")
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            # The session broke mid-round: what was handled stays handled; the rest waits unseen.
            raise Unreachable(self._describe(exc)) from None

    def _one(self, imap: imaplib.IMAP4, uid: str, report: RoundReport) -> bool:
        """Handle one message; False when the round must end (the database is out of reach)."""
        raw = self._fetch(imap, uid)
        if raw is None:
            self._mark(imap, uid, delete=self.settings.incoming_imap_delete_after_delivery)
            report.rejected += 1
            return True
        try:
            receipt = self.receive(self.sessions, self.clock, raw, settings=self.settings)
        except TemporaryFailure as exc:
            report.deferred += 1
            log.warning("IMAP message %s left unread, tried again next poll: %s", uid, exc)
            return False
        except Rejected as exc:
            report.rejected += 1
            log.info("IMAP message %s refused: %s", uid, exc.reason)
            self._mark(imap, uid, delete=self.settings.incoming_imap_delete_after_delivery)
            return True
        except Exception as exc:
            if is_unavailable(exc):
                report.deferred += 1
                log.warning("IMAP message %s left unread (database unavailable), tried again next poll", uid)
                return False
            report.failed += 1
            log.error("IMAP message %s could not be processed: kept, marked seen", uid, exc_info=exc)
            self._mark(imap, uid, delete=False)
            return True
        report.handled += 1
        log.info("IMAP message %s: %s %s", uid, receipt.outcome, receipt.reason)
        self._mark(imap, uid, delete=self.settings.incoming_imap_delete_after_delivery)
        return True

    def _fetch(self, imap: imaplib.IMAP4, uid: str) -> bytes | None:
        """The message's bytes, read without marking it seen; None when it is over the size limit
        (refused without downloading it)."""
        limit = self.settings.incoming_email_max_size
        sized = _ok(imap.uid("FETCH", uid, "(RFC822.SIZE)"), "FETCH")
        for part in sized:
            head = part[0] if isinstance(part, tuple) else part
            match = _SIZE.search(head) if isinstance(head, bytes) else None
            if match and int(match.group(1)) > limit:
                log.info("IMAP message %s refused: larger than %d bytes", uid, limit)
                return None
        data = _ok(imap.uid("FETCH", uid, "(BODY.PEEK[])"), "FETCH")
        for part in data:
            if isinstance(part, tuple) and len(part) >= 2 and isinstance(part[1], bytes):
                return part[1]
        raise imaplib.IMAP4.error(f"FETCH {uid}: no message body")

    @staticmethod
    def _mark(imap: imaplib.IMAP4, uid: str, *, delete: bool) -> None:
        flags = r"(\Seen \Deleted)" if delete else r"(\Seen)"
        _ok(imap.uid("STORE", uid, "+FLAGS.SILENT", flags), "STORE")


def imap_poller(sessions: sessionmaker[Session], settings: Settings, clock: Clock) -> ImapPoller:
    """The poller a serving process runs (``keycrew.app`` adds it when ``incoming_imap_host`` is set)."""
    return ImapPoller(sessions, settings, clock)
