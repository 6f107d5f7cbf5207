"""Rule: rotating a token revokes it and issues a successor with the same owner, name,
description and scopes that records its predecessor; a revoked token cannot be rotated; reuse of
a revoked token revokes its live descendants (keycrew/tokens/lifecycle.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from keycrew.audit.events import Event
from keycrew.errors import Invalid, InvalidToken
from keycrew.tokens.authentication import authenticate
from keycrew.tokens.lifecycle import descendants, revoke, revoke_family, revoke_or_refuse, rotate
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.personal import create_impersonation_token
from keycrew.tokens.secrets import PAT_PREFIX
from tests.unit import factories
from tests.unit.conftest import SECRET_KEY, World

KEY = SECRET_KEY.encode()


def _tokens(world: World) -> int:
    return int(world.db.scalar(select(func.count(PersonalAccessToken.id))) or 0)


def _token(world: World, expires_at: dt.date | None = None) -> PersonalAccessToken:
    owner = factories.user(world.as_root())
    return factories.personal_token(
        world.as_root(),
        owner,
        name="deploy bot",
        description="pushes releases",
        scopes=["read_api", "write_repository"],
        expires_at=expires_at,
    ).token


# -- rotate ---------------------------------------------------------------------------------------


def test_the_successor_keeps_owner_name_description_and_scopes(world: World) -> None:
    old = _token(world)
    new = rotate(world.as_root(), old).token
    assert new.id != old.id
    assert (new.user_id, new.name, new.description, new.scopes, new.impersonation) == (
        old.user_id,
        "deploy bot",
        "pushes releases",
        ["read_api", "write_repository"],
        False,
    )


def test_the_successor_records_its_predecessor_which_is_revoked_now(world: World) -> None:
    old = _token(world)
    world.clock.advance(hours=3)
    new = rotate(world.as_root(), old).token
    assert new.previous_personal_access_token_id == old.id
    assert (old.revoked, old.revoked_at) == (True, world.clock.now())
    assert new.is_active(world.today())
    assert new.created_at == world.clock.now()


def test_the_successor_has_a_new_value_and_the_old_one_stops_working(world: World) -> None:
    old_value = factories.personal_token(world.as_root(), world.root).value
    old = authenticate(world.db, KEY, old_value, world.today()).token
    issued = rotate(world.as_root(), old)
    assert issued.value.startswith(PAT_PREFIX)
    assert issued.value != old_value
    assert authenticate(world.db, KEY, issued.value, world.today()).token.id == issued.token.id
    with pytest.raises(InvalidToken, match="revoked"):
        authenticate(world.db, KEY, old_value, world.today())


def test_the_successor_expires_in_a_week_unless_told(world: World) -> None:
    old = _token(world, expires_at=world.today() + dt.timedelta(days=300))
    assert rotate(world.as_root(), old).token.expires_at == world.today() + dt.timedelta(days=7)
    other = _token(world)
    chosen = world.today() + dt.timedelta(days=90)
    assert rotate(world.as_root(), other, expires_at=chosen).token.expires_at == chosen


def test_a_bad_expiry_refuses_the_rotation_and_keeps_the_old_token(world: World) -> None:
    old = _token(world)
    before = _tokens(world)
    with pytest.raises(Invalid):
        rotate(world.as_root(), old, expires_at=world.today())
    assert old.revoked is False
    assert _tokens(world) == before


def test_an_impersonation_token_stays_one(world: World) -> None:
    user = factories.user(world.as_root())
    old = create_impersonation_token(world.as_root(), user, name="imp", scopes=["api"]).token
    assert rotate(world.as_root(), old).token.impersonation is True


def test_a_revoked_token_cannot_be_rotated(world: World) -> None:
    old = _token(world)
    revoke(world.as_root(), old)
    before = _tokens(world)
    with pytest.raises(Invalid, match="Token already revoked"):
        rotate(world.as_root(), old)
    assert _tokens(world) == before


def test_a_token_is_rotated_once(world: World) -> None:
    old = _token(world)
    rotate(world.as_root(), old)
    with pytest.raises(Invalid, match="Token already revoked"):
        rotate(world.as_root(), old)


def test_a_stale_copy_of_a_rotated_token_cannot_rotate_it_again(world: World) -> None:
    """The revoking UPDATE is conditional: a caller holding an out-of-date row loses."""
    old = _token(world)
    rotate(world.as_root(), old)
    stale = PersonalAccessToken(id=old.id, user_id=old.user_id, revoked=False, expires_at=old.expires_at)
    with pytest.raises(Invalid, match="Token already revoked"):
        rotate(world.as_root(), stale)


def test_rotation_is_audited_on_the_owner_with_both_ids(world: World) -> None:
    old = _token(world)
    new = rotate(world.as_root(), old).token
    (event,) = world.events(Event.TOKEN_ROTATED)
    assert (event.entity_type, event.entity_id) == ("User", old.user_id)
    assert (event.target_type, event.target_id) == ("PersonalAccessToken", new.id)
    assert event.details["previous_token_id"] == old.id
    assert event.details["expires_at"] == (world.today() + dt.timedelta(days=7)).isoformat()


# -- revoke ---------------------------------------------------------------------------------------


def test_revoke_once(world: World) -> None:
    token = _token(world)
    assert revoke(world.as_root(), token) is True
    assert revoke(world.as_root(), token) is False
    assert len(world.events(Event.TOKEN_REVOKED, target_id=token.id)) == 1
    with pytest.raises(Invalid):
        revoke_or_refuse(world.as_root(), token)


# -- reuse detection ------------------------------------------------------------------------------


def test_reuse_of_a_rotated_token_revokes_its_live_descendants(world: World) -> None:
    first = _token(world)
    second = rotate(world.as_root(), first).token
    third = rotate(world.as_root(), second).token
    assert [t.id for t in descendants(world.as_root(), first)] == [second.id, third.id]
    assert revoke_family(world.as_root(), first) == [third.id]
    assert third.revoked is True
    (event,) = world.events(Event.TOKEN_REVOKED, target_id=third.id)
    assert event.details == {"reason": "revoked token reused for rotation"}


def test_reuse_touches_no_other_family(world: World) -> None:
    first, unrelated = _token(world), _token(world)
    rotate(world.as_root(), first)
    revoke_family(world.as_root(), first)
    assert unrelated.revoked is False


def test_a_token_never_rotated_has_no_family_to_revoke(world: World) -> None:
    token = _token(world)
    revoke(world.as_root(), token)
    assert revoke_family(world.as_root(), token) == []
