"""Writing e-mail to the outbox, always inside the caller's transaction.

The bodies are rendered from ``template`` and ``context`` when the message is delivered or shown
(keycrew.mail); the subject is fixed here, as GitLab's mailers fix it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from keycrew.context import Ctx
from keycrew.crypto import seal, unseal
from keycrew.outbox.models import PENDING, OutboxMessage

# Where a message's secrets (a password-reset link) are kept in its context: sealed with the
# instance's secret key, opened only to deliver it (an admin reading the outbox sees them hidden).
SEALED = "_sealed"
_LABEL = b"keycrew outbox secrets v1"


def _sealed(ctx: Ctx, secrets: dict[str, str] | None) -> dict[str, str]:
    return {SEALED: seal(ctx.instance.secret_key, _LABEL, json.dumps(secrets))} if secrets else {}


def enqueue(
    ctx: Ctx,
    *,
    to_address: str,
    subject: str,
    template: str,
    context: dict[str, Any],
    to_user_id: int | None = None,
    dedupe_key: str | None = None,
    secrets: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> OutboxMessage | None:
    """Add one message to the current transaction; None when ``dedupe_key`` was already written
    (in this transaction or an earlier one), so a job that runs again sends nothing twice.
    ``secrets`` are template values kept sealed at rest (a link that works once), never in
    ``context``, which is stored in clear. ``headers`` are threading headers the message carries
    (Message-ID, In-Reply-To, References, Reply-To)."""
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
        context=context
        | ({SEALED: seal(ctx.instance.secret_key, _LABEL, json.dumps(secrets))} if secrets else {}),
        dedupe_key=dedupe_key,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        headers=headers or None,
    )
    ctx.db.add(row)
    return row


def opened(context: dict[str, Any], secret_key: bytes, *, reveal: bool) -> dict[str, Any]:
    """``context`` with its sealed secrets as template values: their values when ``reveal`` (to
    deliver the message), else a placeholder (to show it); a secret that cannot be opened (the
    secret key changed) reads as the placeholder too."""
    values = {key: value for key, value in context.items() if key != SEALED}
    stored = context.get(SEALED)
    if not isinstance(stored, str):
        return values
    text = unseal(secret_key, _LABEL, stored)
    loaded: Any = json.loads(text) if text else {}
    for key, value in loaded.items() if isinstance(loaded, dict) else ():
        values[str(key)] = str(value) if reveal else HIDDEN
    return values


HIDDEN = "[hidden: only in the e-mail itself]"
