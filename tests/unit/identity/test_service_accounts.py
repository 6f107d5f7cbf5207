"""Rule: how many service accounts a license allows: Free none, Premium one per paid seat (unlimited
without a seat count), Ultimate unlimited (keycrew/identity/service_accounts.py)."""

from __future__ import annotations

import pytest

from keycrew.errors import Forbidden
from keycrew.identity.service_accounts import (
    NO_SEATS,
    may_create_service_account,
    service_account_limit,
    service_accounts_count,
)
from keycrew.identity.types import UserType
from keycrew.instance.settings import Plan, set_license
from tests.unit import factories
from tests.unit.conftest import World


@pytest.mark.parametrize(
    ("plan", "seats", "limit"),
    [
        (Plan.FREE, None, 0),
        (Plan.FREE, 100, 0),
        (Plan.PREMIUM, 0, 0),
        (Plan.PREMIUM, 5, 5),
        (Plan.PREMIUM, None, None),
        (Plan.ULTIMATE, 5, None),
        (Plan.ULTIMATE, None, None),
    ],
)
def test_service_account_limit(plan: Plan, seats: int | None, limit: int | None) -> None:
    assert service_account_limit(plan, seats) == limit


@pytest.mark.parametrize(
    ("plan", "seats", "existing", "allowed"),
    [
        (Plan.FREE, None, 0, False),
        (Plan.PREMIUM, 2, 0, True),
        (Plan.PREMIUM, 2, 1, True),
        (Plan.PREMIUM, 2, 2, False),
        (Plan.PREMIUM, 2, 3, False),
        (Plan.PREMIUM, None, 1000, True),
        (Plan.ULTIMATE, 1, 1000, True),
    ],
)
def test_may_create_service_account(plan: Plan, seats: int | None, existing: int, allowed: bool) -> None:
    assert may_create_service_account(plan, seats, existing) is allowed


def test_free_plan_creates_none(world: World) -> None:
    ctx = world.as_root()
    set_license(ctx, Plan.FREE, None)
    with pytest.raises(Forbidden, match=NO_SEATS):
        factories.service_account(ctx)
    assert service_accounts_count(ctx) == 0


def test_premium_creates_one_per_paid_seat(world: World) -> None:
    ctx = world.as_root()
    set_license(ctx, Plan.PREMIUM, 2)
    factories.service_account(ctx)
    factories.service_account(ctx)
    with pytest.raises(Forbidden, match=NO_SEATS):
        factories.service_account(ctx)
    assert service_accounts_count(ctx) == 2


def test_only_service_accounts_count_towards_the_limit(world: World) -> None:
    ctx = world.as_root()
    set_license(ctx, Plan.PREMIUM, 1)
    factories.user(ctx)
    factories.resource_token(ctx, factories.project(ctx))
    assert service_accounts_count(ctx) == 0
    account = factories.service_account(ctx)
    assert account.type is UserType.SERVICE_ACCOUNT
    assert service_accounts_count(ctx) == 1
