"""Personal access tokens: personal, impersonation, and the tokens of project/group bots."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, JSONList, UTCDateTime


class TokenTraits:
    """Whether a token still works, for a token row and a token view alike."""

    __slots__ = ()
    if TYPE_CHECKING:
        revoked: bool
        expires_at: dt.date | None

    def is_expired(self, today: dt.date) -> bool:
        """A token dies at 00:00 UTC on its expiry date."""
        return self.expires_at is not None and self.expires_at <= today

    def is_active(self, today: dt.date) -> bool:
        return not self.revoked and not self.is_expired(today)


class PersonalAccessToken(TokenTraits, Base):
    __tablename__ = "personal_access_tokens"
    __table_args__ = (
        # The daily expiry notification scans (keycrew.automation.token_expiry): live tokens by
        # expiry date, without the revoked and impersonation ones that make most of the table.
        Index(
            "ix_personal_access_tokens_expiry_scan",
            "expires_at",
            "id",
            sqlite_where=text("revoked = 0 AND impersonation = 0"),
            postgresql_where=text("revoked = false AND impersonation = false"),
        ),
        # Ids are never reused on SQLite either: a client holding an old id must not hit a new token.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    # HMAC-SHA-256 of the token value keyed by the server secret; the value itself is never kept.
    token_digest: Mapped[str] = mapped_column(String(128), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONList)
    impersonation: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.date | None] = mapped_column(Date, index=True)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_ips: Mapped[list[str]] = mapped_column(JSONList, default=list)
    previous_personal_access_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("personal_access_tokens.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Expiry notifications sent (keycrew.automation.token_expiry): each interval at most once.
    seven_days_notification_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    thirty_days_notification_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sixty_days_notification_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    expire_notification_delivered: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    after_expiry_notification_delivered: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )


class DeployToken(TokenTraits, Base):
    """A project or group deploy token: a username and a secret for git and registries only."""

    __tablename__ = "deploy_tokens"
    __table_args__ = (
        CheckConstraint("(project_id IS NULL) <> (group_id IS NULL)", name="one_owner"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    username: Mapped[str] = mapped_column(String(255))
    token_digest: Mapped[str] = mapped_column(String(128), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONList)
    expires_at: Mapped[dt.date | None] = mapped_column(Date)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
