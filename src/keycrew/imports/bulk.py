"""The tables of direct transfer (GitLab's ``bulk_imports``): an import, its entities (each group
and project being copied), their failures, and what each entity already copied.

An import holds the source's URL and, while it runs, its access token sealed at rest
(``keycrew.crypto.seal``); the token is erased when the import ends (finished, failed, canceled,
timeout). Each entity walks the stages of ``Stage`` in order; ``stage`` is the next stage to run
and ``cursor`` where inside it the last committed batch stopped, so that a restarted worker goes
on from there. ``BulkImportRecord`` maps each copied source record (a group, project, issue,
note, member, package file...) to the local row made from it, written in the same transaction as
that row: a stage run again after a crash skips what is mapped and copies nothing twice.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, UTCDateTime

# The purpose under which the source access token is sealed (keycrew.crypto.seal).
TOKEN_LABEL = b"bulk-import-source-token"


class BulkImportStatus(StrEnum):
    """GitLab's statuses of an import and of an entity (integers 0, 1, 2, 3, -1, -2)."""

    CREATED = "created"
    STARTED = "started"
    FINISHED = "finished"
    TIMEOUT = "timeout"
    FAILED = "failed"
    CANCELED = "canceled"


# The statuses after which nothing more happens.
ENDED = frozenset(
    {BulkImportStatus.FINISHED, BulkImportStatus.TIMEOUT, BulkImportStatus.FAILED, BulkImportStatus.CANCELED}
)


class EntityType(StrEnum):
    GROUP = "group"
    PROJECT = "project"


class Stage(StrEnum):
    """The stages of an entity, in the order they run (a group skips the project ones, a project
    the group ones)."""

    # A group: create it (and queue its subgroups' and projects' entities).
    GROUP = "group"
    # A project: create it.
    PROJECT = "project"
    MEMBERS = "members"
    ISSUES = "issues"
    NOTES = "notes"
    REPOSITORY = "repository"
    PACKAGES = "packages"
    # Nothing left: the entity is finished.
    DONE = "done"


GROUP_STAGES = (Stage.GROUP, Stage.MEMBERS, Stage.DONE)
PROJECT_STAGES = (
    Stage.PROJECT,
    Stage.MEMBERS,
    Stage.ISSUES,
    Stage.NOTES,
    Stage.REPOSITORY,
    Stage.PACKAGES,
    Stage.DONE,
)


class BulkImport(Base):
    """One direct transfer started by a user: from one source instance, one or more entities."""

    __tablename__ = "bulk_imports"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=BulkImportStatus.CREATED.value, index=True)
    # Always "gitlab" (GitLab's only source type for direct transfer).
    source_type: Mapped[str] = mapped_column(String(16), default="gitlab")
    # The source's base URL as given (normalised: no trailing slash).
    source_url: Mapped[str] = mapped_column(String(255))
    # The source's version, read when the import was created.
    source_version: Mapped[str | None] = mapped_column(String(64))
    # The source access token sealed with the instance's key; None once the import has ended.
    access_token_sealed: Mapped[str | None] = mapped_column(Text)
    has_failures: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class BulkImportEntity(Base):
    """One group or project being copied: asked for by the user, or found below a group entity
    (then ``parent_id`` is that entity)."""

    __tablename__ = "bulk_import_entities"
    __table_args__ = (
        UniqueConstraint(
            "bulk_import_id", "source_full_path", "entity_type", name="uq_bulk_import_entities_source"
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bulk_import_id: Mapped[int] = mapped_column(ForeignKey("bulk_imports.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("bulk_import_entities.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=BulkImportStatus.CREATED.value, index=True)
    # "group" or "project" (the API's source_type is "group_entity" / "project_entity").
    entity_type: Mapped[str] = mapped_column(String(16))
    source_full_path: Mapped[str] = mapped_column(String(255))
    # The source's id of the group or project, once read.
    source_xid: Mapped[int | None] = mapped_column(Integer)
    destination_slug: Mapped[str] = mapped_column(String(255))
    # The full path of the destination's parent group ("" = top level, for groups only).
    destination_namespace: Mapped[str] = mapped_column(String(255))
    # What was made: the group (group entities) or the project (project entities).
    namespace_id: Mapped[int | None] = mapped_column(ForeignKey("namespaces.id", ondelete="SET NULL"))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    migrate_projects: Mapped[bool] = mapped_column(Boolean, default=True)
    migrate_memberships: Mapped[bool] = mapped_column(Boolean, default=True)
    # The next stage to run (Stage) and where inside it the last committed batch stopped (JSON).
    stage: Mapped[str] = mapped_column(String(16))
    cursor: Mapped[str | None] = mapped_column(Text)
    # {relation: {"source": n, "fetched": n, "imported": n}} as JSON (GitLab's entity stats).
    stats: Mapped[str | None] = mapped_column(Text)
    has_failures: Mapped[bool] = mapped_column(Boolean, default=False)
    # Runs of the current stage that ended in a transient error (retried with backoff).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Not before this moment is the entity tried again (backoff after a transient error).
    retry_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class BulkImportFailure(Base):
    """Why part of an entity could not be copied (GitLab's BulkImports::Failure)."""

    __tablename__ = "bulk_import_failures"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(
        ForeignKey("bulk_import_entities.id", ondelete="CASCADE"), index=True
    )
    # What was being copied ("group", "project", "members", "issues", "notes", "repository",
    # "packages") and the stage's step.
    relation: Mapped[str | None] = mapped_column(String(64))
    step: Mapped[str | None] = mapped_column(String(64))
    exception_class: Mapped[str] = mapped_column(String(128))
    exception_message: Mapped[str] = mapped_column(Text)
    correlation_id_value: Mapped[str | None] = mapped_column(String(64))
    source_url: Mapped[str | None] = mapped_column(String(1024))
    source_title: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class BulkImportRecord(Base):
    """A source record already copied by an entity, and the local row made from it."""

    __tablename__ = "bulk_import_records"
    __table_args__ = (
        UniqueConstraint("entity_id", "relation", "source_id", name="uq_bulk_import_records_source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[int] = mapped_column(ForeignKey("bulk_import_entities.id", ondelete="CASCADE"))
    # "issue", "note", "member", "package_file"... and the source's id of the record.
    relation: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(255))
    local_id: Mapped[int | None] = mapped_column(Integer)
