"""Rule: Sudo: only an admin's token with the ``sudo`` scope acts as another user, named by id or by
username in any case, who must be able to use the API; the admin is recorded as the impersonator
(keycrew/tokens/sudo.py)."""

from __future__ import annotations

import pytest

from keycrew.audit.events import Event
from keycrew.db.base import MAX_ID
from keycrew.errors import Forbidden, InsufficientScope, NotFound
from keycrew.identity.internal import ghost
from keycrew.identity.types import UserState
from keycrew.tokens.sudo import sudo_actor
from tests.unit import factories
from tests.unit.conftest import World

SUDO = frozenset({"api", "sudo"})


def test_an_admin_with_the_sudo_scope_acts_as_the_user_by_id(world: World) -> None:
    alice = factories.user(world.as_root())
    ctx = world.ctx(world.root, scopes=SUDO, token_id=77, ip="203.0.113.9")
    actor = sudo_actor(ctx, str(alice.id))
    assert actor.user is alice
    assert actor.impersonator is world.root
    assert (actor.token_id, actor.ip, actor.scopes) == (77, "203.0.113.9", SUDO)
    assert not actor.is_admin


@pytest.mark.parametrize("spelling", ["Alice_Sudo", "alice_sudo", "ALICE_SUDO"])
def test_by_username_in_any_case(world: World, spelling: str) -> None:
    alice = factories.user(world.as_root(), username="Alice_Sudo")
    assert sudo_actor(world.ctx(world.root, scopes=SUDO), spelling).user is alice


def test_a_username_of_digits_is_taken_as_an_id(world: World) -> None:
    factories.user(world.as_root(), username="12345")
    with pytest.raises(NotFound):
        sudo_actor(world.ctx(world.root, scopes=SUDO), "12345")


def test_a_non_admin_is_forbidden_whatever_its_scopes(world: World) -> None:
    bob = factories.user(world.as_root())
    with pytest.raises(Forbidden, match="Must be admin to use sudo"):
        sudo_actor(world.ctx(bob, scopes=SUDO), str(world.root.id))
    with pytest.raises(Forbidden, match="Must be admin to use sudo"):
        sudo_actor(world.ctx(bob, scopes=frozenset({"api"})), "nobody-at-all")


@pytest.mark.parametrize("scopes", [frozenset({"api"}), frozenset(), None], ids=["api", "none", "session"])
def test_an_admin_without_the_sudo_scope_lacks_scope(world: World, scopes: frozenset[str] | None) -> None:
    alice = factories.user(world.as_root())
    with pytest.raises(InsufficientScope) as refused:
        sudo_actor(world.ctx(world.root, scopes=scopes), str(alice.id))
    assert refused.value.scopes == ["sudo"]


@pytest.mark.parametrize("target", ["nobody", "999999", str(MAX_ID + 1), "0"])
def test_an_unknown_user_is_not_found(world: World, target: str) -> None:
    with pytest.raises(NotFound) as refused:
        sudo_actor(world.ctx(world.root, scopes=SUDO), target)
    assert refused.value.message == f"User with ID or username '{target}' Not Found"


def test_a_user_who_may_not_use_the_api_cannot_be_sudoed(world: World) -> None:
    blocked = factories.user(world.as_root(), state=UserState.BLOCKED)
    ctx = world.ctx(world.root, scopes=SUDO)
    with pytest.raises(Forbidden, match="blocked"):
        sudo_actor(ctx, blocked.username)
    with pytest.raises(Forbidden, match="internal users"):
        sudo_actor(ctx, ghost(world.as_root()).username)


def test_what_is_done_under_sudo_is_the_users_act_with_the_admin_as_impersonator(world: World) -> None:
    alice = factories.user(world.as_root())
    actor = sudo_actor(world.ctx(world.root, scopes=SUDO, token_id=5), alice.username)
    group = factories.group(world.as_root().as_actor(actor))
    (event,) = world.events(Event.GROUP_CREATED, target_id=group.id)
    assert (event.author_id, event.impersonated_by_id, event.token_id) == (alice.id, world.root.id, 5)
