"""What the group's Placeholders page reads: the source users of a top-level group with their
placeholder and the user chosen for them, in GitLab's two tabs, searched and paged.

GitLab's tabs: "Awaiting reassignment" holds every source user whose contributions still sit with
a placeholder, whatever happens to them next (not started, awaiting approval, reassigning,
rejected, failed); "Reassigned" holds those settled (completed, or kept as placeholder on
purpose). Only Owners of the top-level group see any of it: for anyone else the page does not
exist (``NotFound``), as GitLab hides the tab, so nobody learns of a group's imported people.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import aliased

from keycrew.context import Ctx
from keycrew.errors import NotFound
from keycrew.identity.models import User
from keycrew.identity.queries import find_user_by_username
from keycrew.imports.models import ImportSourceUser, SourceUserStatus
from keycrew.imports.reassignment import is_owner
from keycrew.namespaces.models import Namespace

PER_PAGE = 20
SEARCH_MAX = 255


class Tab(StrEnum):
    AWAITING = "awaiting"
    REASSIGNED = "reassigned"


TAB_STATUSES: dict[Tab, tuple[SourceUserStatus, ...]] = {
    Tab.AWAITING: (
        SourceUserStatus.PENDING_REASSIGNMENT,
        SourceUserStatus.AWAITING_APPROVAL,
        SourceUserStatus.REASSIGNMENT_IN_PROGRESS,
        SourceUserStatus.REJECTED,
        SourceUserStatus.FAILED,
    ),
    Tab.REASSIGNED: (SourceUserStatus.COMPLETED, SourceUserStatus.KEEP_AS_PLACEHOLDER),
}

# The badge each status shows, in the words of GitLab's table.
STATUS_LABELS: dict[str, str] = {
    SourceUserStatus.PENDING_REASSIGNMENT.value: "Not started",
    SourceUserStatus.AWAITING_APPROVAL.value: "Pending approval",
    SourceUserStatus.REASSIGNMENT_IN_PROGRESS.value: "Reassigning",
    SourceUserStatus.REJECTED.value: "Rejected",
    SourceUserStatus.FAILED.value: "Failed",
    SourceUserStatus.COMPLETED.value: "Success",
    SourceUserStatus.KEEP_AS_PLACEHOLDER.value: "Kept as placeholder",
}

# Statuses from which an Owner may choose a user (or keep the placeholder), and cancel.
CHOOSABLE = frozenset({SourceUserStatus.PENDING_REASSIGNMENT.value, SourceUserStatus.REJECTED.value})
CANCELABLE = frozenset({SourceUserStatus.AWAITING_APPROVAL.value})


def may_manage(ctx: Ctx, group: Namespace) -> bool:
    """Whether the actor sees the group's placeholders: Owners (and admins) of a top-level group;
    a subgroup has none of its own (its imports belong to the top-level group)."""
    return group.is_group and group.parent_id is None and is_owner(ctx, group)


def require_manager(ctx: Ctx, group: Namespace) -> Namespace:
    if not may_manage(ctx, group):
        raise NotFound("Group")
    return group


@dataclass(frozen=True)
class Row:
    """One source user as the table shows it."""

    source_user: ImportSourceUser
    placeholder: User | None
    reassign_to: User | None

    @property
    def id(self) -> int:
        return self.source_user.id

    @property
    def status(self) -> str:
        return self.source_user.status

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status.replace("_", " ").capitalize())

    @property
    def choosable(self) -> bool:
        return self.status in CHOOSABLE

    @property
    def cancelable(self) -> bool:
        return self.status in CANCELABLE


@dataclass(frozen=True)
class Listing:
    """A page of a tab: its rows, the count of each tab (for the search), and where it sits."""

    tab: Tab
    rows: list[Row]
    counts: dict[Tab, int]
    number: int
    pages: int

    @property
    def total(self) -> int:
        return self.counts[self.tab]

    @property
    def first(self) -> int:
        return (self.number - 1) * PER_PAGE + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return (self.number - 1) * PER_PAGE + len(self.rows)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _matching(group: Namespace, search: str | None) -> Select[ImportSourceUser]:
    """The group's source users, narrowed by ``search``: part of the source name or username, or
    of the placeholder's name or username (the two names the table shows)."""
    query = select(ImportSourceUser).where(ImportSourceUser.namespace_id == group.id)
    term = (search or "").strip()[:SEARCH_MAX].lower()
    if term:
        pattern = f"%{_escape_like(term.lstrip('@') or term)}%"
        placeholder = aliased(User)
        query = query.outerjoin(placeholder, placeholder.id == ImportSourceUser.placeholder_user_id).where(
            or_(
                func.lower(ImportSourceUser.source_name).like(pattern, escape="\\"),
                func.lower(ImportSourceUser.source_username).like(pattern, escape="\\"),
                func.lower(placeholder.name).like(pattern, escape="\\"),
                placeholder.username_lower.like(pattern, escape="\\"),
            )
        )
    return query


def counts(ctx: Ctx, group: Namespace, search: str | None = None) -> dict[Tab, int]:
    """How many source users each tab holds (with ``search``, how many match)."""
    listed = _matching(group, search).subquery()
    per_status: dict[str, int] = {
        str(status): int(n)
        for status, n in ctx.db.execute(select(listed.c.status, func.count()).group_by(listed.c.status))
    }
    return {
        tab: sum(per_status.get(status.value, 0) for status in statuses)
        for tab, statuses in TAB_STATUSES.items()
    }


def awaiting_count(ctx: Ctx, group: Namespace) -> int:
    """For the Members page's tab: the source users still awaiting reassignment."""
    return counts(ctx, group)[Tab.AWAITING]


def listing(ctx: Ctx, group: Namespace, tab: Tab, search: str | None = None, number: int = 1) -> Listing:
    """Page ``number`` (of ``PER_PAGE``, oldest first as GitLab lists them) of ``tab``; a page past
    the last shows the last."""
    require_manager(ctx, group)
    found = counts(ctx, group, search)
    pages = max(1, math.ceil(found[tab] / PER_PAGE))
    number = min(max(1, number), pages)
    statuses = [status.value for status in TAB_STATUSES[tab]]
    source_users = list(
        ctx.db.scalars(
            _matching(group, search)
            .where(ImportSourceUser.status.in_(statuses))
            .order_by(ImportSourceUser.id)
            .limit(PER_PAGE)
            .offset((number - 1) * PER_PAGE)
        )
    )
    ids = {su.placeholder_user_id for su in source_users} | {su.reassign_to_user_id for su in source_users}
    ids.discard(None)
    users = {u.id: u for u in ctx.db.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    rows = [
        Row(
            su,
            users.get(su.placeholder_user_id) if su.placeholder_user_id else None,
            users.get(su.reassign_to_user_id) if su.reassign_to_user_id else None,
        )
        for su in source_users
    ]
    return Listing(tab, rows, found, number, pages)


def source_user_of(ctx: Ctx, group: Namespace, source_user_id: int) -> ImportSourceUser:
    """A source user of this group (NotFound for one of another group: a form cannot reach across
    groups by changing an id)."""
    require_manager(ctx, group)
    found = ctx.db.get(ImportSourceUser, source_user_id)
    if found is None or found.namespace_id != group.id:
        raise NotFound("Import source user")
    return found


def user_to_choose(ctx: Ctx, username: str) -> User:
    """The user typed in the reassign field (with or without its @), as the actor may see them;
    whether they may be chosen is ``reassignment.check_assignable``'s to say."""
    return find_user_by_username(ctx, username.strip().removeprefix("@").strip())


__all__ = [
    "PER_PAGE",
    "STATUS_LABELS",
    "TAB_STATUSES",
    "Listing",
    "Row",
    "Tab",
    "awaiting_count",
    "counts",
    "listing",
    "may_manage",
    "require_manager",
    "source_user_of",
    "user_to_choose",
]
