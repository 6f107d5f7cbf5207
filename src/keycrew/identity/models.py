"""The users table: people, bots, service accounts and internal users alike."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, UTCDateTime
from keycrew.identity.types import SINGLETON_TYPES, UserState, UserType

_TYPES = {int(t): t for t in UserType}  # a look-up, not an Enum call, for every rendered user
_SINGLETONS = ", ".join(str(int(t)) for t in sorted(SINGLETON_TYPES))


class UserTraits:
    """What a user's type and state say, for a ``User`` row and a ``UserView`` alike."""

    __slots__ = ()
    if TYPE_CHECKING:
        user_type: int
        state: str

    @property
    def type(self) -> UserType:
        return _TYPES[self.user_type]

    @property
    def is_internal(self) -> bool:
        return self.type.is_internal

    @property
    def is_bot(self) -> bool:
        return self.type.is_bot

    @property
    def is_human(self) -> bool:
        return self.type is UserType.HUMAN

    @property
    def is_active(self) -> bool:
        return self.state == UserState.ACTIVE

    @property
    def is_blocked(self) -> bool:
        return self.state in (UserState.BLOCKED, UserState.BANNED, UserState.BLOCKED_PENDING_APPROVAL)


class User(UserTraits, Base):
    __tablename__ = "users"
    __table_args__ = (
        # Exactly one user of each singleton internal type, even under concurrent first use.
        Index(
            "uq_users_singleton_user_type",
            "user_type",
            unique=True,
            sqlite_where=text(f"user_type IN ({_SINGLETONS})"),
            postgresql_where=text(f"user_type IN ({_SINGLETONS})"),
        ),
        # Ids are never reused on SQLite either: audit events and tokens name users by id, and a
        # deleted user's id must not come back as someone else's.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(255), unique=True)
    # Lower-cased copy: usernames are unique whatever their case.
    username_lower: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    # Stored lower-cased, as GitLab (Devise) does; unique.
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_digest: Mapped[str | None] = mapped_column(String(255))
    user_type: Mapped[int] = mapped_column(Integer, default=int(UserType.HUMAN), index=True)
    state: Mapped[str] = mapped_column(String(32), default=UserState.ACTIVE.value)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    private_profile: Mapped[bool] = mapped_column(Boolean, default=False)
    can_create_group: Mapped[bool] = mapped_column(Boolean, default=True)
    projects_limit: Mapped[int] = mapped_column(Integer, default=100000)
    bio: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str | None] = mapped_column(Text)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_activity_on: Mapped[dt.date | None] = mapped_column(Date)
    last_sign_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    current_sign_in_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sign_in_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # A project/group bot's one resource: source type "Project" or "Namespace", and its id.
    bot_resource_type: Mapped[str | None] = mapped_column(String(32))
    bot_resource_id: Mapped[int | None] = mapped_column(Integer, index=True)
    # A service account made by a group or project Owner belongs to that group or project.
    provisioned_by_group_id: Mapped[int | None] = mapped_column(Integer, index=True)
    provisioned_by_project_id: Mapped[int | None] = mapped_column(Integer, index=True)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.username!r} type={self.user_type} state={self.state}>"


class UserSession(Base):
    """A person signed in to the web UI: the cookie's secret is kept only as an HMAC digest."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    # When the person last re-entered their password for Admin Mode (None: not in Admin Mode).
    admin_mode_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
