"""The tables of imports: each source user of a destination top-level group (GitLab's
``import_source_users``) and the Import User of each top-level group (``namespace_import_users``)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, UTCDateTime


class SourceUserStatus(StrEnum):
    """GitLab's states of a source user's reassignment (its integers are 0 to 6 in this order)."""

    PENDING_REASSIGNMENT = "pending_reassignment"
    AWAITING_APPROVAL = "awaiting_approval"
    REASSIGNMENT_IN_PROGRESS = "reassignment_in_progress"
    REJECTED = "rejected"
    FAILED = "failed"
    COMPLETED = "completed"
    KEEP_AS_PLACEHOLDER = "keep_as_placeholder"


# Direct transfer's import type, as GitLab names it.
GITLAB_MIGRATION = "gitlab_migration"


class ImportSourceUser(Base):
    """A user of the source instance, as a destination top-level group knows them: who stands in
    for them (``placeholder_user_id``: their placeholder, or the group's Import User beyond the
    placeholder limit) and to whom their contributions are being or were reassigned."""

    __tablename__ = "import_source_users"
    __table_args__ = (
        UniqueConstraint(
            "namespace_id",
            "source_hostname",
            "source_user_identifier",
            "import_type",
            name="uq_import_source_users_source",
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The destination top-level group (or personal namespace) the source user was imported into.
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), index=True)
    # The source's id of the user (a string: not every source has integer ids).
    source_user_identifier: Mapped[str] = mapped_column(String(255))
    # The source's base URL, normalised: scheme://host[:port].
    source_hostname: Mapped[str] = mapped_column(String(255))
    source_name: Mapped[str | None] = mapped_column(String(255))
    source_username: Mapped[str | None] = mapped_column(String(255))
    # Kept when the user goes: contributions must not lose their source (GitLab: no cascade).
    placeholder_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    reassign_to_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    reassigned_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(32), default=SourceUserStatus.PENDING_REASSIGNMENT.value)
    import_type: Mapped[str] = mapped_column(String(64), default=GITLAB_MIGRATION)
    # GitLab's reassignment_token: 32 hex characters, set while awaiting the target's approval.
    reassignment_token: Mapped[str | None] = mapped_column(String(32))
    # The reassignment job's failed attempts and its last error (kept when it becomes ``failed``).
    reassignment_attempts: Mapped[int] = mapped_column(Integer, default=0)
    reassignment_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class NamespaceImportUser(Base):
    """The Import User of a top-level group: one per group, even under concurrent first use."""

    __tablename__ = "namespace_import_users"

    namespace_id: Mapped[int] = mapped_column(
        ForeignKey("namespaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
