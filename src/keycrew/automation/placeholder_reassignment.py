"""The ``placeholder-reassignment`` job: carry accepted placeholder reassignments through.

GitLab's Import::ReassignPlaceholderUserRecordsWorker. For each source user in
``reassignment_in_progress`` (oldest first), the placeholder's issues, notes, events and
memberships move to the chosen user one batch per transaction (keycrew.imports.reassignment's
``move_batch``); when nothing is left, the same kind of transaction deletes the placeholder and
marks the source user ``completed``. A moved row no longer matches the placeholder, so a run killed
at any point loses at most its open batch and the next run moves only what is left. A failure is
counted on the source user and retried by the next run; after ``MAX_ATTEMPTS`` it is ``failed``
with the error.
"""

from __future__ import annotations

import logging

from keycrew.automation.jobs import Job, JobRun
from keycrew.imports import reassignment

log = logging.getLogger("keycrew.jobs.placeholder_reassignment")


def reassign_records(run: JobRun, source_user_id: int, batch_size: int | None = None) -> bool:
    """One source user's reassignment to its end, a batch per transaction; False when it was not
    (or no longer) in progress."""
    limit = reassignment.BATCH_SIZE if batch_size is None else batch_size
    while True:
        with run.batch() as ctx:
            done = reassignment.move_batch(ctx, source_user_id, limit)
        if done.moved:
            run.count("records moved", done.moved)
            run.progress.advance(done.moved)
            continue
        if done.completed:
            run.count("reassignments completed")
            run.note(f"completed the reassignment of source user {source_user_id}")
        return done.completed


def run_reassignments(run: JobRun) -> None:
    with run.batch() as ctx:
        due = reassignment.in_progress(ctx)
    for source_user_id in due:
        if run.dry_run:
            run.count("reassignments to complete")
            continue
        try:
            reassign_records(run, source_user_id)
        except Exception as exc:  # one source user's failure must not hold up the others
            log.exception("reassignment of source user %s failed", source_user_id)
            with run.batch() as ctx:
                final = reassignment.record_failure(ctx, source_user_id, f"{type(exc).__name__}: {exc}")
            run.count("failed")
            run.note(
                f"reassignment of source user {source_user_id} failed: {type(exc).__name__}"
                + ("" if final else "; retried on the next run")
            )


placeholder_reassignment_job = Job(
    "placeholder-reassignment",
    "* * * * *",
    "Move the contributions and memberships of placeholder users whose reassignment was accepted "
    "to the chosen users, in batches, then delete the placeholders.",
    run_reassignments,
)
