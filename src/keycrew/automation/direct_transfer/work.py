"""What every stage of a direct transfer works with: the entity being copied, the source client,
the transactions (one per batch, acting as the user who started the import), and the bookkeeping
each batch leaves behind (records of what was copied, failures, stats)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from keycrew.automation.jobs import JobRun
from keycrew.context import Actor, Ctx
from keycrew.errors import Invalid, KeycrewError
from keycrew.identity.models import User
from keycrew.imports.bulk import (
    ENDED,
    BulkImport,
    BulkImportEntity,
    BulkImportFailure,
    BulkImportRecord,
)
from keycrew.imports.placeholders import SourceAuthor
from keycrew.imports.source import JSONObject, SourceClient, SourceNotFound

# Source records written per transaction.
BATCH_SIZE = 50
# An import's updated_at is touched at most this often while it runs (what its timeout watches).
TOUCH_EVERY = dt.timedelta(minutes=1)
MESSAGE_MAX = 2000


class Stopped(Exception):
    """The entity or its import ended meanwhile (canceled, timed out): the stage stops here."""


def describe(exc: KeycrewError) -> str:
    """A keycrew refusal in words, for a failure's message ("path has already been taken")."""
    if isinstance(exc, Invalid) and exc.errors:
        return "; ".join(f"{name} {' and '.join(msgs)}".strip() for name, msgs in exc.errors.items())
    return str(exc) or type(exc).__name__


def parse_time(value: Any) -> dt.datetime | None:
    """A source timestamp (ISO 8601, "Z" or an offset) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def load_stats(entity: BulkImportEntity) -> dict[str, dict[str, int]]:
    try:
        found = json.loads(entity.stats or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def set_stats(entity: BulkImportEntity, relation: str, *, source: int, fetched: int, imported: int) -> None:
    """GitLab's entity stats: per relation, what the source had, what was read, what was made."""
    stats = load_stats(entity)
    stats[relation] = {"source": source, "fetched": fetched, "imported": imported}
    entity.stats = json.dumps(stats, sort_keys=True)


def load_cursor(entity: BulkImportEntity) -> dict[str, Any]:
    try:
        found = json.loads(entity.cursor or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def add_failure(
    ctx: Ctx,
    entity: BulkImportEntity,
    *,
    relation: str,
    step: str,
    exception_class: str,
    message: str,
    source_url: str | None = None,
    source_title: str | None = None,
) -> None:
    """One failure of ``entity`` (GitLab's BulkImports::Failure), marking it and its import."""
    ctx.db.add(
        BulkImportFailure(
            entity_id=entity.id,
            relation=relation,
            step=step,
            exception_class=exception_class[:128],
            exception_message=message[:MESSAGE_MAX],
            correlation_id_value=None,
            source_url=None if source_url is None else source_url[:1024],
            source_title=None if source_title is None else source_title[:1024],
            created_at=ctx.now(),
        )
    )
    entity.has_failures = True
    bulk = ctx.db.get(BulkImport, entity.bulk_import_id)
    if bulk is not None:
        bulk.has_failures = True


def recorded(ctx: Ctx, entity_id: int, relation: str, source_ids: Iterable[str]) -> set[str]:
    """Which of ``source_ids`` the entity already copied (or skipped for good)."""
    wanted = list(dict.fromkeys(source_ids))
    if not wanted:
        return set()
    return set(
        ctx.db.scalars(
            select(BulkImportRecord.source_id).where(
                BulkImportRecord.entity_id == entity_id,
                BulkImportRecord.relation == relation,
                BulkImportRecord.source_id.in_(wanted),
            )
        )
    )


def remember(ctx: Ctx, entity_id: int, relation: str, source_id: str, local_id: int | None) -> None:
    """Mark a source record done, in the transaction that copied it (``local_id`` None: skipped
    for good, a failure says why)."""
    ctx.db.add(
        BulkImportRecord(entity_id=entity_id, relation=relation, source_id=source_id, local_id=local_id)
    )


def imported_count(ctx: Ctx, entity_id: int, relation: str) -> int:
    return int(
        ctx.db.scalar(
            select(func.count(BulkImportRecord.id)).where(
                BulkImportRecord.entity_id == entity_id,
                BulkImportRecord.relation == relation,
                BulkImportRecord.local_id.is_not(None),
            )
        )
        or 0
    )


@dataclass
class Step:
    """One batch's transaction: acting as the importing user, with the entity and its import
    freshly read (and still running)."""

    ctx: Ctx
    entity: BulkImportEntity
    bulk: BulkImport


@dataclass
class Work:
    """One entity being copied in this run."""

    run: JobRun
    entity_id: int
    import_id: int
    user_id: int
    source: SourceClient
    # The source's base URL as the import holds it (placeholders are per source host).
    source_url: str
    # The source's access token, for what the source client does not read (git, package files).
    token: str = field(repr=False)
    batch_size: int = field(default_factory=lambda: BATCH_SIZE)
    _users: dict[int, JSONObject | None] = field(default_factory=dict, repr=False)

    @contextmanager
    def batch(self) -> Iterator[Step]:
        """One transaction acting as the importing user; Stopped when the entity or its import
        ended (canceled meanwhile), so that nothing more is written for it."""
        with self.run.batch() as system:
            step = self._step(system)
            yield step
            now = system.now()
            step.entity.updated_at = now
            if now - step.bulk.updated_at > TOUCH_EVERY:
                step.bulk.updated_at = now

    def _step(self, system: Ctx) -> Step:
        db = system.db
        entity = db.scalars(
            select(BulkImportEntity)
            .where(BulkImportEntity.id == self.entity_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
        bulk = db.scalars(
            select(BulkImport)
            .where(BulkImport.id == self.import_id)
            .execution_options(populate_existing=True)
        ).first()
        if entity is None or bulk is None or entity.status in ENDED or bulk.status in ENDED:
            raise Stopped("the import ended")
        user = db.get(User, self.user_id)
        if user is None:
            raise Stopped("the importing user is gone")
        return Step(system.as_actor(Actor(user=user, via="system")), entity, bulk)

    # -- source users -------------------------------------------------------------------------------

    def prefetch_users(self, people: Iterable[Mapping[str, Any] | None]) -> None:
        """Read the source's users behind ``people`` (authors) that are not known yet, before a
        batch's transaction opens: the source is not asked while the database waits."""
        for person in people:
            user_id = _person_id(person)
            if user_id is None or user_id in self._users:
                continue
            try:
                self._users[user_id] = self.source.user(user_id)
            except SourceNotFound:
                self._users[user_id] = None

    def author(self, person: Mapping[str, Any] | None) -> SourceAuthor | None:
        """The source author behind ``person`` (an issue's or note's ``author``) for ``author_for``:
        None when the source no longer has them."""
        user_id = _person_id(person)
        if user_id is None:
            return None
        if user_id not in self._users:
            self.prefetch_users([person])
        found = self._users.get(user_id)
        if found is None:
            return None
        return as_source_author(found)


def as_source_author(found: Mapping[str, Any]) -> SourceAuthor:
    """A source user as ``author_for`` takes them. The source's Ghost User is known by its type,
    or by GitLab's username for it where the source does not tell types."""
    user_type = found.get("user_type")
    username = found.get("username")
    if user_type is None and username == "ghost":
        user_type = "ghost"
    return SourceAuthor(
        identifier=str(found.get("id")),
        name=found.get("name") if isinstance(found.get("name"), str) else None,
        username=username if isinstance(username, str) else None,
        state=str(found.get("state") or "active"),
        user_type=user_type if isinstance(user_type, str) else None,
    )


def _person_id(person: Mapping[str, Any] | None) -> int | None:
    if not person:
        return None
    value = person.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        return int(value)
    except ValueError:
        return None
