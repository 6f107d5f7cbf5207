"""Rule: when tokens expire: a new token's date is after today and at most the instance's maximum
lifetime ahead (the maximum when omitted, or none if expiry is optional); service-account tokens
follow their own switch, always on for Free; a rotated token's successor lives 7 days by default;
deploy tokens accept today and have no maximum (keycrew/tokens/expiry.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from keycrew.errors import Invalid
from keycrew.instance.settings import Plan, set_license, update_settings
from keycrew.tokens.expiry import (
    FORM_DEFAULT_DAYS,
    ROTATION_DEFAULT_DAYS,
    ExpiryPolicy,
    check_expiry,
    deploy_token_expiry,
    expiry_policy,
    rotation_expiry,
    service_account_token_expiry,
)
from keycrew.tokens.models import PersonalAccessToken
from tests.unit.conftest import World


def _days(world: World, n: int) -> dt.date:
    return world.today() + dt.timedelta(days=n)


def _optional_expiry(world: World) -> None:
    update_settings(world.as_root(), {"require_personal_access_token_expiry": False})


# -- check_expiry ---------------------------------------------------------------------------------


def test_without_a_date_a_token_gets_the_maximum_lifetime(world: World) -> None:
    assert check_expiry(world.as_root(), None) == _days(world, 365)


def test_without_a_date_a_token_never_expires_when_expiry_is_optional(world: World) -> None:
    _optional_expiry(world)
    assert check_expiry(world.as_root(), None) is None


def test_yesterday_is_refused(world: World) -> None:
    with pytest.raises(Invalid) as refused:
        check_expiry(world.as_root(), _days(world, -1))
    assert refused.value.errors == {"expires_at": ["can't be before today"]}


@pytest.mark.parametrize("offset", [0, 1, 30, 364, 365])
def test_from_today_to_the_maximum_lifetime_is_accepted(world: World, offset: int) -> None:
    assert check_expiry(world.as_root(), _days(world, offset)) == _days(world, offset)


def test_one_day_beyond_the_maximum_lifetime_is_refused(world: World) -> None:
    with pytest.raises(Invalid) as refused:
        check_expiry(world.as_root(), _days(world, 366))
    assert refused.value.errors == {"expires_at": [f"must be before {_days(world, 365).isoformat()}"]}


def test_the_maximum_lifetime_is_the_instances(world: World) -> None:
    update_settings(world.as_root(), {"max_personal_access_token_lifetime": 30})
    assert check_expiry(world.as_root(), _days(world, 30)) == _days(world, 30)
    with pytest.raises(Invalid):
        check_expiry(world.as_root(), _days(world, 31))
    assert check_expiry(world.as_root(), None) == _days(world, 30)


def test_the_bounds_move_with_the_clock(world: World) -> None:
    date = _days(world, 365)
    world.clock.advance(days=1)
    assert check_expiry(world.as_root(), date) == date
    world.clock.advance(days=365)
    with pytest.raises(Invalid):
        check_expiry(world.as_root(), date)


def test_today_starts_at_midnight_utc(world: World) -> None:
    # Today is accepted, yesterday is not: the boundary is 00:00 UTC.
    world.clock.set(dt.datetime(2030, 3, 1, 23, 59, 59, tzinfo=dt.UTC))
    assert check_expiry(world.as_root(), dt.date(2030, 3, 1)) == dt.date(2030, 3, 1)
    world.clock.advance(seconds=1)
    with pytest.raises(Invalid):
        check_expiry(world.as_root(), dt.date(2030, 3, 1))
    assert check_expiry(world.as_root(), dt.date(2030, 3, 2)) == dt.date(2030, 3, 2)


# -- a token dies at 00:00 UTC on its date ---------------------------------------------------------


def test_a_token_is_expired_from_its_expiry_date_on() -> None:
    token = PersonalAccessToken(expires_at=dt.date(2030, 1, 15), revoked=False)
    assert not token.is_expired(dt.date(2030, 1, 14))
    assert token.is_active(dt.date(2030, 1, 14))
    assert token.is_expired(dt.date(2030, 1, 15))
    assert token.is_expired(dt.date(2030, 1, 16))
    assert not PersonalAccessToken(expires_at=None, revoked=False).is_expired(dt.date.max)


# -- service accounts -----------------------------------------------------------------------------


def test_a_service_account_token_gets_the_maximum_when_expiry_is_enforced(world: World) -> None:
    assert service_account_token_expiry(world.as_root(), None) == _days(world, 365)


@pytest.mark.parametrize(
    ("plan", "expected_days"),
    [(Plan.ULTIMATE, None), (Plan.PREMIUM, None), (Plan.FREE, 365)],
)
def test_without_enforcement_a_service_account_token_may_live_forever_except_on_free(
    world: World, plan: Plan, expected_days: int | None
) -> None:
    set_license(world.as_root(), plan, None)
    update_settings(world.as_root(), {"service_access_tokens_expiration_enforced": False})
    expected = None if expected_days is None else _days(world, expected_days)
    assert service_account_token_expiry(world.as_root(), None) == expected


def test_service_account_token_expiry_is_independent_of_personal_token_expiry(world: World) -> None:
    _optional_expiry(world)
    assert service_account_token_expiry(world.as_root(), None) == _days(world, 365)


def test_a_given_service_account_token_date_is_checked_like_any_other(world: World) -> None:
    update_settings(world.as_root(), {"service_access_tokens_expiration_enforced": False})
    assert service_account_token_expiry(world.as_root(), _days(world, 365)) == _days(world, 365)
    assert service_account_token_expiry(world.as_root(), _days(world, 0)) == _days(world, 0)
    for offset in (-1, 366):
        with pytest.raises(Invalid):
            service_account_token_expiry(world.as_root(), _days(world, offset))


# -- rotation -------------------------------------------------------------------------------------


def test_a_successor_lives_a_week_by_default(world: World) -> None:
    assert ROTATION_DEFAULT_DAYS == 7
    assert rotation_expiry(world.as_root(), None, had_expiry=True) == _days(world, 7)
    assert rotation_expiry(world.as_root(), None, had_expiry=False) == _days(world, 7)


def test_when_expiry_is_optional_a_successor_keeps_having_none_or_a_week(world: World) -> None:
    _optional_expiry(world)
    assert rotation_expiry(world.as_root(), None, had_expiry=False) is None
    assert rotation_expiry(world.as_root(), None, had_expiry=True) == _days(world, 7)


def test_a_successors_given_date_must_be_in_the_future(world: World) -> None:
    assert rotation_expiry(world.as_root(), _days(world, 1), had_expiry=True) == _days(world, 1)
    with pytest.raises(Invalid) as refused:
        rotation_expiry(world.as_root(), _days(world, 0), had_expiry=True)
    assert refused.value.errors == {"expires_at": ["must be in the future"]}


def test_a_successors_given_date_is_at_most_the_maximum(world: World) -> None:
    assert rotation_expiry(world.as_root(), _days(world, 365), had_expiry=True) == _days(world, 365)
    with pytest.raises(Invalid, match=f"Expiration date must be before {_days(world, 365).isoformat()}"):
        rotation_expiry(world.as_root(), _days(world, 366), had_expiry=True)


# -- deploy tokens --------------------------------------------------------------------------------


def test_deploy_tokens_never_expire_unless_asked(world: World) -> None:
    assert deploy_token_expiry(world.as_root(), None) is None


@pytest.mark.parametrize("offset", [0, 1, 366, 3650])
def test_a_deploy_token_accepts_today_and_any_later_date(world: World, offset: int) -> None:
    assert deploy_token_expiry(world.as_root(), _days(world, offset)) == _days(world, offset)


def test_a_deploy_token_refuses_yesterday(world: World) -> None:
    with pytest.raises(Invalid) as refused:
        deploy_token_expiry(world.as_root(), _days(world, -1))
    assert refused.value.errors == {"expires_at": ["can't be before today"]}


# -- what a form proposes -------------------------------------------------------------------------


def test_the_form_proposes_30_days_between_today_and_the_maximum(world: World) -> None:
    assert FORM_DEFAULT_DAYS == 30
    assert expiry_policy(world.as_root()) == ExpiryPolicy(
        earliest=_days(world, 0), latest=_days(world, 365), default=_days(world, 30), required=True
    )


@pytest.mark.parametrize(("lifetime", "default"), [(29, 29), (30, 30), (31, 30)])
def test_the_forms_default_is_never_beyond_the_maximum(world: World, lifetime: int, default: int) -> None:
    update_settings(world.as_root(), {"max_personal_access_token_lifetime": lifetime})
    policy = expiry_policy(world.as_root())
    assert (policy.default, policy.latest) == (_days(world, default), _days(world, lifetime))


def test_the_form_says_whether_a_date_is_required(world: World) -> None:
    _optional_expiry(world)
    assert expiry_policy(world.as_root()).required is False


def test_the_policys_bounds_are_what_check_expiry_accepts(world: World) -> None:
    policy = expiry_policy(world.as_root())
    ctx = world.as_root()
    for date in (policy.earliest, policy.default, policy.latest):
        assert check_expiry(ctx, date) == date
    for date in (policy.earliest - dt.timedelta(days=1), policy.latest + dt.timedelta(days=1)):
        with pytest.raises(Invalid):
            check_expiry(ctx, date)
