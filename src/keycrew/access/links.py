"""Sharing links: a group shared with another group, a project shared with a group.

The rows only; the rules and use cases are ``keycrew.access.shares``. They live apart so that the
permission policy (which ``shares`` itself uses) can read them without an import cycle.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Integer, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, UTCDateTime


class GroupGroupLink(Base):
    """``shared_group`` is shared with ``shared_with_group``: the members of the latter (direct or
    inherited from its ancestors) get at most ``group_access`` on the former and everything under
    it, until ``expires_at`` (the first day without it)."""

    __tablename__ = "group_group_links"
    __table_args__ = (
        UniqueConstraint("shared_group_id", "shared_with_group_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shared_group_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    shared_with_group_id: Mapped[int] = mapped_column(
        ForeignKey("namespaces.id", ondelete="CASCADE"), index=True
    )
    group_access: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ProjectGroupLink(Base):
    """``project`` is shared with ``group``: its members get at most ``group_access`` on the
    project until ``expires_at``."""

    __tablename__ = "project_group_links"
    __table_args__ = (UniqueConstraint("project_id", "group_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), index=True)
    group_access: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
