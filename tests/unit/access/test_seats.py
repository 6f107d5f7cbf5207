"""Rule: who takes a seat: active humans only (bots, service accounts and internal users never);
on Ultimate only those with a live role above Guest; the breakdown counts everyone exactly once
(keycrew/access/seats.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from keycrew.access.levels import AccessLevel
from keycrew.access.seats import billable_users_count, current_license, is_billable, seat_breakdown
from keycrew.errors import Forbidden
from keycrew.identity.internal import admin_bot, ghost
from keycrew.identity.models import User
from keycrew.identity.types import UserState, UserType
from keycrew.instance.settings import Plan, set_license
from keycrew.namespaces.models import Project
from tests.unit import factories
from tests.unit.conftest import World

L = AccessLevel


def _plan(world: World, plan: Plan, seats: int | None = None) -> None:
    set_license(world.as_root(), plan.value, seats)


def _person(world: World, project: Project, level: int | None, **attrs: Any) -> User:
    user = factories.user(world.as_root(), **attrs)
    if level is not None:
        factories.membership(world.as_root(), project, user, level)
    return user


@pytest.mark.parametrize(
    ("level", "billable"),
    [
        (None, False),
        (L.MINIMAL_ACCESS, False),
        (L.GUEST, False),
        (L.PLANNER, True),
        (L.REPORTER, True),
        (L.DEVELOPER, True),
        (L.OWNER, True),
    ],
)
def test_on_ultimate_only_a_role_above_guest_takes_a_seat(
    world: World, level: int | None, billable: bool
) -> None:
    project = factories.project(world.as_root())
    assert is_billable(world.as_root(), _person(world, project, level)) is billable


@pytest.mark.parametrize("plan", [Plan.FREE, Plan.PREMIUM])
@pytest.mark.parametrize("level", [None, L.GUEST, L.DEVELOPER])
def test_below_ultimate_every_active_human_takes_a_seat(world: World, plan: Plan, level: int | None) -> None:
    _plan(world, plan)
    project = factories.project(world.as_root())
    assert is_billable(world.as_root(), _person(world, project, level))


def test_the_highest_role_anywhere_decides(world: World) -> None:
    guest_here = factories.project(world.as_root())
    developer_there = factories.project(world.as_root())
    user = _person(world, guest_here, L.GUEST)
    assert not is_billable(world.as_root(), user)
    factories.membership(world.as_root(), developer_there, user, L.DEVELOPER)
    assert is_billable(world.as_root(), user)


def test_a_role_stops_counting_on_its_expiry_date(world: World) -> None:
    project = factories.project(world.as_root())
    user = factories.user(world.as_root())
    factories.membership(world.as_root(), project, user, L.DEVELOPER, expires_at=world.days(1))
    assert is_billable(world.as_root(), user)
    world.clock.advance(days=1)
    assert not is_billable(world.as_root(), user)


@pytest.mark.parametrize(
    "state",
    [UserState.BLOCKED, UserState.BANNED, UserState.DEACTIVATED, UserState.BLOCKED_PENDING_APPROVAL],
)
@pytest.mark.parametrize("plan", list(Plan))
def test_people_who_are_not_active_take_no_seat(world: World, state: UserState, plan: Plan) -> None:
    _plan(world, plan)
    project = factories.project(world.as_root())
    assert not is_billable(world.as_root(), _person(world, project, L.DEVELOPER, state=state))


@pytest.mark.parametrize("plan", list(Plan))
def test_bots_service_accounts_and_internal_users_never_take_a_seat(world: World, plan: Plan) -> None:
    project = factories.project(world.as_root())
    issued, _level = factories.resource_token(world.as_root(), project, access_level=L.MAINTAINER)
    bot = world.db.get(User, issued.token.user_id)
    account = factories.service_account(world.as_root())
    factories.membership(world.as_root(), project, account, L.DEVELOPER)
    _plan(world, plan)
    for user in (bot, account, ghost(world.as_root()), admin_bot(world.as_root())):
        assert user is not None
        assert not is_billable(world.as_root(), user), user


def test_the_breakdown_adds_up(world: World) -> None:
    ctx = world.as_root()
    project = factories.project(ctx)  # root is its Owner: billable
    _person(world, project, L.DEVELOPER)
    _person(world, project, L.GUEST)
    _person(world, project, None)
    _person(world, project, L.DEVELOPER, state=UserState.BLOCKED)
    factories.resource_token(ctx, project)
    factories.service_account(ctx)
    ghost(ctx)
    breakdown = seat_breakdown(ctx)
    assert (breakdown.billable, breakdown.guests, breakdown.inactive_humans) == (2, 2, 1)
    assert (breakdown.bots, breakdown.service_accounts, breakdown.internal) == (1, 1, 1)
    assert breakdown.total == world.db.scalar(select(func.count(User.id)))
    assert breakdown.billable == billable_users_count(ctx)
    assert breakdown.guests_are_free


def test_guests_take_seats_below_ultimate_in_the_breakdown(world: World) -> None:
    _plan(world, Plan.PREMIUM, 2)
    project = factories.project(world.as_root())
    _person(world, project, L.GUEST)
    _person(world, project, None)
    breakdown = seat_breakdown(world.as_root())
    assert (breakdown.billable, breakdown.guests, breakdown.guests_are_free) == (3, 0, False)
    assert (breakdown.available, breakdown.overage) == (0, 1)
    assert breakdown.total == world.db.scalar(select(func.count(User.id)))


def test_the_license_reports_seats_in_use_and_overage(world: World) -> None:
    _plan(world, Plan.PREMIUM, 1)
    factories.user(world.as_root())
    factories.user(world.as_root())
    report = current_license(world.as_root())
    assert (report.plan, report.user_limit, report.active_users, report.overage) == ("premium", 1, 3, 2)


def test_an_unlimited_license_reports_a_limit_of_zero_and_no_overage(world: World) -> None:
    _plan(world, Plan.FREE, None)
    factories.user(world.as_root())
    report = current_license(world.as_root())
    assert (report.user_limit, report.active_users, report.overage) == (0, 2, 0)
    assert seat_breakdown(world.as_root()).available is None


def test_only_admins_see_seats(world: World) -> None:
    someone = world.ctx(factories.user(world.as_root()))
    with pytest.raises(Forbidden):
        seat_breakdown(someone)
    with pytest.raises(Forbidden):
        current_license(someone)


def test_the_user_types_that_can_hold_a_seat(world: World) -> None:
    project = factories.project(world.as_root())
    service_user = _person(world, project, L.DEVELOPER, user_type=UserType.SERVICE_USER)
    assert is_billable(world.as_root(), service_user)
