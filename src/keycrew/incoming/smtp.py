"""The built-in SMTP receiver: a site's MTA relays Service Desk mail to it (``KEYCREW_INCOMING_SMTP_PORT``).

Every accepted message goes through ``keycrew.servicedesk.incoming.receive`` and is answered only
after its transaction committed, so the sending MTA keeps responsibility for the message until
then:

- RCPT TO an address that is not one of our incoming addresses: 550 (nothing is read);
- a message over ``KEYCREW_INCOMING_EMAIL_MAX_SIZE``: 552 (SIZE is advertised in EHLO, and DATA is
  cut off at the limit);
- an address that names no project with Service Desk on, or a message refused for good: 550/554;
- the database unreachable (or any unexpected failure): 451, and the MTA tries again later;
- otherwise 250 (also for mail ignored on purpose: auto-replies, bounces, loops).

The server runs on its own thread (aiosmtpd's ``Controller``), started and stopped with the
serving process (a ``Runtime`` service); the database work runs in the thread pool of that loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from functools import partial

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from keycrew.clock import Clock
from keycrew.config import Settings
from keycrew.context import Instance
from keycrew.servicedesk.address import is_ours
from keycrew.servicedesk.incoming import Rejected, TemporaryFailure, receive

log = logging.getLogger("keycrew.incoming.smtp")

# At most this many recipients per message (RFC 5321's minimum a server must accept).
MAX_RECIPIENTS = 100


@dataclass
class _Handler:
    sessions: sessionmaker[DbSession]
    settings: Settings
    clock: Clock
    instance: Instance | None = None

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not is_ours(self.settings, address):
            return "550 5.1.1 No such recipient here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw or "").encode("utf-8", "surrogateescape")
        work = partial(
            receive,
            self.sessions,
            self.clock,
            raw,
            settings=self.settings,
            envelope_to=list(envelope.rcpt_tos),
            envelope_from=envelope.mail_from or "",
            instance=self.instance,
        )
        try:
            receipt = await asyncio.get_running_loop().run_in_executor(None, work)
        except Rejected as exc:
            code = exc.code if exc.code in (550, 552, 553, 554) else 550
            return f"{code} 5.7.1 {_clean(exc.reason)}"
        except TemporaryFailure as exc:
            return f"451 4.3.0 {_clean(str(exc))}, try again later"
        except Exception:  # the message is kept by the sender: it tries again later
            log.exception("incoming e-mail failed")
            return "451 4.3.0 Temporary failure, try again later"
        log.info("incoming e-mail accepted: %s %s", receipt.outcome, receipt.reason)
        return "250 OK"


def _clean(text: str) -> str:
    return " ".join(text.split())[:200] or "Refused"


@dataclass
class SmtpReceiver:
    """The receiver as a Runtime service: ``start``/``stop`` with the server."""

    sessions: sessionmaker[DbSession]
    settings: Settings
    clock: Clock
    instance: Instance | None = None
    _controller: Controller | None = field(default=None, init=False, repr=False)

    @property
    def port(self) -> int | None:
        return self.settings.incoming_smtp_port

    def start(self) -> None:
        if self._controller is not None or self.settings.incoming_smtp_port is None:
            return
        handler = _Handler(self.sessions, self.settings, self.clock, self.instance)
        controller = Controller(
            handler,
            hostname=self.settings.incoming_smtp_host,
            port=self.settings.incoming_smtp_port,
            server_hostname=self.settings.host_name,
            # SIZE advertised in EHLO; a longer DATA is answered 552.
            data_size_limit=self.settings.incoming_email_max_size,
        )
        controller.start()
        self._controller = controller
        log.info(
            "SMTP receiver listening on %s:%s",
            self.settings.incoming_smtp_host,
            self.settings.incoming_smtp_port,
        )

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


def smtp_receiver(
    sessions: sessionmaker[DbSession], settings: Settings, clock: Clock, instance: Instance | None = None
) -> SmtpReceiver:
    """The receiver a serving process runs (``keycrew.app`` adds it when the port is set)."""
    return SmtpReceiver(sessions, settings, clock, instance)
