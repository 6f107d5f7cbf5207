"""Every background job by name, with its schedule: what the CLI, the scheduler and the admin page list."""

from __future__ import annotations

from keycrew.automation.admin_bot import ADMIN_BOT_JOBS
from keycrew.automation.bots import delete_inactive_bots_job
from keycrew.automation.direct_transfer import bulk_imports_job
from keycrew.automation.ghost import ghost_migration_job
from keycrew.automation.jobs import Job
from keycrew.automation.placeholder_reassignment import placeholder_reassignment_job
from keycrew.automation.token_expiry import expired_token_notifications_job, token_expiry_notifications_job

JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        delete_inactive_bots_job,
        ghost_migration_job,
        placeholder_reassignment_job,
        bulk_imports_job,
        *ADMIN_BOT_JOBS,
        token_expiry_notifications_job,
        expired_token_notifications_job,
    )
}
