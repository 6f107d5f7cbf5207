"""The "Forgot password" use case's limits and storage: one e-mail per address a minute, a cap
per client address an hour (the same neutral outcome beyond it), and the token kept only as a
digest."""

from __future__ import annotations

import json
import random
import re

from sqlalchemy import func, select

from keycrew.context import Actor, Ctx
from keycrew.identity.password_reset import PER_IP_PER_HOUR, PasswordReset, request_reset
from keycrew.mail.render import Site, render
from keycrew.outbox.models import OutboxMessage
from keycrew.outbox.service import HIDDEN
from tests.support.live import Factory, LiveServer
from tests.support.mail import MailSink


def _request(server: LiveServer, email: str, ip: str) -> None:
    with server.runtime.sessions() as db, db.begin():
        ctx = Ctx(db, Actor(user=None, ip=ip, via="web"), server.runtime.instance, server.clock)
        request_reset(ctx, email)


def _mails(server: LiveServer, user_id: int) -> list[OutboxMessage]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.to_user_id == user_id,
                    OutboxMessage.template == "reset_password_instructions",
                )
            )
        )


def test_requests_are_limited_per_address_and_per_client(
    server: LiveServer, factory: Factory, smtp_sink: MailSink
) -> None:
    ip = f"203.0.113.{random.randint(1, 254)}"
    first, second = factory.user(), factory.user()
    _request(server, first["email"], ip)
    _request(server, first["email"].upper(), ip)  # within the minute: nothing more
    assert len(_mails(server, first["id"])) == 1
    (mail,) = _mails(server, first["id"])
    (received,) = smtp_sink.wait_for(first["email"])
    found = re.search(r"reset_password_token=([A-Za-z0-9_-]+)", received.body())
    assert found is not None
    token = found.group(1)
    # The link is in the e-mail only: sealed in the outbox row, hidden from an admin reading it.
    assert token not in json.dumps(mail.context)
    assert "reset_url" not in mail.context
    shown = render(mail, Site.of(server.runtime.settings))
    assert token not in shown.text + shown.html
    assert HIDDEN in shown.text
    with server.runtime.sessions() as db:
        digests = list(
            db.scalars(select(PasswordReset.token_digest).where(PasswordReset.user_id == first["id"]))
        )
        assert len(digests) == 1
        assert token not in str(digests[0])
        used = db.scalar(select(func.count(PasswordReset.id)).where(PasswordReset.ip_address == ip))
    for n in range(PER_IP_PER_HOUR - (used or 0)):
        _request(server, f"nobody-{n}@example.com", ip)
    _request(server, second["email"], ip)  # over the client's limit: no e-mail
    assert _mails(server, second["id"]) == []
    _request(server, second["email"], "198.51.100.7")  # another client: sent
    assert len(_mails(server, second["id"])) == 1
