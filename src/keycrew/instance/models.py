"""The instance's one settings row: run-time settings and the license."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String
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
    # Request throttles (GitLab's names and defaults: off, per hour): per user for authenticated
    # requests, per IP otherwise.
    throttle_authenticated_api_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    throttle_authenticated_api_requests_per_period: Mapped[int] = mapped_column(Integer, default=7200)
    throttle_authenticated_api_period_in_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    throttle_unauthenticated_api_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    throttle_unauthenticated_api_requests_per_period: Mapped[int] = mapped_column(Integer, default=3600)
    throttle_unauthenticated_api_period_in_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    throttle_authenticated_git_http_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    throttle_authenticated_git_http_requests_per_period: Mapped[int] = mapped_column(Integer, default=3600)
    throttle_authenticated_git_http_period_in_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    # Settings that govern accounts, bots and tokens (GitLab's names and defaults).
    default_projects_limit: Mapped[int] = mapped_column(Integer, default=100000)
    # The instance prefix of new tokens, set by an admin; None: the operator's
    # KEYCREW_INSTANCE_TOKEN_PREFIX ("" is no prefix at all).
    personal_access_token_prefix: Mapped[str | None] = mapped_column(String(20))
    deactivate_dormant_users: Mapped[bool] = mapped_column(Boolean, default=False)
    deactivate_dormant_users_period: Mapped[int] = mapped_column(Integer, default=90)
    delete_unconfirmed_users: Mapped[bool] = mapped_column(Boolean, default=False)
    unconfirmed_users_delete_after_days: Mapped[int] = mapped_column(Integer, default=7)
    delete_inactive_projects: Mapped[bool] = mapped_column(Boolean, default=False)
    inactive_projects_delete_after_months: Mapped[int] = mapped_column(Integer, default=2)
    inactive_projects_min_size_mb: Mapped[int] = mapped_column(Integer, default=0)
    inactive_projects_send_warning_email_after_months: Mapped[int] = mapped_column(Integer, default=1)
    # The e-mail a dormant user deactivated by the Admin Bot receives (GitLab's default: sent).
    user_deactivation_emails_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Whether new users must confirm their e-mail address: off, soft or hard (GitLab's values;
    # unconfirmed users are deleted only when it is not off).
    email_confirmation_setting: Mapped[str] = mapped_column(String(8), default="off")
    # GitLab's default: only admins create service accounts until an admin lets top-level group
    # Owners create their groups' own.
    allow_top_level_group_owners_to_create_service_accounts: Mapped[bool] = mapped_column(
        Boolean, default=False
    )
    # Admins act as admins through the API only with an admin_mode token, in the UI only after
    # re-entering their password.
    admin_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    # Whether webhooks may reach the local network and loopback (keycrew.webhooks.urls).
    allow_local_requests_from_web_hooks_and_services: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_local_requests_from_system_hooks: Mapped[bool] = mapped_column(Boolean, default=True)
    # Whether expiry e-mail about a bot's token also goes to the Owners (and Maintainers) inherited
    # from the groups above its project or group (keycrew.notifications.recipients).
    resource_access_token_notify_inherited: Mapped[bool] = mapped_column(Boolean, default=False)
    # GitLab 18.0: an admin's placeholder reassignment skips the target's approval.
    allow_bypass_placeholder_confirmation: Mapped[bool] = mapped_column(Boolean, default=False)
    # Direct transfer (POST /bulk_imports): off by default, as in GitLab.
    bulk_import_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class RateLimitOverride(Base):
    """One user's own request limit (a service account or bot an admin lets do more, or less):
    it replaces the instance's limit of the per-user throttles (authenticated API, git HTTP)."""

    __tablename__ = "rate_limit_overrides"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    requests_per_period: Mapped[int] = mapped_column(Integer)
    period_in_seconds: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
