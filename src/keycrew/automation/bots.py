"""The cleanup job for project and group bots whose tokens are all inactive."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select

from keycrew.actions.deletion import delete_bot
from keycrew.automation.jobs import Job, JobRun
from keycrew.context import Actor, Ctx
from keycrew.identity.internal import admin_bot
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.instance.settings import instance_settings
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens.models import PersonalAccessToken

# Bots looked at per transaction by the job: a deletion moves the bot's records to the Ghost User
# (tens of milliseconds each), and a batch holds SQLite's write lock while it works.
BATCH_SIZE = 50


def _inactive_since(token: PersonalAccessToken) -> dt.datetime | None:
    """When the token stopped being active (None while it is active or may still be)."""
    moments: list[dt.datetime] = []
    if token.revoked:
        moments.append(token.revoked_at or token.updated_at)
    if token.expires_at is not None:
        moments.append(dt.datetime.combine(token.expires_at, dt.time(), dt.UTC))
    return min(moments) if moments else None


def due_at(tokens: list[PersonalAccessToken], days: int) -> dt.datetime | None:
    """When a bot with these tokens becomes due for deletion: ``days`` (the instance's
    inactive_resource_access_tokens_delete_after_days) after its last token stopped being active.
    None while one of its tokens is active or never stops (and for a bot with no token at all,
    which the job never deletes)."""
    stops = [_inactive_since(t) for t in tokens]
    if not stops or any(stop is None for stop in stops):
        return None
    return max(s for s in stops if s is not None) + dt.timedelta(days=days)


def _first_run_from(moment: dt.datetime) -> dt.date:
    """The day of the job's first run at or after ``moment`` (it runs daily at 00:00 UTC)."""
    moment = moment.astimezone(dt.UTC)
    day = moment.date()
    return day if moment == dt.datetime.combine(day, dt.time(), dt.UTC) else day + dt.timedelta(days=1)


@dataclass(frozen=True)
class BotTokens:
    """What a project or group bot's tokens say about its membership (its Members row)."""

    # Whether one of its tokens is still active.
    active: bool
    # While active: the day the last of its active tokens expires (None: one never expires).
    expires_at: dt.date | None = None
    # Once none is active: "revoked" or "expired" (how its last token stopped), and the day the
    # delete-inactive-bots job removes the bot.
    stopped: str | None = None
    removed_on: dt.date | None = None


def bot_tokens(ctx: Ctx, bot_ids: list[int]) -> dict[int, BotTokens]:
    """The token standing of each bot in ``bot_ids`` that has a token, in one query; the removal
    day follows the job's rule (``due_at``) and its daily schedule."""
    if not bot_ids:
        return {}
    days = instance_settings(ctx).inactive_resource_access_tokens_delete_after_days
    now = ctx.now()
    today = now.date()
    tokens: dict[int, list[PersonalAccessToken]] = defaultdict(list)
    for token in ctx.db.scalars(
        select(PersonalAccessToken).where(PersonalAccessToken.user_id.in_(sorted(set(bot_ids))))
    ):
        tokens[token.user_id].append(token)
    found: dict[int, BotTokens] = {}
    for bot_id, owned in tokens.items():
        live = [t for t in owned if t.is_active(today)]
        if live:
            expiries = [t.expires_at for t in live]
            latest = None if any(e is None for e in expiries) else max(e for e in expiries if e is not None)
            found[bot_id] = BotTokens(active=True, expires_at=latest)
            continue
        due = due_at(owned, days)
        last = max(owned, key=lambda t: _inactive_since(t) or now)
        revoked_first = last.revoked and (
            last.expires_at is None
            or (last.revoked_at or last.updated_at) < dt.datetime.combine(last.expires_at, dt.time(), dt.UTC)
        )
        stopped = "revoked" if revoked_first else "expired"
        removed_on = None if due is None else _first_run_from(max(due, now))
        found[bot_id] = BotTokens(active=False, stopped=stopped, removed_on=removed_on)
    return found


@dataclass
class CleanupResult:
    deleted_bot_ids: list[int] = field(default_factory=list)
    kept_bot_ids: list[int] = field(default_factory=list)
    # One line per deleted bot: "deleted bot @project_7_bot_... (project group/app)".
    notes: list[str] = field(default_factory=list)
    # The highest bot id looked at (where the next batch starts); 0 when there was none.
    last_id: int = 0


def _resources(ctx: Ctx, bots: list[User]) -> dict[int, str]:
    """What each bot belongs to, for the notes: "project a/b" or "group a"."""
    projects = [b.bot_resource_id for b in bots if b.bot_resource_type == "Project" and b.bot_resource_id]
    groups = [b.bot_resource_id for b in bots if b.bot_resource_type == "Namespace" and b.bot_resource_id]
    project_paths = dict(
        ctx.db.execute(select(Project.id, Project.full_path).where(Project.id.in_(projects))).all()
    )
    group_paths = dict(
        ctx.db.execute(select(Namespace.id, Namespace.full_path).where(Namespace.id.in_(groups))).all()
    )
    described: dict[int, str] = {}
    for bot in bots:
        if bot.bot_resource_type == "Namespace":
            described[bot.id] = f"group {group_paths.get(bot.bot_resource_id or 0, bot.bot_resource_id)}"
        else:
            described[bot.id] = f"project {project_paths.get(bot.bot_resource_id or 0, bot.bot_resource_id)}"
    return described


def cleanup_batch(ctx: Ctx, *, after_id: int = 0, size: int = BATCH_SIZE) -> CleanupResult:
    """Look at the next ``size`` bots by id after ``after_id`` (keyset order) and delete those none
    of whose tokens has been active for the instance's delay (default 30 days).

    A bot with a token that is still active, has no expiry, or stopped less than the delay ago is
    kept. Deletions are attributed to the Admin Bot, records go to the Ghost User. Each deletion
    is final in the caller's transaction: a batch run again finds only the bots that are left.
    """
    days = instance_settings(ctx).inactive_resource_access_tokens_delete_after_days
    now = ctx.now()
    today = now.date()
    result = CleanupResult(last_id=after_id)
    bots = list(
        ctx.db.scalars(
            select(User)
            .where(User.user_type == int(UserType.PROJECT_BOT), User.id > after_id)
            .order_by(User.id)
            .limit(size)
        )
    )
    if not bots:
        return result
    result.last_id = bots[-1].id
    tokens: dict[int, list[PersonalAccessToken]] = defaultdict(list)
    for token in ctx.db.scalars(
        select(PersonalAccessToken).where(PersonalAccessToken.user_id.in_([b.id for b in bots]))
    ):
        tokens[token.user_id].append(token)
    resources = _resources(ctx, bots)
    actor_ctx = ctx.as_actor(Actor(user=admin_bot(ctx), ip=ctx.actor.ip, via="system"))
    for bot in bots:
        owned = tokens.get(bot.id, [])
        due = due_at(owned, days)
        still_active = any(t.is_active(today) for t in owned)
        if not still_active and due is not None and due <= now:
            delete_bot(actor_ctx, bot, reason="No active token assigned")
            result.deleted_bot_ids.append(bot.id)
            result.notes.append(f"deleted bot @{bot.username} ({resources[bot.id]})")
        else:
            result.kept_bot_ids.append(bot.id)
    return result


def delete_inactive_bots(ctx: Ctx, *, size: int = BATCH_SIZE) -> CleanupResult:
    """Every bot, batch after batch, in the caller's one transaction (the job commits each batch
    in a transaction of its own instead)."""
    total = CleanupResult()
    while True:
        batch = cleanup_batch(ctx, after_id=total.last_id, size=size)
        if batch.last_id == total.last_id:
            return total
        total.deleted_bot_ids += batch.deleted_bot_ids
        total.kept_bot_ids += batch.kept_bot_ids
        total.notes += batch.notes
        total.last_id = batch.last_id


def _run_delete_inactive_bots(run: JobRun) -> None:
    with run.batch() as ctx:
        total = ctx.db.scalar(
            select(func.count()).select_from(User).where(User.user_type == int(UserType.PROJECT_BOT))
        )
    run.progress.start(int(total or 0))
    run.count("deleted", 0)
    run.count("kept", 0)
    last_id = 0
    while True:
        with run.batch() as ctx:
            result = cleanup_batch(ctx, after_id=last_id)
        if result.last_id == last_id:
            return
        last_id = result.last_id
        run.count("deleted", len(result.deleted_bot_ids))
        run.count("kept", len(result.kept_bot_ids))
        for line in result.notes:
            run.note(line)
        run.progress.advance(len(result.deleted_bot_ids) + len(result.kept_bot_ids))


delete_inactive_bots_job = Job(
    "delete-inactive-bots",
    # GitLab: ResourceAccessTokens::InactiveTokensDeletionCronWorker, daily at 00:00 UTC.
    "0 0 * * *",
    "Delete project/group bots whose tokens have all been inactive for "
    "inactive_resource_access_tokens_delete_after_days (default 30); their records go to the "
    "Ghost User.",
    _run_delete_inactive_bots,
)
