"""The cleanup job for project and group bots whose tokens are all inactive."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from keycrew.actions.deletion import delete_bot
from keycrew.automation.jobs import Job, JobRun
from keycrew.context import Actor, Ctx
from keycrew.identity.internal import admin_bot
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.instance.settings import instance_settings
from keycrew.tokens.models import PersonalAccessToken


def _inactive_since(token: PersonalAccessToken) -> dt.datetime | None:
    """When the token stopped being active (None while it is active or may still be)."""
    moments: list[dt.datetime] = []
    if token.revoked:
        moments.append(token.revoked_at or token.updated_at)
    if token.expires_at is not None:
        moments.append(dt.datetime.combine(token.expires_at, dt.time(), dt.UTC))
    return min(moments) if moments else None


@dataclass(frozen=True)
class CleanupResult:
    deleted_bot_ids: list[int]
    kept_bot_ids: list[int]


def delete_inactive_bots(ctx: Ctx, *, limit: int = 1000) -> CleanupResult:
    """Delete bots none of whose tokens has been active for the instance's delay (default 30 days).

    A bot with a token that is still active, has no expiry, or stopped less than the delay ago is
    kept. Deletions are attributed to the Admin Bot, records go to the Ghost User.
    """
    days = instance_settings(ctx).inactive_resource_access_tokens_delete_after_days
    now = ctx.now()
    today = now.date()
    cutoff = now - dt.timedelta(days=days)
    actor_ctx = ctx.as_actor(Actor(user=admin_bot(ctx), ip=ctx.actor.ip, via="system"))
    deleted: list[int] = []
    kept: list[int] = []
    bots = ctx.db.scalars(
        select(User).where(User.user_type == int(UserType.PROJECT_BOT)).order_by(User.id).limit(limit)
    ).all()
    for bot in bots:
        tokens = ctx.db.scalars(
            select(PersonalAccessToken).where(PersonalAccessToken.user_id == bot.id)
        ).all()
        stops = [_inactive_since(t) for t in tokens]
        still_active = any(t.is_active(today) for t in tokens)
        if tokens and not still_active and all(s is not None and s <= cutoff for s in stops):
            delete_bot(actor_ctx, bot, reason="No active token assigned")
            deleted.append(bot.id)
        else:
            kept.append(bot.id)
    return CleanupResult(deleted, kept)


def _run_delete_inactive_bots(run: JobRun) -> None:
    with run.batch() as ctx:
        result = delete_inactive_bots(ctx)
    run.count("deleted", len(result.deleted_bot_ids))
    run.count("kept", len(result.kept_bot_ids))


delete_inactive_bots_job = Job(
    "delete-inactive-bots",
    "50 * * * *",
    "Delete project/group bots whose tokens have all been inactive for "
    "inactive_resource_access_tokens_delete_after_days (default 30); their records go to the "
    "Ghost User.",
    _run_delete_inactive_bots,
)
