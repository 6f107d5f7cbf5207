"""The inactive-project warnings GitLab Admin Bot has sent: a project warned once is deleted on its
``deletion_on`` date unless it has been active since the warning (the job is
keycrew.automation.admin_bot)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from keycrew.db.base import Base, UTCDateTime


class InactiveProjectWarning(Base):
    """The warning sent about one inactive project (GitLab keeps it in Redis)."""

    __tablename__ = "inactive_project_warnings"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    warned_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # The date announced in the warning: the project is deleted on or after it.
    deletion_on: Mapped[dt.date] = mapped_column(Date)
