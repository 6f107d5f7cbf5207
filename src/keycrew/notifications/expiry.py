"""Token expiry notifications, one batch at a time (the jobs in keycrew.automation.token_expiry
walk the batches).

GitLab's ``PersonalAccessTokens::ExpiringWorker`` and ``ExpiredNotificationWorker``: live
(not revoked), non-impersonation tokens whose expiry date falls in an interval's window
(7 days: 0..7 days from today, 30 days: 8..30, 60 days: 31..60; "expired": today) and that were
not announced for that interval yet. A person hears once per interval about all such tokens of
theirs (one e-mail listing up to 100); the Owners and Maintainers of a project (the Owners of a
group) hear about each of its bots' tokens. The token is marked in the same transaction as its
e-mail, so that it is never announced twice for one interval, whatever runs again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, false, select, update

from keycrew.context import Ctx
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Namespace, Project
from keycrew.notifications import mails
from keycrew.notifications.recipients import bot_token_recipients, wants_mail
from keycrew.outbox.models import OutboxMessage
from keycrew.tokens.models import PersonalAccessToken

PAT = PersonalAccessToken
BOT_TYPE = int(UserType.PROJECT_BOT)

# What the jobs do for a bot's token besides e-mail (the 7-day webhook): given the token and its
# resource, in the same transaction.
BotHook = Callable[[Ctx, PersonalAccessToken, Project | Namespace], Any]


@dataclass(frozen=True)
class Notice:
    """One notification a token gets at most once: an expiry interval, or "expired"."""

    key: str
    # The window: tokens expiring between today + first and today + last days (inclusive).
    first: int
    last: int
    # The number of days the personal e-mail's subject names (0 for "expired").
    days: int
    # The column that says it was sent (a timestamp, or a flag for "expired").
    marker: str

    @property
    def expired(self) -> bool:
        return self.key == "expired"

    def pending(self) -> ColumnElement[bool]:
        column = getattr(PAT, self.marker)
        return column == false() if self.expired else column.is_(None)

    def marks(self, now: dt.datetime) -> dict[str, Any]:
        if self.expired:
            return {"after_expiry_notification_delivered": True}
        values: dict[str, Any] = {self.marker: now}
        if self.key == "seven_days":
            values["expire_notification_delivered"] = True
        return values


SEVEN_DAYS = Notice("seven_days", 0, 7, 7, "seven_days_notification_sent_at")
THIRTY_DAYS = Notice("thirty_days", 8, 30, 30, "thirty_days_notification_sent_at")
SIXTY_DAYS = Notice("sixty_days", 31, 60, 60, "sixty_days_notification_sent_at")
INTERVALS = (SEVEN_DAYS, THIRTY_DAYS, SIXTY_DAYS)
EXPIRED_TODAY = Notice("expired", 0, 0, 0, "after_expiry_notification_delivered")


@dataclass
class Batch:
    """What one batch did: where the walk goes on (None: nothing left), the tokens it announced
    (marked), the e-mails it wrote, and what it skipped and why."""

    after: int | None = None
    tokens: int = 0
    emails: list[OutboxMessage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: int = 0


def _candidates(notice: Notice, today: dt.date) -> list[ColumnElement[bool]]:
    # ``== false()`` (not IS): the form the partial index ix_personal_access_tokens_expiry_scan names.
    return [
        PAT.revoked == false(),
        PAT.impersonation == false(),
        PAT.expires_at >= today + dt.timedelta(days=notice.first),
        PAT.expires_at <= today + dt.timedelta(days=notice.last),
        notice.pending(),
    ]


def _mark(ctx: Ctx, notice: Notice, token_ids: list[int]) -> None:
    if token_ids:
        ctx.db.execute(
            update(PAT)
            .where(PAT.id.in_(token_ids))
            .values(**notice.marks(ctx.now()))
            .execution_options(synchronize_session=False)
        )


def notify_people(ctx: Ctx, notice: Notice, *, after: int = 0, limit: int = 100) -> Batch:
    """The next ``limit`` owners (by id, after ``after``) of tokens due ``notice`` that are not
    bots: one e-mail each listing up to 100 of those tokens, which are marked (also when the owner
    receives no e-mail: blocked, a bot account, notifications disabled)."""
    today = ctx.today()
    where = _candidates(notice, today)
    user_ids = list(
        ctx.db.scalars(
            select(PAT.user_id)
            .join(User, User.id == PAT.user_id)
            .where(*where, User.user_type != BOT_TYPE, PAT.user_id > after)
            .distinct()
            .order_by(PAT.user_id)
            .limit(limit)
        ).all()
    )
    batch = Batch(after=user_ids[-1] if user_ids else None)
    if not user_ids:
        return batch
    users = list(ctx.db.scalars(select(User).where(User.id.in_(user_ids)).order_by(User.id)).all())
    tokens: dict[int, list[PersonalAccessToken]] = {}
    for token in ctx.db.scalars(
        select(PAT).where(*where, PAT.user_id.in_(user_ids)).order_by(PAT.user_id, PAT.expires_at, PAT.id)
    ):
        tokens.setdefault(token.user_id, []).append(token)
    receivers = {u.id for u in wants_mail(ctx, users)}
    done: list[int] = []
    for user in users:
        listed = tokens.get(user.id, [])[: mails.MAX_TOKENS]
        if not listed:
            continue
        if user.id in receivers:
            key = f"token-{notice.key}:user:{user.id}:{today.isoformat()}"
            if notice.expired:
                message = mails.send_expired(ctx, user, listed, key)
            else:
                message = mails.send_about_to_expire(ctx, user, listed, notice.days, key)
            if message is None:
                # Already e-mailed today: these tokens were not in it; they wait for tomorrow.
                batch.skipped += len(listed)
                batch.notes.append(f"@{user.username}: already e-mailed today, {len(listed)} token(s) wait")
                continue
            batch.emails.append(message)
        else:
            batch.notes.append(f"@{user.username}: receives no e-mail, {len(listed)} token(s) marked")
        done.extend(t.id for t in listed)
    _mark(ctx, notice, done)
    batch.tokens = len(done)
    return batch


def notify_bots(
    ctx: Ctx, notice: Notice, *, after: int = 0, limit: int = 100, hook: BotHook | None = None
) -> Batch:
    """The next ``limit`` project/group bot tokens (by id, after ``after``) due ``notice``: one
    e-mail per token to each Owner/Maintainer who wants it, ``hook`` called, the token marked.
    A bot whose project or group is gone is skipped (and not marked), as GitLab does."""
    today = ctx.today()
    rows = ctx.db.execute(
        select(PAT, User)
        .join(User, User.id == PAT.user_id)
        .where(*_candidates(notice, today), User.user_type == BOT_TYPE, PAT.id > after)
        .order_by(PAT.id)
        .limit(limit)
    ).all()
    batch = Batch(after=rows[-1][0].id if rows else None)
    done: list[int] = []
    for token, bot in rows:
        found = bot_token_recipients(ctx, bot)
        if found is None:
            batch.skipped += 1
            batch.notes.append(f"@{bot.username}: its project or group is gone, skipped")
            continue
        for user in found.users:
            key = f"token-{notice.key}:token:{token.id}:user:{user.id}"
            if notice.expired:
                message = mails.send_bot_expired(ctx, user, token, found.resource, key)
            else:
                message = mails.send_bot_about_to_expire(ctx, user, token, found.resource, key)
            if message is not None:
                batch.emails.append(message)
        if not found.users:
            batch.notes.append(f"@{bot.username}: nobody to tell, marked")
        if hook is not None:
            hook(ctx, token, found.resource)
        done.append(token.id)
    _mark(ctx, notice, done)
    batch.tokens = len(done)
    return batch
