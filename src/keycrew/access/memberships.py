"""A user's own memberships of projects and groups, as GitLab's ``GET /users/:id/memberships`` lists them."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Date, Select, bindparam, func, or_, select

from keycrew.access.models import Member
from keycrew.access.policy import live
from keycrew.context import Ctx
from keycrew.db.listings import Listing, listing
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project

_M = Member.__table__.c
_P = Project.__table__.c
_N = Namespace.__table__.c


class UserMembership(NamedTuple):
    """One direct membership: the project or group (``source_type`` "Namespace"), its name, the level."""

    source_id: int
    source_name: str
    source_type: str
    access_level: int


def _rows(filtered: bool) -> tuple[Select[Any], None]:
    """The listing of one shape (with or without the :source_type filter): the columns of
    ``UserMembership``, by membership id. Each membership is joined to its project or group for
    the name; a row whose source is gone (which deletion never leaves) is not listed."""
    name = func.coalesce(_P.name, _N.name).label("source_name")
    rows = (
        select(_M.source_id, name, _M.source_type, _M.access_level)
        .select_from(Member.__table__)
        .outerjoin(Project.__table__, (_M.source_type == SourceType.PROJECT.value) & (_P.id == _M.source_id))
        .outerjoin(
            Namespace.__table__, (_M.source_type == SourceType.NAMESPACE.value) & (_N.id == _M.source_id)
        )
        .where(
            _M.user_id == bindparam("user_id"),
            live(bindparam("today", type_=Date())),
            or_(_P.id.isnot(None), _N.id.isnot(None)),
        )
    )
    if filtered:
        rows = rows.where(_M.source_type == bindparam("source_type"))
    return rows.order_by(_M.id), None


def user_memberships(ctx: Ctx, user_id: int, source_type: SourceType | None = None) -> Listing:
    """The live direct memberships of ``user_id`` on projects and groups (all of them, or those of
    ``source_type``), by membership id ascending, so that pages are stable. Inherited access (a
    group's members on its subgroups and projects) is not listed, nor is an expired membership.
    The caller checks who may see them and that the user exists."""
    values: dict[str, Any] = {"user_id": user_id, "today": ctx.today()}
    if source_type is not None:
        values["source_type"] = source_type.value
    filtered = source_type is not None
    return listing(("user_memberships", filtered), lambda: _rows(filtered), values)
