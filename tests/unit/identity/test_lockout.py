"""Rule: the ``max_login_attempts``-th wrong password in a row locks an account for
``failed_login_attempts_unlock_period_in_minutes``, after which it opens by itself; whoever may not
sign in gets the same neutral refusal as a wrong password (keycrew/identity/lockout.py, sign_in.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from keycrew.audit.events import Event
from keycrew.errors import Forbidden
from keycrew.identity.internal import admin_bot, ghost
from keycrew.identity.lockout import is_locked, locked_until
from keycrew.identity.models import User
from keycrew.identity.passwords import hash_password
from keycrew.identity.sign_in import NEUTRAL_REFUSAL, SignInResult, sign_in, unlock_user
from keycrew.identity.types import UserState, UserType
from keycrew.instance.models import InstanceSettings
from keycrew.instance.settings import instance_settings, update_settings
from tests.unit import factories
from tests.unit.conftest import T0, World

PASSWORD = "correct-horse-battery"
WRONG = "wrong-password-123"

pytestmark = pytest.mark.usefixtures("cheap_passwords")


def _person(world: World, **attrs: Any) -> User:
    return factories.user(world.as_root(), password=PASSWORD, **attrs)


def _attempt(world: World, login: str, password: str) -> SignInResult:
    return sign_in(world.ctx(None, ip="192.0.2.7", via="web"), login, password)


def _fail(world: World, user: User, times: int) -> None:
    for _ in range(times):
        assert _attempt(world, user.username, WRONG).refusal == NEUTRAL_REFUSAL


# -- the rule itself ------------------------------------------------------------------------------


def _settings(period: int = 10) -> InstanceSettings:
    return InstanceSettings(id=1, failed_login_attempts_unlock_period_in_minutes=period)


def test_an_account_never_locked_is_not_locked() -> None:
    user = User(locked_at=None)
    assert locked_until(user, _settings()) is None
    assert not is_locked(user, _settings(), T0)


def test_a_lock_opens_at_the_end_of_the_unlock_period() -> None:
    user = User(locked_at=T0)
    assert locked_until(user, _settings(10)) == T0 + dt.timedelta(minutes=10)
    assert is_locked(user, _settings(10), T0)
    assert is_locked(user, _settings(10), T0 + dt.timedelta(minutes=10) - dt.timedelta(microseconds=1))
    assert not is_locked(user, _settings(10), T0 + dt.timedelta(minutes=10))
    assert is_locked(user, _settings(60), T0 + dt.timedelta(minutes=10))


def test_the_defaults_are_gitlabs_ten_attempts_and_ten_minutes(world: World) -> None:
    settings = instance_settings(world.as_root())
    assert settings.max_login_attempts == 10
    assert settings.failed_login_attempts_unlock_period_in_minutes == 10


# -- signing in ------------------------------------------------------------------------------------


def test_the_ninth_wrong_password_does_not_lock_the_tenth_does(world: World) -> None:
    user = _person(world)
    _fail(world, user, 9)
    assert (user.failed_attempts, user.locked_at) == (9, None)
    assert world.events(Event.USER_LOCKED) == []
    _fail(world, user, 1)
    assert (user.failed_attempts, user.locked_at) == (10, T0)
    assert len(world.events(Event.USER_SIGN_IN_FAILED, target_id=user.id)) == 10


def test_the_lock_is_the_admin_bots_act(world: World) -> None:
    user = _person(world)
    _fail(world, user, 10)
    (event,) = world.events(Event.USER_LOCKED, target_id=user.id)
    assert event.author_id == admin_bot(world.as_root()).id
    assert event.details["unlock_at"] == (T0 + dt.timedelta(minutes=10)).isoformat()


def test_a_locked_account_refuses_even_the_right_password(world: World) -> None:
    user = _person(world)
    _fail(world, user, 10)
    world.clock.advance(minutes=9, seconds=59)
    result = _attempt(world, user.username, PASSWORD)
    assert (result.issued, result.refusal) == (None, NEUTRAL_REFUSAL)
    assert user.sign_in_count == 0


def test_the_lock_opens_by_itself_after_the_period(world: World) -> None:
    user = _person(world)
    _fail(world, user, 10)
    world.clock.advance(minutes=10)
    result = _attempt(world, user.username, PASSWORD)
    assert result.issued is not None
    assert (user.locked_at, user.failed_attempts, user.sign_in_count) == (None, 0, 1)
    assert len(world.events(Event.USER_UNLOCKED, target_id=user.id)) == 1


def test_after_the_period_a_wrong_password_counts_from_one_again(world: World) -> None:
    user = _person(world)
    _fail(world, user, 10)
    world.clock.advance(minutes=10)
    _fail(world, user, 1)
    assert (user.failed_attempts, user.locked_at) == (1, None)


def test_a_right_password_forgets_the_failed_attempts(world: World) -> None:
    user = _person(world)
    _fail(world, user, 9)
    assert _attempt(world, user.username, PASSWORD).issued is not None
    assert user.failed_attempts == 0
    _fail(world, user, 9)
    assert user.locked_at is None


def test_max_login_attempts_and_unlock_period_are_the_instances(world: World) -> None:
    update_settings(
        world.as_root(), {"max_login_attempts": 3, "failed_login_attempts_unlock_period_in_minutes": 60}
    )
    user = _person(world)
    _fail(world, user, 2)
    assert user.locked_at is None
    _fail(world, user, 1)
    assert user.locked_at == T0
    world.clock.advance(minutes=59)
    assert _attempt(world, user.username, PASSWORD).issued is None
    world.clock.advance(minutes=1)
    assert _attempt(world, user.username, PASSWORD).issued is not None


def test_an_admin_unlocks_an_account(world: World) -> None:
    user = _person(world)
    _fail(world, user, 10)
    assert unlock_user(world.as_root(), user) is True
    assert (user.locked_at, user.failed_attempts) == (None, 0)
    assert unlock_user(world.as_root(), user) is False
    with pytest.raises(Forbidden):
        unlock_user(world.ctx(_person(world)), user)


def test_login_by_email_any_case(world: World) -> None:
    user = _person(world)
    assert _attempt(world, user.email.upper(), PASSWORD).issued is not None
    assert _attempt(world, f"  {user.username.upper()} ", PASSWORD).issued is not None


def test_a_deactivated_person_who_signs_in_is_active_again(world: World) -> None:
    user = _person(world, state=UserState.DEACTIVATED)
    assert _attempt(world, user.username, PASSWORD).issued is not None
    assert user.state == UserState.ACTIVE


# -- who may not sign in: the same refusal, and nothing counted -----------------------------------


@pytest.mark.parametrize(
    "attrs",
    [
        {"user_type": UserType.PROJECT_BOT},
        {"user_type": UserType.SERVICE_ACCOUNT},
        {"state": UserState.BLOCKED},
        {"state": UserState.BANNED},
        {"state": UserState.BLOCKED_PENDING_APPROVAL},
    ],
    ids=["project-bot", "service-account", "blocked", "banned", "pending-approval"],
)
def test_who_may_not_sign_in_gets_the_neutral_refusal_even_with_the_right_password(
    world: World, attrs: dict[str, object]
) -> None:
    user = _person(world, **attrs)
    for password in (PASSWORD, WRONG):
        result = _attempt(world, user.username, password)
        assert (result.issued, result.refusal) == (None, NEUTRAL_REFUSAL)
    assert user.failed_attempts == 0
    assert world.events(Event.USER_SIGN_IN_FAILED) == []


def test_an_internal_user_gets_the_neutral_refusal(world: World) -> None:
    user = ghost(world.as_root())
    user.password_digest = hash_password(PASSWORD)  # even if it somehow had a password
    assert _attempt(world, user.username, PASSWORD).refusal == NEUTRAL_REFUSAL


@pytest.mark.parametrize("login", ["nobody", "nobody@example.com", "", "x" * 300])
def test_an_unknown_login_gets_the_neutral_refusal_and_leaves_no_trace(world: World, login: str) -> None:
    assert _attempt(world, login, PASSWORD).refusal == NEUTRAL_REFUSAL
    assert world.events(Event.USER_SIGN_IN_FAILED) == []
