"""Seats: who is a billable user under the instance's plan, and the license as GitLab reports it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Date, Select, bindparam, exists, func, or_, select

from keycrew.access.levels import AccessLevel
from keycrew.access.models import Member
from keycrew.context import Ctx
from keycrew.db.reads import prepared
from keycrew.errors import Forbidden
from keycrew.identity.models import User
from keycrew.identity.types import UserState, UserType
from keycrew.identity.views import USER_COLUMNS, UserView
from keycrew.instance.models import InstanceSettings
from keycrew.instance.settings import Plan, SettingsView, instance_settings
from keycrew.namespaces.models import Namespace

# The only types that can ever hold a seat: bots, service accounts and internal users never do.
BILLABLE_TYPES = frozenset({UserType.HUMAN, UserType.SERVICE_USER})


_U = User.__table__.c
_M = Member.__table__.c


def guests_are_free(settings: InstanceSettings | SettingsView) -> bool:
    """Whether Guests take no seat under the instance's plan (Ultimate)."""
    return settings.plan == Plan.ULTIMATE


def _has_role_above_guest(today: dt.date | BindParameter[dt.date]) -> ColumnElement[bool]:
    return exists(
        select(_M.id).where(
            _M.user_id == _U.id,
            _M.access_level > AccessLevel.GUEST,
            or_(_M.expires_at.is_(None), _M.expires_at > today),
        )
    )


def _only_minimal_access(today: dt.date | BindParameter[dt.date]) -> ColumnElement[bool]:
    """Users whose every live membership is Minimal Access (and who hold at least one): free on
    every plan (GitLab 18.9 made them free on self-managed Premium too; Ultimate never billed them)."""
    mine = (_M.user_id == _U.id) & or_(_M.expires_at.is_(None), _M.expires_at > today)
    return exists(select(_M.id).where(mine, _M.access_level == AccessLevel.MINIMAL_ACCESS)) & ~exists(
        select(_M.id).where(mine, _M.access_level > AccessLevel.MINIMAL_ACCESS)
    )


def _billable(today: dt.date | BindParameter[dt.date] | None) -> ColumnElement[bool]:
    """Billable users, with the Ultimate rule (a live role above Guest) unless ``today`` is None."""
    condition = (_U.state == UserState.ACTIVE.value) & _U.user_type.in_([int(t) for t in BILLABLE_TYPES])
    if today is not None:
        condition = condition & _has_role_above_guest(today)
    return condition


def _billable_below_ultimate(today: dt.date | BindParameter[dt.date]) -> ColumnElement[bool]:
    return _billable(None) & ~_only_minimal_access(today)


def billable_condition(ctx: Ctx, settings: InstanceSettings | None = None) -> ColumnElement[bool]:
    """The SQL condition on ``users`` that selects billable users.

    Billable: active (not blocked, banned, deactivated or pending approval) humans; bots, service
    accounts and internal users never. On Ultimate a user must also hold a role above Guest
    somewhere (GitLab counts users whose highest role is Guest, or who have none, as free).
    """
    settings = settings or instance_settings(ctx)
    if guests_are_free(settings):
        return _billable(ctx.today())
    return _billable_below_ultimate(ctx.today())


_N = Namespace.__table__.c
_S = InstanceSettings.__table__.c
# Whether Guests are free (``guests_are_free``) as SQL: the instance's plan, the model's default
# while its settings row does not exist yet.
_instance_plan: ColumnElement[str] = func.coalesce(
    select(_S.plan).where(_S.id == 1).scalar_subquery(), Plan.ULTIMATE.value
)
_guests_free: ColumnElement[bool] = _instance_plan == Plan.ULTIMATE.value


def takes_seat(today: BindParameter[dt.date]) -> ColumnElement[bool]:
    """``billable_condition`` as one SQL condition on ``users`` whatever the plan: the instance's
    plan is read in the same statement, so that a statement built once serves every plan. Every
    place that tells who takes a seat (GET /license, the admin user entity, ``is_using_seat``,
    billable members) uses this rule or ``billable_condition``."""
    return _billable_below_ultimate(today) & or_(~_guests_free, _has_role_above_guest(today))


# Users with their personal namespace, if they have one.
_WITH_NAMESPACE = User.__table__.outerjoin(Namespace.__table__, (_N.owner_id == _U.id) & (_N.kind == "user"))
# What admins see of some users besides their row: the personal namespace, and whether the user
# takes a seat (the rule above, Ultimate's free Guests decided by the plan in the same statement).
_NAMESPACES_AND_SEATS = prepared(
    select(
        _U.id,
        _N.id.label("namespace_id"),
        takes_seat(bindparam("today", type_=Date)).label("billable"),
    )
    .select_from(_WITH_NAMESPACE)
    .where(_U.id.in_(bindparam("ids", expanding=True)))
)


# One user with what admins see of them besides the row: GET /users/:id in one statement.
_USER_WITH_SEAT = prepared(
    select(*USER_COLUMNS, *_NAMESPACES_AND_SEATS.selected_columns[1:])
    .select_from(_WITH_NAMESPACE)
    .where(_U.id == bindparam("id"))
)


def user_with_seat(ctx: Ctx, user_id: int) -> tuple[UserView, int | None, bool] | None:
    """The user, their personal namespace id and whether they take a seat (as
    ``namespaces_and_seats`` tells), read together; None if no user has this id."""
    row = ctx.reads.first(_USER_WITH_SEAT, {"id": user_id, "today": ctx.today()})
    if row is None:
        return None
    *columns, namespace_id, billable = row
    return UserView(*columns), namespace_id, bool(billable)


def namespaces_and_seats(ctx: Ctx, user_ids: Iterable[int]) -> tuple[dict[int, int], set[int]]:
    """The personal namespace id of each of ``user_ids``, and which of them take a seat (the
    admin entity's ``namespace_id`` and ``using_license_seat``), in one statement with the plan."""
    ids = sorted(set(user_ids))
    namespaces: dict[int, int] = {}
    seats: set[int] = set()
    if not ids:
        return namespaces, seats
    for user_id, namespace_id, billable in ctx.reads.rows(
        _NAMESPACES_AND_SEATS, {"ids": ids, "today": ctx.today()}
    ):
        if namespace_id is not None:
            namespaces[user_id] = namespace_id
        if billable:
            seats.add(user_id)
    return namespaces, seats


def billable_users_count(ctx: Ctx) -> int:
    return int(ctx.db.scalar(select(func.count(User.id)).where(billable_condition(ctx))) or 0)


def billable_users(ctx: Ctx) -> Select[Any]:
    """The users who take a seat (``billable_condition``), newest first. Raises Forbidden for
    non-admins (the admin area's Seats page lists them)."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    return select(User).where(billable_condition(ctx)).order_by(User.id.desc())


def is_billable(ctx: Ctx, user: User) -> bool:
    return user.id in namespaces_and_seats(ctx, [user.id])[1]


@dataclass(frozen=True)
class License:
    """What GET /license reports: the plan, the paid seats and the seats in use."""

    id: int
    plan: str
    created_at: dt.datetime
    starts_at: dt.date
    expires_at: dt.date | None
    user_limit: int
    active_users: int
    historical_max: int
    maximum_user_count: int
    overage: int
    expired: bool
    licensee: dict[str, str | None]
    add_ons: dict[str, Any] = field(default_factory=dict)


def current_license(ctx: Ctx) -> License:
    """The instance's license as GitLab's License API shows it. Raises Forbidden for non-admins."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    settings = instance_settings(ctx)
    active = billable_users_count(ctx)
    # No usage history is kept: the high-water mark is today's count.
    historical_max = active
    # An unlimited license has no seat restriction; GitLab then reports a user_limit of 0.
    user_limit = settings.seats or 0
    overage = max(0, historical_max - user_limit) if settings.seats is not None else 0
    return License(
        id=1,
        plan=settings.plan,
        created_at=settings.updated_at,
        starts_at=settings.updated_at.date(),
        expires_at=None,
        user_limit=user_limit,
        active_users=active,
        historical_max=historical_max,
        maximum_user_count=historical_max,
        overage=overage,
        expired=False,
        licensee={"Name": "keycrew", "Email": None, "Company": ctx.instance.host},
    )


@dataclass(frozen=True)
class SeatBreakdown:
    """Who takes a seat and who does not, for the admin area's Seats page.

    Every user is counted exactly once: ``billable`` plus the non-billable groups add up to
    ``total``.
    """

    plan: str
    # Paid seats of the license; None means unlimited.
    seats: int | None
    billable: int
    # Project and group bots.
    bots: int
    service_accounts: int
    internal: int
    # People who are blocked, banned, deactivated or pending approval.
    inactive_humans: int
    # Active people with no role above Guest: free on Ultimate (always 0 on other plans).
    guests: int
    # Active people whose only roles are Minimal Access, below Ultimate (on Ultimate: in ``guests``).
    minimal_access: int = 0

    @property
    def guests_are_free(self) -> bool:
        return self.plan == Plan.ULTIMATE

    @property
    def non_billable(self) -> int:
        return (
            self.bots
            + self.service_accounts
            + self.internal
            + self.inactive_humans
            + self.guests
            + self.minimal_access
        )

    @property
    def total(self) -> int:
        return self.billable + self.non_billable

    @property
    def available(self) -> int | None:
        """Paid seats not in use (None: unlimited)."""
        return None if self.seats is None else max(0, self.seats - self.billable)

    @property
    def overage(self) -> int:
        """Billable users beyond the paid seats."""
        return 0 if self.seats is None else max(0, self.billable - self.seats)


def seat_breakdown(ctx: Ctx) -> SeatBreakdown:
    """Billable and non-billable users by reason, under the instance's license (the same rule as
    ``billable_condition`` and GET /license). Raises Forbidden for non-admins."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    settings = instance_settings(ctx)
    per_type: dict[int, int] = dict(
        ctx.db.execute(select(User.user_type, func.count(User.id)).group_by(User.user_type)).all()
    )
    people = User.user_type.in_([int(t) for t in BILLABLE_TYPES])
    inactive = int(
        ctx.db.scalar(select(func.count(User.id)).where(people, User.state != UserState.ACTIVE.value)) or 0
    )
    guests = minimal_access = 0
    active_people = (people, User.state == UserState.ACTIVE.value)
    if not guests_are_free(settings):
        minimal_access = int(
            ctx.db.scalar(
                select(func.count(User.id)).where(*active_people, _only_minimal_access(ctx.today()))
            )
            or 0
        )
    else:
        guests = int(
            ctx.db.scalar(
                select(func.count(User.id)).where(
                    people, User.state == UserState.ACTIVE.value, ~_has_role_above_guest(ctx.today())
                )
            )
            or 0
        )
    return SeatBreakdown(
        plan=settings.plan,
        seats=settings.seats,
        billable=billable_users_count(ctx),
        bots=per_type.get(int(UserType.PROJECT_BOT), 0),
        service_accounts=per_type.get(int(UserType.SERVICE_ACCOUNT), 0),
        internal=sum(n for t, n in per_type.items() if UserType(t).is_internal),
        inactive_humans=inactive,
        guests=guests,
        minimal_access=minimal_access,
    )
