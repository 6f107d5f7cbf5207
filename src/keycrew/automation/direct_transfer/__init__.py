"""The ``bulk-imports`` job: GitLab's direct transfer, copying groups and projects from another
GitLab (or keycrew) through its REST API v4.

Each import's entities (the groups and projects asked for, and those found below a group) walk
their stages in order (``keycrew.imports.bulk.Stage``): the group or project is made through
keycrew's own use cases, acting as the user who started the import, then its memberships
(for placeholder users), issues and comments (authored by placeholders, or GitLab Migration Bot
for unavailable authors), repository and PyPI packages. Every batch is one transaction that also
records what it copied, so a run killed at any point goes on where it stopped and copies nothing
twice (``runner``, ``stages``, ``repository``, ``packages``).
"""

from __future__ import annotations

from keycrew.automation.direct_transfer.runner import run_bulk_imports
from keycrew.automation.jobs import Job

bulk_imports_job = Job(
    "bulk-imports",
    "* * * * *",
    "Copy the groups and projects of direct transfers (bulk imports) from their source instances, "
    "in batches that resume where they stopped; time out imports stuck for 24 hours.",
    run_bulk_imports,
)

__all__ = ["bulk_imports_job", "run_bulk_imports"]
