"""The outbox_messages table: e-mail waiting for delivery, delivered, or given up on."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, JSONDict, UTCDateTime

PENDING = "pending"
SENT = "sent"
FAILED = "failed"  # given up after the last retry; an admin may retry it


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "status", "next_attempt_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    # The template that renders the bodies (``<template>.txt`` and ``<template>.html``) from context.
    template: Mapped[str] = mapped_column(String(128), index=True)
    subject: Mapped[str] = mapped_column(String(998))
    to_address: Mapped[str] = mapped_column(String(255))
    # The recipient's account, if any (kept as NULL when the user is deleted later).
    to_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # What the templates show: plain JSON values, never a secret.
    context: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # A message with a key is written at most once (a job that runs again sends nothing twice).
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # A delivery in progress: the node that claimed it and until when (a crashed node's claim lapses).
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Threading headers of this message (Message-ID, In-Reply-To, References, Reply-To), if any.
    headers: Mapped[dict[str, Any] | None] = mapped_column(JSONDict)
