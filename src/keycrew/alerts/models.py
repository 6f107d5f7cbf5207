"""Alert management: HTTP integrations, alerts and a project's incident settings (Alert Bot)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, JSONDict, JSONList, UTCDateTime


class AlertIntegration(Base):
    """GitLab's ``alert_management_http_integrations``: one endpoint that accepts alerts.

    The token is never stored, only its keyed digest (``keycrew.crypto.digest``)."""

    __tablename__ = "alert_management_http_integrations"
    __table_args__ = (
        UniqueConstraint("project_id", "endpoint_identifier"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # "http" (generic webhook) or "prometheus" (Alertmanager's webhook format).
    integration_type: Mapped[str] = mapped_column(String(16), default="http")
    endpoint_identifier: Mapped[str] = mapped_column(String(32))
    token_digest: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Alert(Base):
    """GitLab's ``alert_management_alerts``: numbered per project (``iid``), de-duplicated on
    ``fingerprint`` while open."""

    __tablename__ = "alert_management_alerts"
    __table_args__ = (UniqueConstraint("project_id", "iid"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    iid: Mapped[int] = mapped_column(Integer)
    integration_id: Mapped[int | None] = mapped_column(
        ForeignKey("alert_management_http_integrations.id", ondelete="SET NULL"), index=True
    )
    # The incident opened for it, if any.
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    service: Mapped[str | None] = mapped_column(String(100))
    monitoring_tool: Mapped[str | None] = mapped_column(String(100))
    hosts: Mapped[list[Any]] = mapped_column(JSONList, default=list)
    severity: Mapped[str] = mapped_column(String(16), default="critical")
    # triggered, acknowledged, resolved, ignored
    status: Mapped[str] = mapped_column(String(16), default="triggered")
    events: Mapped[int] = mapped_column(Integer, default=1)
    # SHA-1 hex of the payload's fingerprint (GitLab's), None when the payload had none.
    fingerprint: Mapped[str | None] = mapped_column(String(40), index=True)
    environment_name: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDict, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class IncidentSettings(Base):
    """GitLab's ``project_incident_management_settings`` (one row per project, made on first need),
    plus the project's alert-number counter (``last_alert_iid``), whose row lock serialises the
    alerts of one project."""

    __tablename__ = "project_incident_management_settings"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    create_issue: Mapped[bool] = mapped_column(Boolean, default=False)
    send_email: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_close_incident: Mapped[bool] = mapped_column(Boolean, default=True)
    last_alert_iid: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
