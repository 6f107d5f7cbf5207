"""The background jobs keycrew knows: a name, what it does, and how to run it once.

Each job runs in one transaction as the system; the Admin Bot is the author of what it changes.
Adapters (the CLI today, a scheduler later) look jobs up here and print the result's summary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from keycrew.automation.bots import delete_inactive_bots
from keycrew.context import Ctx


@dataclass(frozen=True)
class Job:
    name: str
    description: str
    # Runs the job once in the caller's transaction; returns a one-line summary of what it did.
    run: Callable[[Ctx], str]


def _delete_inactive_bots(ctx: Ctx) -> str:
    result = delete_inactive_bots(ctx)
    return f"deleted {len(result.deleted_bot_ids)} bot(s), kept {len(result.kept_bot_ids)}"


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "delete-inactive-bots",
            "Delete project/group bots whose tokens have all been inactive for "
            "inactive_resource_access_tokens_delete_after_days (default 30); their records go to the "
            "Ghost User.",
            _delete_inactive_bots,
        ),
    )
}
