"""Rule: a project or group access token is a bot (user type 6, named after its resource, e-mail
at noreply) with one membership, in exactly that project or group (Maintainer by default), and a
token; the role never exceeds the creator's own (keycrew/actions/resource_tokens.py)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from keycrew.access.levels import AccessLevel
from keycrew.access.models import Member
from keycrew.access.resources import Resource
from keycrew.actions.resource_tokens import (
    DEFAULT_LEVEL,
    TOKEN_LEVELS,
    can_manage,
    grantable_levels,
    rotate_resource_token,
)
from keycrew.audit.events import Event
from keycrew.context import Ctx
from keycrew.errors import BadParameter, Invalid, MissingParameter
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens.scopes import RESOURCE_BOT_SCOPES
from tests.unit import factories
from tests.unit.conftest import HOST, World

L = AccessLevel
CANNOT_EXCEED = "Access level of the token contains permissions not held by the creating user"


def _bots(world: World) -> int:
    query = select(func.count(User.id)).where(User.user_type == int(UserType.PROJECT_BOT))
    return int(world.db.scalar(query) or 0)


def _bot_of(world: World, user_id: int) -> User:
    bot = world.db.get(User, user_id)
    assert bot is not None
    return bot


def _with_role(world: World, source: Project | Namespace, level: AccessLevel) -> Ctx:
    user = factories.user(world.as_root())
    factories.membership(world.as_root(), source, user, level)
    return world.ctx(user)


# -- the bot --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["project", "group"])
def test_the_bot_is_a_project_bot_named_after_its_resource(world: World, kind: str) -> None:
    source = factories.project(world.as_root()) if kind == "project" else factories.group(world.as_root())
    issued, level = factories.resource_token(world.as_root(), source, name="CI token")
    bot = _bot_of(world, issued.token.user_id)
    assert bot.user_type == 6
    assert bot.type is UserType.PROJECT_BOT
    assert re.fullmatch(rf"{kind}_{source.id}_bot_[0-9a-f]{{32}}", bot.username)
    assert bot.email == f"{bot.username}@noreply.{HOST}"
    assert bot.name == "CI token"
    assert bot.password_digest is None
    assert (bot.can_create_group, bot.projects_limit) == (False, 0)
    expected_type = SourceType.PROJECT if kind == "project" else SourceType.NAMESPACE
    assert (bot.bot_resource_type, bot.bot_resource_id) == (expected_type.value, source.id)
    assert level == DEFAULT_LEVEL == L.MAINTAINER


def test_the_bot_is_a_member_there_and_nowhere_else(world: World) -> None:
    project = factories.project(world.as_root())
    issued, _level = factories.resource_token(world.as_root(), project)
    memberships = world.db.scalars(select(Member).where(Member.user_id == issued.token.user_id)).all()
    assert [(m.source_type, m.source_id, m.access_level, m.expires_at) for m in memberships] == [
        ("Project", project.id, L.MAINTAINER, None)
    ]


def test_each_token_has_its_own_bot(world: World) -> None:
    project = factories.project(world.as_root())
    first, _ = factories.resource_token(world.as_root(), project)
    second, _ = factories.resource_token(world.as_root(), project)
    assert first.token.user_id != second.token.user_id
    assert _bots(world) == 2


def test_the_bot_is_external_when_its_creator_is(world: World) -> None:
    group = factories.group(world.as_root())
    external = factories.user(world.as_root(), external=True)
    factories.membership(world.as_root(), group, external, L.OWNER)
    issued, _level = factories.resource_token(world.ctx(external), group)
    assert _bot_of(world, issued.token.user_id).external is True


def test_the_token_holds_exactly_the_scopes_given(world: World) -> None:
    # Scopes are required (no default, as GitLab's REST endpoint); the factory passes them all.
    issued, _level = factories.resource_token(world.as_root(), factories.project(world.as_root()))
    assert issued.token.scopes == list(RESOURCE_BOT_SCOPES)
    issued, _level = factories.resource_token(
        world.as_root(), factories.project(world.as_root()), scopes=["read_api"]
    )
    assert issued.token.scopes == ["read_api"]


@pytest.mark.parametrize(
    ("scopes", "error"),
    [
        ([], MissingParameter),
        (["read_user"], BadParameter),
        (["sudo"], BadParameter),
        (["bogus"], BadParameter),
    ],
)
def test_scopes_a_bot_cannot_hold_are_refused_and_no_bot_is_left(
    world: World, scopes: list[str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        factories.resource_token(world.as_root(), factories.project(world.as_root()), scopes=scopes)
    assert _bots(world) == 0


def test_creation_is_audited_on_the_resource(world: World) -> None:
    project = factories.project(world.as_root())
    issued, _level = factories.resource_token(world.as_root(), project, access_level=L.REPORTER)
    bot_id = issued.token.user_id
    (added,) = world.events(Event.MEMBER_ADDED, target_id=bot_id)
    (created,) = world.events(Event.TOKEN_CREATED, target_id=issued.token.id)
    for event in (added, created):
        assert (event.entity_type, event.entity_id, event.author_id) == ("Project", project.id, world.root.id)
    assert created.details["access_level"] == L.REPORTER
    assert created.details["bot_user_id"] == bot_id


# -- the role ceiling -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "grantable"),
    [
        (L.MAINTAINER, (L.GUEST, L.PLANNER, L.REPORTER, L.DEVELOPER, L.MAINTAINER)),
        (L.OWNER, TOKEN_LEVELS),
    ],
)
def test_the_roles_a_project_member_may_give_a_token(
    world: World, level: AccessLevel, grantable: tuple[AccessLevel, ...]
) -> None:
    project = factories.project(world.as_root(), group=factories.group(world.as_root()))
    assert grantable_levels(_with_role(world, project, level), Resource(project)) == grantable


def test_an_admin_gives_any_role(world: World) -> None:
    project = factories.project(world.as_root())
    assert grantable_levels(world.as_root(), Resource(project)) == TOKEN_LEVELS
    assert L.MINIMAL_ACCESS not in TOKEN_LEVELS


def test_a_maintainer_gives_maintainer_and_not_owner(world: World) -> None:
    project = factories.project(world.as_root(), group=factories.group(world.as_root()))
    ctx = _with_role(world, project, L.MAINTAINER)
    _issued, level = factories.resource_token(ctx, project, access_level=L.MAINTAINER)
    assert level == L.MAINTAINER
    with pytest.raises(Invalid, match=CANNOT_EXCEED):
        factories.resource_token(ctx, project, access_level=L.OWNER)
    assert _bots(world) == 1


def test_a_level_inherited_from_the_group_is_the_creators_own(world: World) -> None:
    group = factories.group(world.as_root())
    project = factories.project(world.as_root(), group=group)
    ctx = _with_role(world, group, L.OWNER)
    _issued, level = factories.resource_token(ctx, project, access_level=L.OWNER)
    assert level == L.OWNER


@pytest.mark.parametrize(("level", "allowed"), [(L.DEVELOPER, False), (L.MAINTAINER, True)])
def test_project_tokens_are_made_by_maintainers(world: World, level: AccessLevel, allowed: bool) -> None:
    project = factories.project(world.as_root(), group=factories.group(world.as_root()))
    ctx = _with_role(world, project, level)
    assert can_manage(ctx, Resource(project)) is allowed
    if not allowed:
        with pytest.raises(Invalid, match="User does not have permission to create project access token"):
            factories.resource_token(ctx, project, access_level=L.GUEST)


@pytest.mark.parametrize(("level", "allowed"), [(L.MAINTAINER, False), (L.OWNER, True)])
def test_group_tokens_are_made_by_owners(world: World, level: AccessLevel, allowed: bool) -> None:
    group = factories.group(world.as_root())
    ctx = _with_role(world, group, level)
    assert can_manage(ctx, Resource(group)) is allowed
    if not allowed:
        with pytest.raises(Invalid, match="User does not have permission to create group access token"):
            factories.resource_token(ctx, group, access_level=L.GUEST)


def test_a_bot_makes_no_tokens_even_as_owner(world: World) -> None:
    group = factories.group(world.as_root())
    issued, _level = factories.resource_token(world.as_root(), group, access_level=L.OWNER)
    bot_ctx = world.ctx(_bot_of(world, issued.token.user_id), token_id=issued.token.id)
    with pytest.raises(Invalid, match="User does not have permission to create group access token"):
        factories.resource_token(bot_ctx, group, access_level=L.GUEST)


@pytest.mark.parametrize("level", [0, L.MINIMAL_ACCESS, 35, 60])
def test_only_token_levels_are_accepted(world: World, level: int) -> None:
    with pytest.raises(BadParameter, match="access_level does not have a valid value"):
        factories.resource_token(world.as_root(), factories.project(world.as_root()), access_level=level)


def test_a_maintainer_cannot_rotate_an_owner_level_token(world: World) -> None:
    project = factories.project(world.as_root(), group=factories.group(world.as_root()))
    issued, _level = factories.resource_token(world.as_root(), project, access_level=L.OWNER)
    ctx = _with_role(world, project, L.MAINTAINER)
    with pytest.raises(Invalid, match="Not eligible to rotate token with access level higher than the user"):
        rotate_resource_token(ctx, Resource(project), issued.token)
    assert issued.token.revoked is False
    rotated, level = rotate_resource_token(world.as_root(), Resource(project), issued.token)
    assert (rotated.token.user_id, level) == (issued.token.user_id, L.OWNER)
