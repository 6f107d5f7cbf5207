"""Rule: GitLab's check order for a presented token (unknown → 401; expired before revoked, each
with its words), reuse detection (a revoked, unexpired token presented to a rotation), and who may
use the API at all (keycrew/tokens/authentication.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from keycrew.errors import Forbidden, InvalidToken, Unauthenticated
from keycrew.identity.internal import ghost
from keycrew.identity.types import UserState
from keycrew.tokens.authentication import (
    EXPIRED,
    MAX_TOKEN_LENGTH,
    REVOKED,
    authenticate,
    check_token,
    check_token_usable,
    find_token,
    reuse_detected,
)
from keycrew.tokens.authentication import check_user_may_use_api as may_use_api
from keycrew.tokens.lifecycle import revoke
from tests.unit import factories
from tests.unit.conftest import HOST, ROOT_TOKEN, SECRET_KEY, World

TODAY = dt.date(2030, 1, 15)
KEY = SECRET_KEY.encode()


@dataclass(frozen=True)
class Token:
    """What the check order reads of a token (a row, or the authentication cache's snapshot)."""

    revoked: bool
    expires_at: dt.date | None

    def is_expired(self, today: dt.date) -> bool:
        return self.expires_at is not None and self.expires_at <= today


YESTERDAY, TOMORROW = TODAY - dt.timedelta(days=1), TODAY + dt.timedelta(days=1)


# -- the check order ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (Token(revoked=True, expires_at=YESTERDAY), EXPIRED),
        (Token(revoked=True, expires_at=TODAY), EXPIRED),
        (Token(revoked=False, expires_at=TODAY), EXPIRED),
        (Token(revoked=True, expires_at=TOMORROW), REVOKED),
        (Token(revoked=True, expires_at=None), REVOKED),
    ],
)
def test_expired_is_told_before_revoked(token: Token, message: str) -> None:
    with pytest.raises(InvalidToken) as refused:
        check_token_usable(token, TODAY)
    assert refused.value.message == message


@pytest.mark.parametrize("expires_at", [TOMORROW, None])
def test_a_live_token_is_usable(expires_at: dt.date | None) -> None:
    check_token_usable(Token(revoked=False, expires_at=expires_at), TODAY)


def test_gitlabs_words() -> None:
    assert EXPIRED == "Token is expired. You can either do re-authorization or token refresh."
    assert REVOKED == "Token was revoked. You have to re-authorize from the user."


def test_an_unknown_token_is_unauthenticated(world: World) -> None:
    with pytest.raises(Unauthenticated):
        check_token(None, TODAY)
    with pytest.raises(Unauthenticated):
        authenticate(world.db, KEY, "glpat-not-a-token-we-issued", world.today())


@pytest.mark.parametrize("value", ["", "x" * (MAX_TOKEN_LENGTH + 1)])
def test_empty_and_overlong_values_are_not_looked_up(world: World, value: str) -> None:
    assert find_token(world.db, KEY, value) is None


def test_the_seeded_root_token_authenticates_root(world: World) -> None:
    found = authenticate(world.db, KEY, ROOT_TOKEN, world.today())
    assert found.user.id == world.root.id
    assert found.token.scopes[:2] == ["api", "read_api"]


def test_a_token_stops_at_00_00_utc_on_its_expiry_date(world: World) -> None:
    issued = factories.personal_token(world.as_root(), world.root, expires_at=world.days(1))
    world.clock.set(dt.datetime(2030, 1, 15, 23, 59, 59, tzinfo=dt.UTC))
    assert authenticate(world.db, KEY, issued.value, world.today()).token.id == issued.token.id
    world.clock.advance(seconds=1)
    with pytest.raises(InvalidToken, match="expired"):
        authenticate(world.db, KEY, issued.value, world.today())


def test_a_revoked_and_expired_token_is_refused_as_expired(world: World) -> None:
    issued = factories.personal_token(world.as_root(), world.root, expires_at=world.days(1))
    revoke(world.as_root(), issued.token)
    world.clock.advance(days=1)
    with pytest.raises(InvalidToken) as refused:
        authenticate(world.db, KEY, issued.value, world.today())
    assert refused.value.message == EXPIRED


def test_a_revoked_token_is_refused_as_revoked(world: World) -> None:
    issued = factories.personal_token(world.as_root(), world.root)
    revoke(world.as_root(), issued.token)
    with pytest.raises(InvalidToken, match="revoked"):
        authenticate(world.db, KEY, issued.value, world.today())


# -- reuse detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "rotating", "detected"),
    [
        (Token(revoked=True, expires_at=TOMORROW), True, True),
        (Token(revoked=True, expires_at=None), True, True),
        (Token(revoked=True, expires_at=TOMORROW), False, False),
        (Token(revoked=False, expires_at=TOMORROW), True, False),
        # An expired token is refused as expired; its family is left alone.
        (Token(revoked=True, expires_at=TODAY), True, False),
        (Token(revoked=True, expires_at=YESTERDAY), True, False),
    ],
)
def test_reuse_is_a_revoked_unexpired_token_presented_to_a_rotation(
    token: Token, rotating: bool, detected: bool
) -> None:
    assert reuse_detected(token, TODAY, rotating=rotating) is detected


# -- who may use the API --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (UserState.BLOCKED, "Your account has been blocked."),
        (UserState.BANNED, "Your account has been blocked."),
        (UserState.BLOCKED_PENDING_APPROVAL, "Your account is pending approval from your administrator"),
        (UserState.DEACTIVATED, f"reactivate your account at https://{HOST}"),
    ],
)
def test_blocked_banned_pending_and_deactivated_users_are_refused(
    world: World, state: UserState, reason: str
) -> None:
    user = factories.user(world.as_root(), state=state)
    with pytest.raises(Forbidden, match=reason) as refused:
        may_use_api(user, world.runtime.instance.external_url)
    # A plain message: the API adds "403 Forbidden - " (tests/unit/test_error_mapping.py).
    assert refused.value.code == "forbidden"
    assert not refused.value.message.startswith("403")


def test_internal_users_are_refused_and_active_people_are_not(world: World) -> None:
    with pytest.raises(Forbidden, match="This action cannot be performed by internal users"):
        may_use_api(ghost(world.as_root()))
    may_use_api(factories.user(world.as_root()))
