"""What admins do with the outbox: list and read messages, and send one again now."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, func, select, update

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.errors import Conflict, NotFound
from keycrew.outbox.models import FAILED, PENDING, SENT, OutboxMessage

STATUSES = (PENDING, SENT, FAILED)
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class OutboxFilter:
    status: str | None = None  # one of STATUSES, or None for every message
    # Part of the recipient's address or of the subject.
    search: str | None = None


def _filtered(query: S, flt: OutboxFilter) -> S:
    if flt.status in STATUSES:
        query = query.where(OutboxMessage.status == flt.status)
    if flt.search:
        term = "%" + flt.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            func.lower(OutboxMessage.to_address).like(term, escape="\\")
            | func.lower(OutboxMessage.subject).like(term, escape="\\")
        )
    return query


def messages_query(flt: OutboxFilter) -> Select[OutboxMessage]:
    """The messages ``flt`` selects, newest first."""
    return _filtered(select(OutboxMessage), flt).order_by(OutboxMessage.id.desc())


def counts_by_status(ctx: Ctx, search: str | None = None) -> dict[str, int]:
    """How many messages there are in each status (and "all"), among those ``search`` matches."""
    query = _filtered(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status), OutboxFilter(search=search)
    )
    counts = dict.fromkeys(STATUSES, 0)
    for status, count in ctx.db.execute(query):
        counts[str(status)] = int(count)
    counts["all"] = sum(counts.values())
    return counts


def find_message(ctx: Ctx, message_id: int) -> OutboxMessage:
    row = ctx.db.get(OutboxMessage, message_id)
    if row is None:
        raise NotFound("Message")
    return row


def retry_now(ctx: Ctx, message: OutboxMessage) -> OutboxMessage:
    """Make a pending or failed message due now (a failed one starts its attempts over); a sent
    one is not sent again. A delivery in progress keeps its claim (no second copy). Audited."""
    if message.status == SENT:
        raise Conflict("This message has already been sent")
    before = message.status
    now = ctx.now()
    message.status = PENDING
    message.next_attempt_at = now
    if message.claimed_until is None or message.claimed_until <= now:
        message.claimed_by = None
        message.claimed_until = None
    if before == FAILED:
        message.attempts = 0
    record(
        ctx,
        Event.OUTBOX_MESSAGE_RETRIED,
        Entity.instance(),
        Target("Outbox::Message", message.id, message.subject),
        previous_status=before,
        recipient=message.to_address,
    )
    return message


def retry_failed(ctx: Ctx) -> int:
    """Make every failed message due now, its attempts started over (after an outage longer than
    the retries); how many there were. One audit event names the count."""
    now = ctx.now()
    changed = ctx.db.execute(
        update(OutboxMessage)
        .where(OutboxMessage.status == FAILED)
        .values(status=PENDING, attempts=0, next_attempt_at=now, claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    count = int(getattr(changed, "rowcount", 0) or 0)
    if count:
        record(
            ctx,
            Event.OUTBOX_MESSAGE_RETRIED,
            Entity.instance(),
            Target("Outbox::Message", None, f"{count} failed message(s)"),
            previous_status=FAILED,
            count=count,
        )
    return count
