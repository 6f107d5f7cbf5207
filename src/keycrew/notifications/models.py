"""The notification_settings table: what e-mail a user wants, globally or for one group or project."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, JSONDict, UTCDateTime


class NotificationSetting(Base):
    """A user's notification level: global (``source_type`` None), or for a group ("Namespace") or
    a project ("Project"). No row means GitLab's default: participating globally, "global" (follow
    the level above) for a group or project."""

    __tablename__ = "notification_settings"
    __table_args__ = (
        UniqueConstraint("user_id", "source_type", "source_id"),
        # NULLs are distinct in a unique constraint: the one global row per user needs its own index.
        Index(
            "uq_notification_settings_global",
            "user_id",
            unique=True,
            sqlite_where=text("source_type IS NULL"),
            postgresql_where=text("source_type IS NULL"),
        ),
        Index("ix_notification_settings_source", "source_type", "source_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source_type: Mapped[str | None] = mapped_column(String(32))
    source_id: Mapped[int | None] = mapped_column(Integer)
    # GitLab's enum: disabled 0, participating 1, watch 2, global 3, mention 4, custom 5.
    level: Mapped[int] = mapped_column(Integer)
    # The custom events a user set (event name -> bool); unset events read as their default.
    events: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
