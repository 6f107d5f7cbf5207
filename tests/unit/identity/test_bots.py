"""Rule: project and group bots are named ``{kind}_{id}_bot_{32 hex}`` (never a taken name) with the
e-mail ``<username>@noreply.<host>`` (keycrew/identity/bots.py)."""

from __future__ import annotations

import re

import pytest

from keycrew.identity import bots
from keycrew.identity.bots import bot_email, bot_username
from tests.unit import factories
from tests.unit.conftest import HOST, World


@pytest.mark.parametrize("kind", ["project", "group"])
def test_a_bot_username_is_kind_id_bot_and_32_hex_digits(world: World, kind: str) -> None:
    username = bot_username(world.as_root(), kind, 42)
    assert re.fullmatch(rf"{kind}_42_bot_[0-9a-f]{{32}}", username)


def test_every_bot_username_is_new(world: World) -> None:
    names = {bot_username(world.as_root(), "project", 7) for _ in range(20)}
    assert len(names) == 20


def test_a_taken_username_is_never_returned(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = world.as_root()
    taken = f"project_7_bot_{'a' * 32}"
    factories.user(ctx, username=taken)
    draws = iter(["A" * 32, "b" * 32])  # usernames are unique whatever their case
    monkeypatch.setattr(bots.secrets, "token_hex", lambda _n: next(draws).lower())
    assert bot_username(ctx, "project", 7) == f"project_7_bot_{'b' * 32}"


def test_a_bot_email_is_its_username_at_noreply_of_the_instance_host(world: World) -> None:
    username = f"group_3_bot_{'0' * 32}"
    assert bot_email(world.as_root(), username) == f"{username}@noreply.{HOST}"
