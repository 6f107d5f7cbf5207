"""Writing e-mail to the outbox, always inside the caller's transaction.

The bodies are rendered from ``template`` and ``context`` when the message is delivered or shown
(keycrew.mail); the subject is fixed here, as GitLab's mailers fix it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from keycrew.context import Ctx
from keycrew.outbox.models import PENDING, OutboxMessage


def enqueue(
    ctx: Ctx,
    *,
    to_address: str,
    subject: str,
    template: str,
    context: dict[str, Any],
    to_user_id: int | None = None,
    dedupe_key: str | None = None,
) -> OutboxMessage | None:
    """Add one message to the current transaction; None when ``dedupe_key`` was already written
    (in this transaction or an earlier one), so a job that runs again sends nothing twice."""
    if dedupe_key is not None:
        pending = [
            obj for obj in ctx.db.new if isinstance(obj, OutboxMessage) and obj.dedupe_key == dedupe_key
        ]
        if pending or ctx.db.scalar(select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)):
            return None
    now = ctx.now()
    row = OutboxMessage(
        created_at=now,
        template=template,
        subject=subject,
        to_address=to_address,
        to_user_id=to_user_id,
        context=context,
        dedupe_key=dedupe_key,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
    )
    ctx.db.add(row)
    return row
