"""Every background job by name, with its schedule: what the CLI, the scheduler and the admin page list."""

from __future__ import annotations

from keycrew.automation.bots import delete_inactive_bots_job
from keycrew.automation.jobs import Job

JOBS: dict[str, Job] = {job.name: job for job in (delete_inactive_bots_job,)}
