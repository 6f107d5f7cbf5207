"""The audit_events table (append-only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, JSONDict, UTCDateTime


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    event_name: Mapped[str] = mapped_column(String(128), index=True)
    # The actor: id and a snapshot of the username (the user may be deleted later).
    author_id: Mapped[int | None] = mapped_column(Integer, index=True)
    author_name: Mapped[str] = mapped_column(String(255))
    # The credential used: the token's id, never its value.
    token_id: Mapped[int | None] = mapped_column(Integer)
    # The scope the event belongs to (GitLab's entity: User, Group, Project or the instance).
    entity_type: Mapped[str] = mapped_column(String(64), index=True)
    entity_id: Mapped[int] = mapped_column(Integer, index=True)
    entity_path: Mapped[str | None] = mapped_column(String(1024))
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[int | None] = mapped_column(Integer)
    target_details: Mapped[str | None] = mapped_column(String(1024))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # Keeps the FK-less author_id honest for reporting joins without blocking user deletion.
    impersonated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
