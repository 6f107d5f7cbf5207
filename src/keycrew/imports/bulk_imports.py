"""Direct transfer's use cases behind ``/bulk_imports``: start an import (after asking the source
whether it can be done), read one's imports and their entities, cancel one.

Starting an import checks, as GitLab's BulkImports::CreateService does, everything that can be
known before any copying, in three steps so that no transaction stays open while the source
answers: ``check_destinations`` (the destination namespace exists and the user may create there;
the destination full path is free, also among the entities of the same request), then
``probe_source`` outside any transaction (the source answers its REST API v4 and accepts the
token with ``api`` or ``read_api``; each source group or project exists), then ``create_import``
checks the destinations again and writes the import, its entities and the audit event in one
transaction. Each refusal is GitLab's 422 with its message, and nothing is written. Then the
``bulk-imports`` job (keycrew.automation.direct_transfer) does the copying. The source access
token is kept only sealed (keycrew.crypto), and only until the import ends.

Whether the source URL may point into the local network is the adapter's check
(keycrew.webhooks.urls, GitLab's ``allow_local_requests_from_web_hooks_and_services``), made
before this module talks to the source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select, update

from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import get_namespace
from keycrew.access.policy import can_read_group, effective_group_level
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.crypto import seal
from keycrew.errors import Forbidden, Invalid, NotFound, Unauthenticated, Unprocessable
from keycrew.identity.models import User
from keycrew.imports.bulk import (
    ENDED,
    TOKEN_LABEL,
    BulkImport,
    BulkImportEntity,
    BulkImportFailure,
    BulkImportStatus,
    EntityType,
    Stage,
)
from keycrew.imports.placeholders import normalized_hostname
from keycrew.imports.source import SourceAuthError, SourceClient, SourceError, SourceNotFound
from keycrew.infra.ratestore import RateStore
from keycrew.namespaces import paths

# GitLab's messages (BulkImports::Error and the API's destination check).
SCOPE_FAILURE = (
    "Import aborted as the provided personal access token does not have the required 'api' scope or "
    "is no longer valid."
)
INTO_ITSELF = (
    "Import failed. Destination cannot be a subgroup of the source group. "
    "Change the destination and try again."
)
# GitLab's bulk_import rate limit: six new migrations a minute per user (API and web together).
CREATE_LIMIT = 6
CREATE_PERIOD = 60
# Asking the source while the user waits: one retry, short timeouts (the job retries longer).
CHECK_TIMEOUT = 15.0
CHECK_RETRIES = 1
CHECK_BACKOFF = 0.5
# A source or destination path: relative, no protocol or host (GitLab's path validators).
RELATIVE_PATH = re.compile(r"^[\w.\-]+(?:/[\w.\-]+)*$")
INVALID_URL = "Invalid source URL. Enter only the base URL of the source GitLab instance."
SOURCE_TYPES = {"group_entity": EntityType.GROUP, "project_entity": EntityType.PROJECT}


def destination_invalid(namespace: str) -> str:
    return f"Import failed. Destination '{namespace}' is invalid, or you don't have permission."


def destination_taken(full_path: str) -> str:
    return f"Import aborted as '{full_path}' already exists. Change the destination and try again."


def source_missing(kind: str, full_path: str) -> str:
    return (
        f"Import failed. The source {kind} '{full_path}' was not found, or the access token cannot read it."
    )


@dataclass(frozen=True)
class EntityRequest:
    """One group or project to copy, as the API's ``entities[]`` gives it (already well-formed)."""

    source_type: str  # "group_entity" or "project_entity"
    source_full_path: str
    destination_slug: str
    # The destination parent's full path ("" = top level).
    destination_namespace: str
    migrate_projects: bool = True
    migrate_memberships: bool = True

    @property
    def entity_type(self) -> EntityType:
        return SOURCE_TYPES[self.source_type]

    @property
    def destination_full_path(self) -> str:
        return "/".join(part for part in (self.destination_namespace, self.destination_slug) if part)


def _require_user(ctx: Ctx) -> User:
    user = ctx.actor.user
    if user is None:
        raise Unauthenticated()
    return user


def _check_destination(ctx: Ctx, user: User, wanted: EntityRequest) -> None:
    """The user may create ``wanted`` there: a top-level group if they may create groups; under a
    group where they are Maintainer or more (GitLab's create_subgroup / import_projects); a project
    in their own namespace."""
    namespace_path = wanted.destination_namespace
    if not namespace_path:
        if wanted.entity_type is EntityType.PROJECT:
            raise Unprocessable(destination_invalid(namespace_path))
        if not (user.can_create_group or ctx.actor.is_admin):
            raise Unprocessable(destination_invalid(namespace_path))
        return
    namespace = get_namespace(ctx, namespace_path) if not namespace_path.isdigit() else None
    if namespace is None:
        raise Unprocessable(destination_invalid(namespace_path))
    if namespace.kind != "group":
        if wanted.entity_type is EntityType.PROJECT and namespace.owner_id == user.id:
            return
        raise Unprocessable(destination_invalid(namespace_path))
    if not can_read_group(ctx.reads, ctx.actor, namespace, ctx.today()):
        raise Unprocessable(destination_invalid(namespace_path))
    if effective_group_level(ctx.reads, ctx.actor, namespace, ctx.today()) < AccessLevel.MAINTAINER:
        raise Unprocessable(destination_invalid(namespace_path))


def _check_source(source: SourceClient, wanted: EntityRequest) -> None:
    try:
        if wanted.entity_type is EntityType.GROUP:
            source.group(wanted.source_full_path)
        else:
            source.project(wanted.source_full_path)
    except SourceNotFound:
        raise Unprocessable(source_missing(wanted.entity_type.value, wanted.source_full_path)) from None
    except SourceAuthError:
        raise Unprocessable(SCOPE_FAILURE) from None
    except SourceError as exc:
        raise Unprocessable(exc.message) from None


def _same_instance(ctx: Ctx, source_url: str | None) -> bool:
    if source_url is None:
        return False
    try:
        return normalized_hostname(source_url) == normalized_hostname(ctx.instance.external_url)
    except (Invalid, ValueError):
        return False


def check_destinations(ctx: Ctx, entities: Sequence[EntityRequest], *, source_url: str | None = None) -> None:
    """What can be refused without asking the source: each destination is the user's to create
    in, and free (also among ``entities``); from this very instance, a group is not copied into
    itself (its copy would be one of its own subgroups, found again and again). Raises
    Unprocessable with GitLab's message."""
    user = _require_user(ctx)
    same_instance = _same_instance(ctx, source_url)
    wanted_paths: set[str] = set()
    for wanted in entities:
        if (
            same_instance
            and wanted.entity_type is EntityType.GROUP
            and (wanted.destination_namespace.lower() + "/").startswith(wanted.source_full_path.lower() + "/")
        ):
            raise Unprocessable(INTO_ITSELF)
        _check_destination(ctx, user, wanted)
        full_path = wanted.destination_full_path
        if full_path.lower() in wanted_paths or paths.route_taken(ctx.db, full_path):
            raise Unprocessable(destination_taken(full_path))
        wanted_paths.add(full_path.lower())


def over_create_limit(store: RateStore, user_id: int) -> bool:
    """Count one more migration started by ``user_id``; True past the limit (answered 429)."""
    count, _end = store.hit(f"bulk_import:{user_id}", CREATE_PERIOD)
    return count > CREATE_LIMIT


def ask_source(url: str, access_token: str, entities: Sequence[EntityRequest]) -> tuple[str, str | None]:
    """``probe_source`` with a reader made for the waiting user (short timeouts, one retry):
    the source's normalised URL and its version. Raises Unprocessable (a URL that is not a base
    URL, or the source's refusal)."""
    try:
        source = SourceClient(
            url, access_token, timeout=CHECK_TIMEOUT, retries=CHECK_RETRIES, backoff=CHECK_BACKOFF
        )
    except SourceError:
        raise Unprocessable(INVALID_URL) from None
    with source:
        return source.url, probe_source(source, entities)


def probe_source(source: SourceClient, entities: Sequence[EntityRequest]) -> str | None:
    """Ask the source whether the import can be done: it answers, accepts the token with ``api``
    or ``read_api``, and has each source group or project. Returns its version; raises
    Unprocessable with GitLab's message. Touches no database: the caller holds no transaction
    while the source answers."""
    try:
        version = source.version()
        source.check_token()
    except SourceAuthError:
        raise Unprocessable(SCOPE_FAILURE) from None
    except SourceError as exc:
        raise Unprocessable(exc.message) from None
    for wanted in entities:
        _check_source(source, wanted)
    text = str(version.get("version") or "")[:64]
    return text or None


def create_import(
    ctx: Ctx,
    source_url: str,
    source_version: str | None,
    access_token: str,
    entities: Sequence[EntityRequest],
) -> BulkImport:
    """Write an import of ``entities`` from the source at ``source_url`` (already probed with
    ``probe_source``), its entities and its audit event, the token sealed. The destinations are
    checked again (one may have been taken while the source answered)."""
    user = _require_user(ctx)
    check_destinations(ctx, entities, source_url=source_url)
    now = ctx.now()
    bulk_import = BulkImport(
        user_id=user.id,
        status=BulkImportStatus.CREATED.value,
        source_type="gitlab",
        source_url=source_url,
        source_version=source_version,
        access_token_sealed=seal(ctx.instance.secret_key, TOKEN_LABEL, access_token),
        has_failures=False,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(bulk_import)
    ctx.db.flush()
    for wanted in entities:
        ctx.db.add(
            BulkImportEntity(
                bulk_import_id=bulk_import.id,
                parent_id=None,
                status=BulkImportStatus.CREATED.value,
                entity_type=wanted.entity_type.value,
                source_full_path=wanted.source_full_path,
                destination_slug=wanted.destination_slug,
                destination_namespace=wanted.destination_namespace,
                migrate_projects=wanted.migrate_projects,
                migrate_memberships=wanted.migrate_memberships,
                stage=(Stage.GROUP if wanted.entity_type is EntityType.GROUP else Stage.PROJECT).value,
                has_failures=False,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
    ctx.db.flush()
    record(
        ctx,
        Event.BULK_IMPORT_CREATED,
        Entity("User", user.id, user.username),
        Target("BulkImport", bulk_import.id, source_url),
        source_url=source_url,
        entities=[
            {"source_full_path": w.source_full_path, "destination_full_path": w.destination_full_path}
            for w in entities
        ],
    )
    return bulk_import


# -- reads ------------------------------------------------------------------------------------------


def _visible(ctx: Ctx) -> Any:
    """Users see their own imports (GitLab's ImportsFinder), admins included."""
    user = _require_user(ctx)
    return BulkImport.user_id == user.id


def imports_query(ctx: Ctx, *, status: str | None = None, sort: str = "desc") -> Select[Any]:
    query = select(BulkImport).where(_visible(ctx))
    if status is not None:
        query = query.where(BulkImport.status == status)
    order = BulkImport.id.asc() if sort == "asc" else BulkImport.id.desc()
    return query.order_by(order)


def find_import(ctx: Ctx, import_id: int) -> BulkImport:
    found = ctx.db.scalars(select(BulkImport).where(BulkImport.id == import_id, _visible(ctx))).first()
    if found is None:
        raise NotFound("BulkImport")  # GitLab: 404 Not found
    return found


def entities_query(
    ctx: Ctx, *, bulk_import: BulkImport | None = None, status: str | None = None, sort: str = "asc"
) -> Select[Any]:
    """The entities of one import, or of every import the user may see."""
    query = select(BulkImportEntity)
    if bulk_import is not None:
        query = query.where(BulkImportEntity.bulk_import_id == bulk_import.id)
    else:
        query = query.join(BulkImport, BulkImport.id == BulkImportEntity.bulk_import_id).where(_visible(ctx))
    if status is not None:
        query = query.where(BulkImportEntity.status == status)
    order = BulkImportEntity.id.desc() if sort == "desc" else BulkImportEntity.id.asc()
    return query.order_by(order)


def find_entity(ctx: Ctx, bulk_import: BulkImport, entity_id: int) -> BulkImportEntity:
    found = ctx.db.scalars(
        select(BulkImportEntity).where(
            BulkImportEntity.id == entity_id, BulkImportEntity.bulk_import_id == bulk_import.id
        )
    ).first()
    if found is None:
        raise NotFound("BulkImports::Entity")
    return found


def failures_query(entity: BulkImportEntity) -> Select[Any]:
    return (
        select(BulkImportFailure)
        .where(BulkImportFailure.entity_id == entity.id)
        .order_by(BulkImportFailure.id)
    )


def failures_of(ctx: Ctx, entity_ids: Sequence[int]) -> dict[int, list[BulkImportFailure]]:
    """The failures of each of ``entity_ids``, oldest first, in one query."""
    found: dict[int, list[BulkImportFailure]] = {entity_id: [] for entity_id in entity_ids}
    if entity_ids:
        rows = ctx.db.scalars(
            select(BulkImportFailure)
            .where(BulkImportFailure.entity_id.in_(list(entity_ids)))
            .order_by(BulkImportFailure.id)
        )
        for row in rows:
            found[row.entity_id].append(row)
    return found


def destination_full_path(entity: BulkImportEntity) -> str:
    return "/".join(part for part in (entity.destination_namespace, entity.destination_slug) if part)


def stats_of(entity: BulkImportEntity) -> dict[str, Any]:
    if not entity.stats:
        return {}
    try:
        value = json.loads(entity.stats)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# -- cancel -----------------------------------------------------------------------------------------


def cancel_import(ctx: Ctx, import_id: int) -> BulkImport:
    """Stop an import: it and every entity not yet ended become ``canceled`` and the source token
    is erased; what was already copied stays. The job sees it before its next batch. An import
    that has already ended is left as it is. Its user or an admin may (GitLab: 404 for an import
    that does not exist, 403 for someone else's)."""
    user = _require_user(ctx)
    bulk_import = ctx.db.get(BulkImport, import_id)
    if bulk_import is None:
        raise NotFound("")
    if bulk_import.user_id != user.id and not ctx.actor.is_admin:
        raise Forbidden()
    if BulkImportStatus(bulk_import.status) in ENDED:
        return bulk_import
    now = ctx.now()
    ended = [status.value for status in ENDED]
    ctx.db.execute(
        update(BulkImportEntity)
        .where(BulkImportEntity.bulk_import_id == bulk_import.id, BulkImportEntity.status.not_in(ended))
        .values(status=BulkImportStatus.CANCELED.value, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    bulk_import.status = BulkImportStatus.CANCELED.value
    bulk_import.access_token_sealed = None
    bulk_import.updated_at = now
    record(
        ctx,
        Event.BULK_IMPORT_CANCELED,
        Entity("User", user.id, user.username),
        Target("BulkImport", bulk_import.id, bulk_import.source_url),
    )
    ctx.db.flush()
    return bulk_import
