"""Webhooks: the hooks (project, group, system), their delivery queue and their delivery log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, JSONDict, UTCDateTime

PROJECT = "project"
GROUP = "group"
SYSTEM = "system"

# Delivery states.
PENDING = "pending"
SENT = "sent"
FAILED = "failed"  # every attempt failed, or the hook was permanently disabled meanwhile


class WebHook(Base):
    """One hook: a project's, a group's or the instance's (a system hook, ``type`` system)."""

    __tablename__ = "web_hooks"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(16), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), index=True)
    # The URL as given (it may hold ``{variable}`` placeholders filled from url_variables).
    url: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    # Secrets, encrypted with the instance's secret (keycrew.webhooks.secrets): they are sent, so
    # they cannot be digests; never returned by the API.
    encrypted_token: Mapped[str | None] = mapped_column(Text)
    encrypted_url_variables: Mapped[str | None] = mapped_column(Text)
    encrypted_custom_headers: Mapped[str | None] = mapped_column(Text)
    enable_ssl_verification: Mapped[bool] = mapped_column(Boolean, default=True)
    # The *_events flags that are on, by GitLab's name: {"push_events": true, ...}.
    events: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    push_events_branch_filter: Mapped[str | None] = mapped_column(Text)
    branch_filter_strategy: Mapped[str] = mapped_column(String(16), default="wildcard")
    custom_webhook_template: Mapped[str | None] = mapped_column(Text)
    # GitLab's auto-disabling: failures in a row, when a temporarily disabled hook runs again,
    # and whether it is disabled until someone tests it successfully or re-enables it.
    recent_failures: Mapped[int] = mapped_column(Integer, default=0)
    backoff_count: Mapped[int] = mapped_column(Integer, default=0)
    disabled_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    permanently_disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class WebHookDelivery(Base):
    """A request waiting to be sent to a hook, or sent, or given up on (the persistent queue)."""

    __tablename__ = "web_hook_deliveries"
    __table_args__ = (
        Index("ix_web_hook_deliveries_due", "status", "next_attempt_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hook_id: Mapped[int] = mapped_column(ForeignKey("web_hooks.id", ondelete="CASCADE"), index=True)
    # X-Gitlab-Event-UUID: shared by every delivery of one originating transaction.
    event_uuid: Mapped[str] = mapped_column(String(36))
    # Idempotency-Key: the same for every attempt of this delivery.
    idempotency_key: Mapped[str] = mapped_column(String(36), unique=True)
    # GitLab's trigger (``push_hooks``, ``member_hooks``, ``system_hooks``...) and X-Gitlab-Event.
    trigger: Mapped[str] = mapped_column(String(64))
    event_header: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


class WebHookLog(Base):
    """One request sent to a hook and what came back (GitLab's web_hook_logs), kept for a while."""

    __tablename__ = "web_hook_logs"
    __table_args__ = (
        Index("ix_web_hook_logs_hook_id_id", "hook_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hook_id: Mapped[int] = mapped_column(ForeignKey("web_hooks.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("web_hook_deliveries.id", ondelete="SET NULL"), index=True
    )
    trigger: Mapped[str] = mapped_column(String(64))
    # The URL with its variables masked, and the request's headers with secrets masked.
    url: Mapped[str] = mapped_column(Text)
    request_headers: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    request_data: Mapped[str] = mapped_column(Text)
    # The status code as text, or "internal error" when no response came back.
    response_status: Mapped[str] = mapped_column(String(32))
    response_headers: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    # At most 8 KB of the response.
    response_body: Mapped[str] = mapped_column(Text, default="")
    # Seconds, as GitLab's.
    execution_duration: Mapped[float] = mapped_column(Float, default=0.0)
    internal_error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
