"""The instance's one settings row: run-time settings and the license."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, UTCDateTime


class InstanceSettings(Base):
    """Instance-wide settings an admin changes at run time (one row, id 1), and the license."""

    __tablename__ = "instance_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan: Mapped[str] = mapped_column(String(32), default="ultimate")
    # Paid seats of the license; None means unlimited.
    seats: Mapped[int | None] = mapped_column(Integer)
    max_personal_access_token_lifetime: Mapped[int] = mapped_column(Integer, default=365)
    require_personal_access_token_expiry: Mapped[bool] = mapped_column(Boolean, default=True)
    inactive_resource_access_tokens_delete_after_days: Mapped[int] = mapped_column(Integer, default=30)
    password_authentication_enabled_for_git: Mapped[bool] = mapped_column(Boolean, default=True)
    max_login_attempts: Mapped[int] = mapped_column(Integer, default=10)
    failed_login_attempts_unlock_period_in_minutes: Mapped[int] = mapped_column(Integer, default=10)
    service_access_tokens_expiration_enforced: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
