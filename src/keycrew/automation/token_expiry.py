"""The token expiry notification jobs (GitLab's ``PersonalAccessTokens::ExpiringWorker``, daily at
01:00 UTC, and ``ExpiredNotificationWorker``, daily at 02:00 UTC).

Each walks its candidates in keyset batches, one transaction each (keycrew.notifications.expiry
does one batch: the e-mails and the tokens' "sent" marks together), so a run killed mid-way loses
at most its open batch and the next run announces nothing twice. The 7-day notification of a
project or group bot's token also fires the resource's expiring-token webhook.
"""

from __future__ import annotations

from keycrew.automation.jobs import Job, JobRun
from keycrew.notifications.expiry import (
    EXPIRED_TODAY,
    INTERVALS,
    SEVEN_DAYS,
    Batch,
    Notice,
    notify_bots,
    notify_people,
)
from keycrew.webhooks.resource_tokens import fire_expiring

BATCH_SIZE = 100


def _report(run: JobRun, notice: Notice, batch: Batch) -> None:
    run.count("emails", len(batch.emails))
    run.count("tokens", batch.tokens)
    if batch.skipped:
        run.count("skipped", batch.skipped)
    verb = "would e-mail" if run.dry_run else "e-mailed"
    for message in batch.emails:
        run.note(f"{notice.key}: {verb} {message.to_address}: {message.subject}")
    for line in batch.notes:
        run.note(f"{notice.key}: {line}")


def _walk(run: JobRun, notice: Notice) -> None:
    """Every batch of ``notice``: people (by owner id), then bots' tokens (by token id)."""
    after = 0
    while True:
        with run.batch() as ctx:
            batch = notify_people(ctx, notice, after=after, limit=BATCH_SIZE)
        _report(run, notice, batch)
        run.progress.advance(batch.tokens + batch.skipped)
        if batch.after is None:
            break
        after = batch.after
    hook = fire_expiring if notice is SEVEN_DAYS else None
    after = 0
    while True:
        with run.batch() as ctx:
            batch = notify_bots(ctx, notice, after=after, limit=BATCH_SIZE, hook=hook)
        _report(run, notice, batch)
        run.progress.advance(batch.tokens + batch.skipped)
        if batch.after is None:
            break
        after = batch.after


def _run_expiring(run: JobRun) -> None:
    run.progress.start(None)
    for notice in INTERVALS:
        _walk(run, notice)


def _run_expired(run: JobRun) -> None:
    run.progress.start(None)
    _walk(run, EXPIRED_TODAY)


token_expiry_notifications_job = Job(
    "token-expiry-notifications",
    "0 1 * * *",
    "E-mail the owners of personal, project and group access tokens that expire within 60, 30 and "
    "7 days (each interval once per token); the 7-day notice of a bot's token also fires the "
    "resource's expiring-token webhook.",
    _run_expiring,
)

expired_token_notifications_job = Job(
    "expired-token-notifications",
    "0 2 * * *",
    "E-mail the owners of access tokens that expired today (once per token).",
    _run_expired,
)
