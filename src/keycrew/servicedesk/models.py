"""Service Desk's tables: per-project settings, the outsiders on an issue, the messages of its
e-mail thread, and the files that came with the e-mail."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, UTCDateTime


class ServiceDeskSetting(Base):
    """A project's Service Desk (GitLab's ``projects.service_desk_enabled`` and ``service_desk_settings``)."""

    __tablename__ = "service_desk_settings"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # GitLab's project key: ``incoming+<slug>-<key>@`` instead of ``<slug>-<id>-issue-``.
    project_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    # The e-mail texts with %{PLACEHOLDER}s; NULL: keycrew's default text.
    thank_you_template: Mapped[str | None] = mapped_column(Text)
    new_note_template: Mapped[str | None] = mapped_column(Text)
    new_participant_template: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class IssueEmailParticipant(Base):
    """Someone without an account who takes part in an issue by e-mail (GitLab's table of that name)."""

    __tablename__ = "issue_email_participants"
    __table_args__ = (UniqueConstraint("issue_id", "email"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    # Lower-cased, as GitLab compares it.
    email: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ServiceDeskMessage(Base):
    """One e-mail of an issue's thread, received or sent: replies find their issue by the
    ``reply_key`` in the address they are sent to, or by a Message-ID they refer to."""

    __tablename__ = "service_desk_messages"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    # "received" or "sent".
    direction: Mapped[str] = mapped_column(String(16))
    # Without the angle brackets.
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    # 32 hex digits in the Reply-To of what we sent (GitLab's sent_notifications.reply_key).
    reply_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ServiceDeskUpload(Base):
    """A file that came with an e-mail, stored under the data directory and linked from the issue."""

    __tablename__ = "service_desk_uploads"
    __table_args__ = (UniqueConstraint("secret", "filename"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"), index=True)
    secret: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
