"""The events table (one contribution: a project created, joined or left, an issue opened, a
comment, a push) and the push payload of a push event."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, UTCDateTime


class ActivityEvent(Base):
    __tablename__ = "events"
    __table_args__ = (
        # The listings: a user's events and a project's, newest (highest id) first.
        Index("ix_events_author_id_id", "author_id", "id"),
        Index("ix_events_project_id_id", "project_id", "id"),
        # Deleting an issue or a note deletes the events about it.
        Index("ix_events_target_type_target_id", "target_type", "target_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The project goes with its events (ON DELETE CASCADE); the author is moved to the Ghost User
    # or the events deleted before a user is (actions.deletion).
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    action: Mapped[int] = mapped_column(SmallInteger)
    # GitLab's class name of the target (Issue, Note) and its id; None for project-level events.
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[int | None] = mapped_column(Integer)
    # The target's title when the event was written (what is shown once the target is gone).
    target_title: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class PushEventPayload(Base):
    __tablename__ = "push_event_payloads"

    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"), primary_key=True)
    commit_count: Mapped[int] = mapped_column(Integer)
    # 0 created, 1 removed, 2 pushed (GitLab's PushEventPayload enums).
    action: Mapped[int] = mapped_column(SmallInteger)
    # 0 branch, 1 tag.
    ref_type: Mapped[int] = mapped_column(SmallInteger)
    commit_from: Mapped[str | None] = mapped_column(String(64))
    commit_to: Mapped[str | None] = mapped_column(String(64))
    ref: Mapped[str | None] = mapped_column(Text)
    commit_title: Mapped[str | None] = mapped_column(String(70))
    # The refs of a bulk push (more refs of one kind than GitLab records one by one).
    ref_count: Mapped[int | None] = mapped_column(Integer)
