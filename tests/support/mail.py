"""A real SMTP server for the tests (aiosmtpd), collecting every message it accepts.

The session's live servers deliver to one ``MailSink`` (``smtp_sink`` fixture); a test finds its
messages by recipient, which is unique per test (``uid()`` addresses), so tests do not see each
other's mail. ``wait_for`` polls, since delivery happens on the server's worker, not in the request.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    """One accepted message: its envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def body(self, subtype: str = "plain") -> str:
        part = self.message.get_body(preferencelist=(subtype,))
        return "" if part is None else str(part.get_content())  # type: ignore[attr-defined]


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # While set, every message is refused with this SMTP reply (a server that is "down" for mail).
    refuse_with: str | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_with is not None:
            return self.refuse_with
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), message))
        return "250 OK"


class MailSink:
    """An SMTP server on 127.0.0.1 (plain; ``Controller`` kwargs may add STARTTLS or auth)."""

    def __init__(self, port: int, **controller_kwargs: Any) -> None:
        self.handler = _Handler()
        self.port = port
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port, **controller_kwargs)

    def start(self) -> MailSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def messages(self, to: str | None = None) -> list[Received]:
        with self.handler.lock:
            found = list(self.handler.received)
        return [m for m in found if to is None or to in m.rcpt_tos]

    def wait_for(self, to: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        """The messages to ``to`` once there are at least ``count`` (AssertionError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} message(s) to {to} after {timeout}s, expected {count}")
            time.sleep(0.05)

    def refuse(self, reply: str | None = "421 Service not available") -> None:
        """Refuse every message with ``reply`` (None: accept again)."""
        self.handler.refuse_with = reply
