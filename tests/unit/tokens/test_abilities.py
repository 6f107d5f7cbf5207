"""Rule: what a credential may do to a project's repository, images and packages: scopes bound it,
the owner's level bounds it further, visibility grants reads, archived projects are read-only,
and deploy tokens reach their own project or their group's projects only (keycrew/tokens/abilities.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from keycrew.access.levels import AccessLevel
from keycrew.db.reads import SessionReads
from keycrew.identity.models import User
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Project
from keycrew.tokens.abilities import LEVEL_NEEDED, Decision, decide
from keycrew.tokens.basic import ANONYMOUS, Credential
from keycrew.tokens.models import DeployToken
from keycrew.tokens.scopes import READS, Ability
from tests.unit import factories
from tests.unit.conftest import World

A = Ability
ALLOWED, FORBIDDEN, NOT_FOUND, UNAUTHENTICATED = (
    Decision.ALLOWED,
    Decision.FORBIDDEN,
    Decision.NOT_FOUND,
    Decision.UNAUTHENTICATED,
)
WRITES = [a for a in Ability if a not in READS]


def _decide(world: World, credential: Credential, project: Project, ability: Ability) -> Decision:
    return decide(SessionReads(world.db), credential, project, ability, world.today())


def _password(user: User) -> Credential:
    """A username and password: every ability the user's level gives."""
    return Credential(user=user)


def _token(user: User, *scopes: str) -> Credential:
    return Credential(user=user, scopes=frozenset(scopes))


def _deploy(token: DeployToken) -> Credential:
    return Credential(deploy_token=token, scopes=frozenset(token.scopes))


def _project(world: World, visibility: Visibility = Visibility.PRIVATE) -> Project:
    group = factories.group(world.as_root(), visibility=visibility)
    return factories.project(world.as_root(), group=group, visibility=visibility)


# -- levels ---------------------------------------------------------------------------------------


def test_levels_each_ability_needs() -> None:
    assert LEVEL_NEEDED == {
        A.DOWNLOAD_CODE: AccessLevel.REPORTER,
        A.PUSH_CODE: AccessLevel.DEVELOPER,
        A.READ_CONTAINER_IMAGE: AccessLevel.REPORTER,
        A.CREATE_CONTAINER_IMAGE: AccessLevel.DEVELOPER,
        A.ADMIN_CONTAINER_IMAGE: AccessLevel.MAINTAINER,
        A.READ_PACKAGE: AccessLevel.REPORTER,
        A.CREATE_PACKAGE: AccessLevel.DEVELOPER,
    }


@pytest.mark.parametrize(
    ("level", "ability", "expected"),
    [
        (AccessLevel.GUEST, A.DOWNLOAD_CODE, FORBIDDEN),
        (AccessLevel.PLANNER, A.DOWNLOAD_CODE, FORBIDDEN),
        (AccessLevel.REPORTER, A.DOWNLOAD_CODE, ALLOWED),
        (AccessLevel.REPORTER, A.PUSH_CODE, FORBIDDEN),
        (AccessLevel.DEVELOPER, A.PUSH_CODE, ALLOWED),
        (AccessLevel.DEVELOPER, A.CREATE_PACKAGE, ALLOWED),
        (AccessLevel.DEVELOPER, A.ADMIN_CONTAINER_IMAGE, FORBIDDEN),
        (AccessLevel.MAINTAINER, A.ADMIN_CONTAINER_IMAGE, ALLOWED),
    ],
)
def test_a_members_level_bounds_what_it_may_do_on_a_private_project(
    world: World, level: AccessLevel, ability: Ability, expected: Decision
) -> None:
    project = _project(world)
    member = factories.user(world.as_root())
    factories.membership(world.as_root(), project, member, level)
    assert _decide(world, _password(member), project, ability) is expected
    assert _decide(world, _token(member, "api"), project, ability) is expected


def test_a_level_inherited_from_the_group_counts(world: World) -> None:
    group = factories.group(world.as_root())
    project = factories.project(world.as_root(), group=group)
    member = factories.user(world.as_root())
    factories.membership(world.as_root(), group, member, AccessLevel.DEVELOPER)
    assert _decide(world, _password(member), project, A.PUSH_CODE) is ALLOWED


def test_an_expired_membership_gives_nothing_from_its_expiry_date(world: World) -> None:
    project = _project(world)
    member = factories.user(world.as_root())
    tomorrow = world.today() + dt.timedelta(days=1)
    factories.membership(world.as_root(), project, member, AccessLevel.DEVELOPER, expires_at=tomorrow)
    assert _decide(world, _password(member), project, A.PUSH_CODE) is ALLOWED
    world.clock.advance(days=1)
    assert _decide(world, _password(member), project, A.PUSH_CODE) is NOT_FOUND


def test_an_admin_may_do_anything_without_a_membership(world: World) -> None:
    project = _project(world)
    admin = factories.user(world.as_root(), admin=True)
    for ability in Ability:
        assert _decide(world, _password(admin), project, ability) is ALLOWED


# -- scopes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "ability", "expected"),
    [
        (("read_repository",), A.DOWNLOAD_CODE, ALLOWED),
        (("read_repository",), A.PUSH_CODE, FORBIDDEN),
        (("write_repository",), A.PUSH_CODE, ALLOWED),
        (("read_api",), A.DOWNLOAD_CODE, ALLOWED),
        (("read_api",), A.PUSH_CODE, FORBIDDEN),
        (("read_api",), A.CREATE_PACKAGE, FORBIDDEN),
        (("read_user",), A.DOWNLOAD_CODE, FORBIDDEN),
        (("write_registry",), A.READ_CONTAINER_IMAGE, FORBIDDEN),
        (("write_registry",), A.CREATE_CONTAINER_IMAGE, ALLOWED),
        (("write_registry",), A.ADMIN_CONTAINER_IMAGE, FORBIDDEN),
        (("api",), A.ADMIN_CONTAINER_IMAGE, ALLOWED),
    ],
)
def test_a_tokens_scopes_bound_a_maintainer(
    world: World, scopes: tuple[str, ...], ability: Ability, expected: Decision
) -> None:
    project = _project(world)
    member = factories.user(world.as_root())
    factories.membership(world.as_root(), project, member, AccessLevel.MAINTAINER)
    assert _decide(world, _token(member, *scopes), project, ability) is expected


def test_a_bot_token_acts_with_its_bots_level(world: World) -> None:
    project = _project(world)
    issued, _level = factories.resource_token(world.as_root(), project, access_level=AccessLevel.REPORTER)
    bot = world.db.get(User, issued.token.user_id)
    assert bot is not None
    assert _decide(world, _token(bot, "api"), project, A.DOWNLOAD_CODE) is ALLOWED
    assert _decide(world, _token(bot, "api"), project, A.PUSH_CODE) is FORBIDDEN


# -- visibility -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visibility", "ability", "expected"),
    [
        (Visibility.PUBLIC, A.DOWNLOAD_CODE, ALLOWED),
        (Visibility.PUBLIC, A.READ_PACKAGE, ALLOWED),
        (Visibility.PUBLIC, A.PUSH_CODE, UNAUTHENTICATED),
        (Visibility.INTERNAL, A.DOWNLOAD_CODE, UNAUTHENTICATED),
        (Visibility.PRIVATE, A.DOWNLOAD_CODE, UNAUTHENTICATED),
    ],
)
def test_anonymous_reads_public_projects_only(
    world: World, visibility: Visibility, ability: Ability, expected: Decision
) -> None:
    assert _decide(world, ANONYMOUS, _project(world, visibility), ability) is expected


@pytest.mark.parametrize(
    ("visibility", "ability", "expected"),
    [
        (Visibility.PUBLIC, A.DOWNLOAD_CODE, ALLOWED),
        (Visibility.PUBLIC, A.PUSH_CODE, FORBIDDEN),
        (Visibility.INTERNAL, A.DOWNLOAD_CODE, ALLOWED),
        (Visibility.INTERNAL, A.READ_CONTAINER_IMAGE, ALLOWED),
        (Visibility.INTERNAL, A.PUSH_CODE, FORBIDDEN),
        (Visibility.PRIVATE, A.DOWNLOAD_CODE, NOT_FOUND),
        (Visibility.PRIVATE, A.PUSH_CODE, NOT_FOUND),
    ],
)
def test_a_signed_in_non_member_reads_by_visibility(
    world: World, visibility: Visibility, ability: Ability, expected: Decision
) -> None:
    outsider = factories.user(world.as_root())
    assert _decide(world, _password(outsider), _project(world, visibility), ability) is expected


def test_a_guest_of_a_public_project_reads_by_visibility(world: World) -> None:
    project = _project(world, Visibility.PUBLIC)
    guest = factories.user(world.as_root())
    factories.membership(world.as_root(), project, guest, AccessLevel.GUEST)
    assert _decide(world, _password(guest), project, A.DOWNLOAD_CODE) is ALLOWED
    assert _decide(world, _token(guest, "read_user"), project, A.DOWNLOAD_CODE) is FORBIDDEN


def test_external_users_and_bots_see_internal_projects_only_as_members(world: World) -> None:
    internal = _project(world, Visibility.INTERNAL)
    external = factories.user(world.as_root(), external=True)
    issued, _level = factories.resource_token(world.as_root(), _project(world))
    bot = world.db.get(User, issued.token.user_id)
    assert bot is not None
    assert _decide(world, _password(external), internal, A.DOWNLOAD_CODE) is NOT_FOUND
    assert _decide(world, _token(bot, "api"), internal, A.DOWNLOAD_CODE) is NOT_FOUND
    factories.membership(world.as_root(), internal, external, AccessLevel.REPORTER)
    assert _decide(world, _password(external), internal, A.DOWNLOAD_CODE) is ALLOWED


# -- archived projects ----------------------------------------------------------------------------


@pytest.mark.parametrize("ability", list(Ability))
def test_an_archived_project_is_read_only_even_for_an_admin(world: World, ability: Ability) -> None:
    project = _project(world)
    project.archived = True
    expected = ALLOWED if ability in READS else FORBIDDEN
    assert _decide(world, _token(world.root, "api"), project, ability) is expected


def test_an_archived_project_is_read_only_for_deploy_tokens(world: World) -> None:
    project = _project(world)
    token = factories.deploy_token(
        world.as_root(), project=project, scopes=["read_package_registry", "write_package_registry"]
    ).token
    assert _decide(world, _deploy(token), project, A.CREATE_PACKAGE) is ALLOWED
    project.archived = True
    assert _decide(world, _deploy(token), project, A.CREATE_PACKAGE) is FORBIDDEN
    assert _decide(world, _deploy(token), project, A.READ_PACKAGE) is ALLOWED


# -- deploy tokens --------------------------------------------------------------------------------


def test_a_project_deploy_token_reaches_its_project_only(world: World) -> None:
    project, other = _project(world), _project(world, Visibility.PUBLIC)
    token = factories.deploy_token(world.as_root(), project=project, scopes=["read_repository"]).token
    assert _decide(world, _deploy(token), project, A.DOWNLOAD_CODE) is ALLOWED
    assert _decide(world, _deploy(token), project, A.PUSH_CODE) is FORBIDDEN
    assert _decide(world, _deploy(token), other, A.DOWNLOAD_CODE) is NOT_FOUND


def test_a_group_deploy_token_reaches_every_project_below_its_group(world: World) -> None:
    ctx = world.as_root()
    group = factories.group(ctx)
    subgroup = factories.group(ctx, parent=group)
    inside = factories.project(ctx, group=subgroup)
    outside = factories.project(ctx, group=factories.group(ctx))
    token = factories.deploy_token(ctx, group=group, scopes=["read_repository"]).token
    assert _decide(world, _deploy(token), inside, A.DOWNLOAD_CODE) is ALLOWED
    assert _decide(world, _deploy(token), outside, A.DOWNLOAD_CODE) is NOT_FOUND
    subgroup_token = factories.deploy_token(ctx, group=subgroup, scopes=["read_repository"]).token
    parent_project = factories.project(ctx, group=group)
    assert _decide(world, _deploy(subgroup_token), parent_project, A.DOWNLOAD_CODE) is NOT_FOUND


def test_a_deploy_tokens_write_registry_does_not_pull(world: World) -> None:
    project = _project(world)
    token = factories.deploy_token(world.as_root(), project=project, scopes=["write_registry"]).token
    assert _decide(world, _deploy(token), project, A.CREATE_CONTAINER_IMAGE) is ALLOWED
    assert _decide(world, _deploy(token), project, A.READ_CONTAINER_IMAGE) is FORBIDDEN
    assert _decide(world, _deploy(token), project, A.ADMIN_CONTAINER_IMAGE) is FORBIDDEN


def test_a_deploy_token_needs_no_membership_or_visibility(world: World) -> None:
    project = _project(world, Visibility.PRIVATE)
    token = factories.deploy_token(world.as_root(), project=project, scopes=["write_package_registry"]).token
    assert _decide(world, _deploy(token), project, A.READ_PACKAGE) is ALLOWED
    assert _decide(world, _deploy(token), project, A.DOWNLOAD_CODE) is FORBIDDEN
