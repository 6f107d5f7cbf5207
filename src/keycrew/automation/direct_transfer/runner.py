"""Running direct transfers: which entity is due, its stages in order, and what happens when one
fails (a retry later, or the entity failed with nothing half made), and the import's own status.

An entity is due while it and its import have not ended and its ``retry_at`` (if any) has passed;
the oldest (lowest id) goes first, so a group's entity runs before the entities it queued. A
stage runs to its end, batch by batch, then one transaction moves ``stage`` on (cursor cleared,
attempts reset). The import is ``started`` with its first entity, and when every entity has
ended it is ``finished`` if at least one finished, else ``failed``; its token is erased in that
same transaction. Imports with no progress for 24 hours time out.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Select, func, or_, select

from keycrew.actions.projects import delete_project
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.automation.direct_transfer import packages, repository, stages
from keycrew.automation.direct_transfer.work import Stopped, Work, add_failure, describe
from keycrew.automation.jobs import JobRun
from keycrew.context import Actor, Ctx
from keycrew.crypto import unseal
from keycrew.errors import KeycrewError
from keycrew.identity.models import User
from keycrew.imports.bulk import (
    ENDED,
    GROUP_STAGES,
    PROJECT_STAGES,
    TOKEN_LABEL,
    BulkImport,
    BulkImportEntity,
    BulkImportStatus,
    EntityType,
    Stage,
)
from keycrew.imports.source import SourceClient, SourceError, SourceTransientError
from keycrew.instance.settings import settings_view
from keycrew.namespaces.models import Project
from keycrew.webhooks import urls

log = logging.getLogger("keycrew.jobs.bulk_imports")

# A stage that keeps failing transiently is tried this many times, then the entity fails.
MAX_ATTEMPTS = 5
# The pause before an entity is tried again: the source backoff times this, doubled each attempt.
RETRY_FACTOR = 30.0
RETRY_CAP = dt.timedelta(minutes=30)
# An import that made no progress this long times out (GitLab's stuck import worker: 24 hours).
TIMEOUT = dt.timedelta(hours=24)
ACTIVE = (BulkImportStatus.CREATED.value, BulkImportStatus.STARTED.value)


@dataclass(frozen=True)
class Claim:
    entity_id: int
    import_id: int
    user_id: int
    source_url: str
    token: str | None


# -- choosing work ----------------------------------------------------------------------------------


def _due_query(now: dt.datetime) -> Select[BulkImportEntity, BulkImport]:
    return (
        select(BulkImportEntity, BulkImport)
        .join(BulkImport, BulkImport.id == BulkImportEntity.bulk_import_id)
        .where(
            BulkImportEntity.status.in_(ACTIVE),
            BulkImport.status.in_(ACTIVE),
            or_(BulkImportEntity.retry_at.is_(None), BulkImportEntity.retry_at <= now),
        )
        .order_by(BulkImportEntity.id)
    )


def due_count(ctx: Ctx) -> int:
    return int(ctx.db.scalar(select(func.count()).select_from(_due_query(ctx.now()).subquery())) or 0)


def _as_user(ctx: Ctx, user_id: int) -> Ctx:
    user = ctx.db.get(User, user_id)
    return ctx if user is None else ctx.as_actor(Actor(user=user, via="system"))


def _import_entity(ctx: Ctx, bulk: BulkImport) -> tuple[Entity, Target]:
    """Where an import's audit events go: its user (as the API's create and cancel record them)."""
    user = ctx.db.get(User, bulk.user_id)
    return (
        Entity("User", bulk.user_id, None if user is None else user.username),
        Target("BulkImport", bulk.id, bulk.source_url),
    )


def claim_next(ctx: Ctx) -> Claim | None:
    """The oldest due entity, now ``started`` (and its import, audited when it starts)."""
    row = ctx.db.execute(_due_query(ctx.now()).limit(1)).first()
    if row is None:
        return None
    entity, bulk = row
    now = ctx.now()
    if entity.status == BulkImportStatus.CREATED.value:
        entity.status = BulkImportStatus.STARTED.value
        entity.updated_at = now
    if bulk.status == BulkImportStatus.CREATED.value:
        bulk.status = BulkImportStatus.STARTED.value
        bulk.updated_at = now
        where, what = _import_entity(ctx, bulk)
        record(
            _as_user(ctx, bulk.user_id),
            Event.BULK_IMPORT_STARTED,
            where,
            target=what,
            source_url=bulk.source_url,
        )
    token = (
        None
        if bulk.access_token_sealed is None
        else unseal(ctx.instance.secret_key, TOKEN_LABEL, bulk.access_token_sealed)
    )
    return Claim(entity.id, bulk.id, bulk.user_id, bulk.source_url, token)


# -- ending -----------------------------------------------------------------------------------------


def roll_up(ctx: Ctx, import_id: int) -> None:
    """End the import once every entity has ended: finished if any finished, else failed; the
    token is erased and the end audited in this transaction."""
    bulk = ctx.db.get(BulkImport, import_id)
    if bulk is None or bulk.status in ENDED:
        return
    rows = ctx.db.execute(
        select(BulkImportEntity.status, BulkImportEntity.has_failures).where(
            BulkImportEntity.bulk_import_id == import_id
        )
    ).all()
    if not rows or any(status not in ENDED for status, _ in rows):
        return
    finished = any(status == BulkImportStatus.FINISHED.value for status, _ in rows)
    bulk.status = (BulkImportStatus.FINISHED if finished else BulkImportStatus.FAILED).value
    bulk.has_failures = bulk.has_failures or any(failures for _, failures in rows)
    bulk.access_token_sealed = None
    bulk.updated_at = ctx.now()
    where, what = _import_entity(ctx, bulk)
    record(
        _as_user(ctx, bulk.user_id),
        Event.BULK_IMPORT_FINISHED if finished else Event.BULK_IMPORT_FAILED,
        where,
        target=what,
        source_url=bulk.source_url,
        has_failures=bulk.has_failures,
    )


def _remove_project(ctx: Ctx, entity: BulkImportEntity) -> None:
    """The partly filled project of a failed project entity goes (GitLab Admin Bot deletes it)."""
    project = ctx.db.get(Project, entity.project_id) if entity.project_id else None
    if project is not None:
        delete_project(ctx, project)
    entity.project_id = None


def _fail(ctx: Ctx, entity: BulkImportEntity, failure: dict[str, str | None]) -> None:
    entity.status = BulkImportStatus.FAILED.value
    entity.retry_at = None
    entity.updated_at = ctx.now()
    add_failure(
        ctx,
        entity,
        relation=failure.get("relation") or entity.stage,
        step=failure.get("step") or "pipeline",
        exception_class=failure.get("exception_class") or "Error",
        message=failure.get("exception_message") or "",
        source_url=failure.get("source_url"),
        source_title=failure.get("source_title"),
    )
    if entity.entity_type == EntityType.PROJECT.value:
        _remove_project(ctx, entity)


def fail_entity(ctx: Ctx, entity_id: int, failure: dict[str, str | None]) -> None:
    """``entity`` failed (one transaction, as GitLab Admin Bot): its failure recorded, its partly
    made project removed, the entities it queued failed with it, the import rolled up."""
    entity = ctx.db.get(BulkImportEntity, entity_id)
    if entity is None or entity.status in ENDED:
        return
    _fail(ctx, entity, failure)
    pending = [entity.id]
    while pending:
        children = ctx.db.scalars(
            select(BulkImportEntity)
            .where(BulkImportEntity.parent_id.in_(pending))
            .order_by(BulkImportEntity.id)
        ).all()
        pending = [child.id for child in children]
        for child in children:
            if child.status not in ENDED:
                _fail(
                    ctx,
                    child,
                    {
                        "relation": child.stage,
                        "step": "pipeline",
                        "exception_class": "ParentFailed",
                        "exception_message": f"the group {entity.source_full_path} above it failed",
                    },
                )
    roll_up(ctx, entity.bulk_import_id)


def _retry_or_fail(run: JobRun, entity_id: int, failure: dict[str, str | None]) -> None:
    with run.batch() as ctx:
        entity = ctx.db.get(BulkImportEntity, entity_id)
        if entity is None or entity.status in ENDED:
            return
        entity.attempts += 1
        if entity.attempts >= MAX_ATTEMPTS:
            fail_entity(ctx, entity_id, failure)
            run.count("entities failed")
            return
        pause = dt.timedelta(
            seconds=run.instance.import_source_backoff * RETRY_FACTOR * 2 ** (entity.attempts - 1)
        )
        entity.retry_at = ctx.now() + min(pause, RETRY_CAP)
        entity.updated_at = ctx.now()
        run.count("entities retried later")


def time_out_stale(ctx: Ctx) -> int:
    """Imports with no progress for ``TIMEOUT`` become ``timeout`` with their unended entities;
    their tokens are erased."""
    stale = ctx.db.scalars(
        select(BulkImport).where(BulkImport.status.in_(ACTIVE), BulkImport.updated_at < ctx.now() - TIMEOUT)
    ).all()
    for bulk in stale:
        for entity in ctx.db.scalars(
            select(BulkImportEntity).where(
                BulkImportEntity.bulk_import_id == bulk.id, BulkImportEntity.status.in_(ACTIVE)
            )
        ):
            entity.status = BulkImportStatus.TIMEOUT.value
            entity.updated_at = ctx.now()
        bulk.status = BulkImportStatus.TIMEOUT.value
        bulk.access_token_sealed = None
        bulk.updated_at = ctx.now()
        where, what = _import_entity(ctx, bulk)
        record(
            _as_user(ctx, bulk.user_id),
            Event.BULK_IMPORT_TIMED_OUT,
            where,
            target=what,
            source_url=bulk.source_url,
        )
    return len(stale)


# -- stages -----------------------------------------------------------------------------------------


def _next_stage(entity: BulkImportEntity) -> Stage:
    """The stage after the entity's current one (memberships only with ``migrate_memberships``)."""
    order = GROUP_STAGES if entity.entity_type == EntityType.GROUP.value else PROJECT_STAGES
    current = Stage(entity.stage)
    after = order[order.index(current) + 1 :] if current in order else ()
    for stage in after:
        if stage is not Stage.MEMBERS or entity.migrate_memberships:
            return stage
    return Stage.DONE


@dataclass(frozen=True)
class _Target:
    """What a stage copies, read in the transaction before it."""

    entity_type: str
    source_xid: int | None
    source_full_path: str


def _run_stage(work: Work, stage: Stage, entity: _Target) -> None:
    xid = entity.source_xid
    path = entity.source_full_path
    if stage is Stage.GROUP:
        stages.copy_group(work, path)
        return
    if stage is Stage.PROJECT:
        stages.copy_project(work, path)
        return
    if xid is None:
        raise KeycrewError(f"the {stage.value} stage ran before the source's id was known")
    actions: dict[Stage, Callable[[], None]] = {
        Stage.MEMBERS: lambda: stages.copy_members(work, xid, entity.entity_type),
        Stage.ISSUES: lambda: stages.copy_issues(work, xid),
        Stage.NOTES: lambda: stages.copy_notes(work, xid),
        Stage.REPOSITORY: lambda: repository.copy_repository(work, path),
        Stage.PACKAGES: lambda: packages.copy_packages(work, xid),
    }
    action = actions.get(stage)
    if action is not None:
        action()


def _advance(work: Work) -> bool:
    """Move the entity to its next stage; True when it is finished (and the import rolled up)."""
    with work.batch() as step:
        entity = step.entity
        following = _next_stage(entity)
        entity.stage = following.value
        entity.cursor = None
        entity.attempts = 0
        entity.retry_at = None
        if following is Stage.DONE:
            entity.status = BulkImportStatus.FINISHED.value
            roll_up(step.ctx, entity.bulk_import_id)
            work.run.count("entities finished")
            return True
    return False


def _blocked(ctx: Ctx, url: str) -> str | None:
    """Why the source URL may no longer be reached, checked again each time an entity starts (the
    admin may have turned local requests off, or the name may now resolve into the local
    network); None when it may."""
    try:
        urls.check(
            url,
            allow_local=settings_view(ctx).allow_local_requests_from_web_hooks_and_services,
            instance_host=ctx.instance.host,
            resolve_now=True,
        )
    except urls.BlockedUrl as exc:
        return exc.message
    return None


def process(run: JobRun, claim: Claim) -> None:
    """Run the claimed entity's stages to its end, or until it fails or must wait."""
    if claim.token is None:
        with run.batch() as ctx:
            fail_entity(
                ctx,
                claim.entity_id,
                {
                    "step": "pipeline",
                    "exception_class": "SourceAuthError",
                    "exception_message": "the source access token cannot be read (the secret key changed)",
                    "source_url": claim.source_url,
                },
            )
        return
    with run.batch() as ctx:
        blocked = _blocked(ctx, claim.source_url)
        if blocked is not None:
            fail_entity(
                ctx,
                claim.entity_id,
                {
                    "step": "pipeline",
                    "exception_class": "BlockedUrl",
                    "exception_message": f"URL is blocked: {blocked}",
                    "source_url": claim.source_url,
                },
            )
            run.count("entities failed")
            return
    instance = run.instance
    client = SourceClient(
        claim.source_url,
        claim.token,
        timeout=instance.import_source_timeout,
        retries=instance.import_source_retries,
        backoff=instance.import_source_backoff,
    )
    work = Work(run, claim.entity_id, claim.import_id, claim.user_id, client, claim.source_url, claim.token)
    stage = Stage.GROUP
    try:
        while True:
            with work.batch() as step:
                entity = step.entity
                stage = Stage(entity.stage)
                what = _Target(entity.entity_type, entity.source_xid, entity.source_full_path)
            if stage is Stage.DONE:
                _advance(work)
                return
            _run_stage(work, stage, what)
            if _advance(work):
                return
    except Stopped:
        run.count("entities stopped (import ended)")
    except SourceTransientError as exc:
        _retry_or_fail(run, claim.entity_id, exc.failure(relation=stage.value) | {"step": "extractor"})
    except SourceError as exc:
        with run.batch() as ctx:
            fail_entity(ctx, claim.entity_id, exc.failure(relation=stage.value) | {"step": "extractor"})
        run.count("entities failed")
    except repository.RepositoryCopyFailed as exc:
        failure: dict[str, str | None] = {
            "relation": stage.value,
            "step": "extractor",
            "exception_class": type(exc).__name__,
            "exception_message": exc.message,
            "source_url": claim.source_url,
        }
        if exc.transient:
            _retry_or_fail(run, claim.entity_id, failure)
        else:
            with run.batch() as ctx:
                fail_entity(ctx, claim.entity_id, failure)
            run.count("entities failed")
    except KeycrewError as exc:
        with run.batch() as ctx:
            fail_entity(
                ctx,
                claim.entity_id,
                {
                    "relation": stage.value,
                    "step": "loader",
                    "exception_class": type(exc).__name__,
                    "exception_message": describe(exc),
                },
            )
        run.count("entities failed")
    except Exception as exc:
        if run.guard is not None:
            run.guard()  # the run itself is stopping (its lease was lost): not the entity's fault
        log.exception("bulk import entity %s: stage %s failed", claim.entity_id, stage.value)
        _retry_or_fail(
            run,
            claim.entity_id,
            {
                "relation": stage.value,
                "step": "pipeline",
                "exception_class": type(exc).__name__,
                "exception_message": "an unexpected error stopped the stage (see the server's log)",
            },
        )
    finally:
        client.close()


def run_bulk_imports(run: JobRun) -> None:
    """The job's body: time out stale imports, then copy every due entity, oldest first, until
    none is due (entities waiting for a retry are left for a later run)."""
    with run.batch() as ctx:
        timed_out = time_out_stale(ctx)
    if timed_out:
        run.count("imports timed out", timed_out)
    if run.dry_run:
        with run.batch() as ctx:
            run.count("entities to copy", due_count(ctx))
        return
    claims: Counter[int] = Counter()
    while True:
        with run.batch() as ctx:
            claim = claim_next(ctx)
        if claim is None:
            return
        claims[claim.entity_id] += 1
        if claims[claim.entity_id] > MAX_ATTEMPTS + 2:
            # An entity that neither advances nor fails (it should not happen): left for a later run.
            log.warning("bulk import entity %s keeps coming back; left for the next run", claim.entity_id)
            return
        process(run, claim)
