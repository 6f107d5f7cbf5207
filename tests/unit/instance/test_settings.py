"""Rule: the instance's settings row: GitLab's defaults, created on first need; what an admin may
change and within which bounds; the license's plan and seats (keycrew/instance/settings.py)."""

from __future__ import annotations

import pytest

from keycrew.audit.events import Event
from keycrew.errors import BadParameter, Forbidden, Invalid
from keycrew.instance.models import InstanceSettings
from keycrew.instance.settings import (
    SETTINGS,
    Plan,
    instance_settings,
    read_settings,
    set_license,
    update_settings,
)
from tests.unit import factories
from tests.unit.conftest import T0, World

DEFAULTS = {
    "plan": "ultimate",
    "seats": None,
    "max_personal_access_token_lifetime": 365,
    "require_personal_access_token_expiry": True,
    "inactive_resource_access_tokens_delete_after_days": 30,
    "password_authentication_enabled_for_git": True,
    "max_login_attempts": 10,
    "failed_login_attempts_unlock_period_in_minutes": 10,
    "service_access_tokens_expiration_enforced": True,
    # Request throttles: GitLab's defaults, off, with hourly windows.
    "throttle_authenticated_api_enabled": False,
    "throttle_authenticated_api_requests_per_period": 7200,
    "throttle_authenticated_api_period_in_seconds": 3600,
    "throttle_unauthenticated_api_enabled": False,
    "throttle_unauthenticated_api_requests_per_period": 3600,
    "throttle_unauthenticated_api_period_in_seconds": 3600,
    "throttle_authenticated_git_http_enabled": False,
    "throttle_authenticated_git_http_requests_per_period": 3600,
    "throttle_authenticated_git_http_period_in_seconds": 3600,
    # Accounts, bots and tokens (GitLab's defaults but one: group Owners create service accounts).
    "default_projects_limit": 100000,
    "personal_access_token_prefix": None,
    "deactivate_dormant_users": False,
    "deactivate_dormant_users_period": 90,
    "delete_unconfirmed_users": False,
    "unconfirmed_users_delete_after_days": 7,
    "delete_inactive_projects": False,
    "inactive_projects_delete_after_months": 2,
    "inactive_projects_min_size_mb": 0,
    "inactive_projects_send_warning_email_after_months": 1,
    "allow_top_level_group_owners_to_create_service_accounts": False,
    "admin_mode": False,
}
BOUNDS = {
    "max_personal_access_token_lifetime": (1, 400),
    "inactive_resource_access_tokens_delete_after_days": (0, 3650),
    "max_login_attempts": (1, 100),
    "failed_login_attempts_unlock_period_in_minutes": (1, 43200),
    **{
        f"throttle_{kind}_{name}": (1, 2**31 - 1)
        for kind in ("authenticated_api", "unauthenticated_api", "authenticated_git_http")
        for name in ("requests_per_period", "period_in_seconds")
    },
}


def test_the_defaults(world: World) -> None:
    row = instance_settings(world.as_root())
    assert {name: getattr(row, name) for name in DEFAULTS} == DEFAULTS


def test_the_row_is_made_on_first_need_with_the_defaults(world: World) -> None:
    world.db.delete(world.db.get(InstanceSettings, 1))
    world.db.flush()
    world.clock.advance(days=2)
    row = instance_settings(world.as_root())
    assert row.id == 1
    assert row.updated_at == world.clock.now()
    assert {name: getattr(row, name) for name in DEFAULTS} == DEFAULTS
    assert instance_settings(world.as_root()) is row


def test_the_integer_settings_and_their_bounds() -> None:
    bounded = {s.name: (s.minimum, s.maximum) for s in SETTINGS.values() if s.kind is int and not s.validated}
    assert bounded == BOUNDS


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"default_projects_limit": -1}, {"default_projects_limit": ["must be greater than or equal to 0"]}),
        ({"deactivate_dormant_users_period": 30}, {}),
        (
            {"deactivate_dormant_users": True, "deactivate_dormant_users_period": 89},
            {
                "deactivate_dormant_users_period": [
                    "'89' days of inactivity must be greater than or equal to 90"
                ]
            },
        ),
        (
            {"unconfirmed_users_delete_after_days": 0},
            {"unconfirmed_users_delete_after_days": ["must be greater than 0"]},
        ),
        (
            {
                "inactive_projects_delete_after_months": 5,
                "inactive_projects_send_warning_email_after_months": 5,
            },
            {"inactive_projects_send_warning_email_after_months": ["must be less than 5"]},
        ),
        ({"personal_access_token_prefix": "ok-prefix_1"}, {}),
        (
            {"personal_access_token_prefix": "a" * 21},
            {"personal_access_token_prefix": ["is too long (maximum is 20 characters)"]},
        ),
    ],
)
def test_gitlabs_validations_leave_the_row_untouched(
    world: World, changes: dict[str, object], errors: dict[str, list[str]]
) -> None:
    ctx = world.as_root()
    if not errors:
        update_settings(ctx, changes)
        return
    with pytest.raises(Invalid) as refused:
        update_settings(ctx, changes)
    assert refused.value.errors == errors
    row = instance_settings(ctx)
    assert {name: getattr(row, name) for name in DEFAULTS} == DEFAULTS


def test_the_token_prefix_is_stored_without_the_kind_prefix(world: World) -> None:
    ctx = world.as_root()
    assert (
        update_settings(ctx, {"personal_access_token_prefix": "acme-glpat-"}).personal_access_token_prefix
        == "acme-"
    )
    assert update_settings(ctx, {"personal_access_token_prefix": "glpat-"}).personal_access_token_prefix == ""
    assert update_settings(ctx, {"personal_access_token_prefix": ""}).personal_access_token_prefix is None


@pytest.mark.parametrize(("name", "bounds"), list(BOUNDS.items()))
def test_an_integer_setting_takes_its_bounds_and_nothing_beyond(
    world: World, name: str, bounds: tuple[int, int]
) -> None:
    low, high = bounds
    ctx = world.as_root()
    for value in (low, high):
        assert getattr(update_settings(ctx, {name: value}), name) == value
    for value in (low - 1, high + 1):
        with pytest.raises(BadParameter, match=f"^{name} does not have a valid value$"):
            update_settings(ctx, {name: value})
    assert getattr(instance_settings(ctx), name) == high


def test_a_refused_change_changes_nothing(world: World) -> None:
    ctx = world.as_root()
    with pytest.raises(BadParameter):
        update_settings(ctx, {"require_personal_access_token_expiry": False, "max_login_attempts": 0})
    # The first change was applied to the row before the second was refused; the caller's
    # transaction is what makes the whole call atomic.
    world.db.rollback()
    assert instance_settings(ctx).require_personal_access_token_expiry is True
    assert world.events(Event.SETTINGS_UPDATED) == []


def test_only_admins_read_or_change_settings(world: World) -> None:
    someone = world.ctx(factories.user(world.as_root()))
    with pytest.raises(Forbidden):
        read_settings(someone)
    with pytest.raises(Forbidden):
        update_settings(someone, {"max_login_attempts": 5})
    assert instance_settings(world.as_root()).max_login_attempts == 10


def test_a_change_is_audited_with_the_old_and_new_values(world: World) -> None:
    world.clock.advance(hours=1)
    update_settings(world.as_root(), {"max_login_attempts": 5, "max_personal_access_token_lifetime": 365})
    (event,) = world.events(Event.SETTINGS_UPDATED)
    assert event.author_id == world.root.id
    assert event.details == {"changes": {"max_login_attempts": 5}, "previous": {"max_login_attempts": 10}}
    assert instance_settings(world.as_root()).updated_at == world.clock.now()


def test_no_change_no_event(world: World) -> None:
    update_settings(world.as_root(), {"max_login_attempts": 10})
    assert world.events(Event.SETTINGS_UPDATED) == []
    assert instance_settings(world.as_root()).updated_at == T0


# -- the license ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("plan", "seats"), [(Plan.FREE, None), (Plan.PREMIUM, 0), (Plan.PREMIUM, 25)])
def test_set_license(world: World, plan: Plan, seats: int | None) -> None:
    row = set_license(world.as_root(), plan.value, seats)
    assert (row.plan, row.seats) == (plan.value, seats)
    (event,) = world.events(Event.LICENSE_UPDATED)
    assert event.details["changes"] == {
        "from": {"plan": "ultimate", "seats": None},
        "to": {"plan": plan.value, "seats": seats},
    }


@pytest.mark.parametrize(
    ("plan", "seats", "message"),
    [
        ("gold", None, "plan does not have a valid value"),
        ("PREMIUM", None, "plan does not have a valid value"),
        ("premium", -1, "seats does not have a valid value"),
    ],
)
def test_set_license_refuses_unknown_plans_and_negative_seats(
    world: World, plan: str, seats: int | None, message: str
) -> None:
    with pytest.raises(BadParameter, match=message):
        set_license(world.as_root(), plan, seats)


def test_the_system_and_admins_set_the_license_nobody_else(world: World) -> None:
    assert set_license(world.as_system(), "free", None).plan == "free"
    with pytest.raises(Forbidden):
        set_license(world.ctx(factories.user(world.as_root())), "ultimate", None)
    assert instance_settings(world.as_root()).plan == "free"


def test_a_refused_value_leaves_every_setting_unchanged(world: World) -> None:
    ctx = world.as_root()
    before = instance_settings(ctx).require_personal_access_token_expiry
    with pytest.raises(BadParameter):
        update_settings(ctx, {"require_personal_access_token_expiry": not before, "max_login_attempts": 0})
    assert instance_settings(ctx).require_personal_access_token_expiry is before
