"""Rule: deploy tokens: GitLab's default username ``gitlab+deploy-token-{id}``, custom usernames
validated, scopes kept in GitLab's order without duplicates, who may create them, and how they
authenticate (exact username, active only) (keycrew/tokens/deploy.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from keycrew.access.levels import AccessLevel
from keycrew.audit.events import Event
from keycrew.context import Ctx
from keycrew.errors import BadParameter, Forbidden, Invalid, MissingParameter
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens.deploy import (
    USERNAME_FORMAT,
    authenticate_deploy_token,
    can_manage_deploy_tokens,
    check_deploy_scopes,
    list_deploy_tokens,
    revoke_deploy_token,
)
from keycrew.tokens.scopes import DEPLOY_SCOPES
from keycrew.tokens.secrets import DEPLOY_PREFIX
from tests.unit import factories
from tests.unit.conftest import SECRET_KEY, World

KEY = SECRET_KEY.encode()


def _project(world: World) -> Project:
    return factories.project(world.as_root())


# -- usernames ------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", [None, ""])
def test_the_default_username_names_the_tokens_id(world: World, username: str | None) -> None:
    token = factories.deploy_token(world.as_root(), project=_project(world), username=username).token
    assert token.username == f"gitlab+deploy-token-{token.id}"


def test_default_usernames_follow_the_ids(world: World) -> None:
    project = _project(world)
    first = factories.deploy_token(world.as_root(), project=project).token
    second = factories.deploy_token(world.as_root(), group=factories.group(world.as_root())).token
    assert second.id == first.id + 1
    assert second.username == f"gitlab+deploy-token-{first.id + 1}"


@pytest.mark.parametrize("username", ["ci", "my.deployer+prod_1-x", "A" * 255, "gitlab+deploy-token-1"])
def test_a_custom_username_of_letters_digits_and_four_signs(world: World, username: str) -> None:
    token = factories.deploy_token(world.as_root(), project=_project(world), username=username).token
    assert token.username == username


@pytest.mark.parametrize("username", ["with space", "slash/name", "ümlaut", "at@sign", "colon:", "tab\t"])
def test_any_other_sign_is_refused(world: World, username: str) -> None:
    with pytest.raises(Invalid) as refused:
        factories.deploy_token(world.as_root(), project=_project(world), username=username)
    assert refused.value.errors == {"username": [USERNAME_FORMAT]}


def test_a_username_of_256_characters_is_too_long(world: World) -> None:
    with pytest.raises(Invalid) as refused:
        factories.deploy_token(world.as_root(), project=_project(world), username="a" * 256)
    assert refused.value.errors == {"username": ["is too long (maximum is 255 characters)"]}


def test_two_tokens_may_share_a_custom_username(world: World) -> None:
    project = _project(world)
    factories.deploy_token(world.as_root(), project=project, username="ci")
    assert factories.deploy_token(world.as_root(), project=project, username="ci").token.username == "ci"


# -- scopes ---------------------------------------------------------------------------------------


def test_scopes_are_put_in_gitlabs_order_without_duplicates() -> None:
    given = ["write_package_registry", "read_repository", "write_package_registry", "read_registry"]
    assert check_deploy_scopes(given) == ["read_repository", "read_registry", "write_package_registry"]
    assert check_deploy_scopes(list(reversed(DEPLOY_SCOPES))) == list(DEPLOY_SCOPES)


def test_no_scope_is_missing() -> None:
    with pytest.raises(MissingParameter, match="scopes is missing"):
        check_deploy_scopes([])


@pytest.mark.parametrize("scope", ["api", "read_api", "write_repository", "sudo", "READ_REPOSITORY"])
def test_a_scope_a_deploy_token_cannot_hold_is_refused(scope: str) -> None:
    with pytest.raises(BadParameter, match="scopes does not have a valid value"):
        check_deploy_scopes(["read_repository", scope])


def test_the_token_keeps_the_ordered_scopes(world: World) -> None:
    token = factories.deploy_token(
        world.as_root(), project=_project(world), scopes=["read_registry", "read_repository", "read_registry"]
    ).token
    assert token.scopes == ["read_repository", "read_registry"]


# -- who creates them -----------------------------------------------------------------------------


def _member(world: World, source: Project | Namespace, level: AccessLevel) -> Ctx:
    user = factories.user(world.as_root())
    factories.membership(world.as_root(), source, user, level)
    return world.ctx(user)


@pytest.mark.parametrize(
    ("level", "allowed"),
    [(AccessLevel.DEVELOPER, False), (AccessLevel.MAINTAINER, True), (AccessLevel.OWNER, True)],
)
def test_a_projects_maintainers_create_them(world: World, level: AccessLevel, allowed: bool) -> None:
    project = _project(world)
    ctx = _member(world, project, level)
    assert can_manage_deploy_tokens(ctx, project=project) is allowed
    if allowed:
        factories.deploy_token(ctx, project=project)
    else:
        with pytest.raises(Forbidden):
            factories.deploy_token(ctx, project=project)


def test_a_groups_owners_create_them_and_its_maintainers_only_see_them(world: World) -> None:
    group = factories.group(world.as_root())
    maintainer = _member(world, group, AccessLevel.MAINTAINER)
    token = factories.deploy_token(world.as_root(), group=group).token
    assert can_manage_deploy_tokens(maintainer, group=group) is False
    with pytest.raises(Forbidden):
        factories.deploy_token(maintainer, group=group)
    with pytest.raises(Forbidden):
        revoke_deploy_token(maintainer, token)
    assert [t.id for t in list_deploy_tokens(maintainer, group=group)] == [token.id]
    developer = _member(world, group, AccessLevel.DEVELOPER)
    with pytest.raises(Forbidden):
        list_deploy_tokens(developer, group=group)


def test_scopes_are_checked_before_permissions(world: World) -> None:
    project = _project(world)
    outsider = world.ctx(factories.user(world.as_root()))
    with pytest.raises(BadParameter):
        factories.deploy_token(outsider, project=project, scopes=["api"])


def test_creation_is_audited_on_the_project(world: World) -> None:
    project = _project(world)
    token = factories.deploy_token(world.as_root(), project=project, scopes=["read_registry"]).token
    (event,) = world.events(Event.DEPLOY_TOKEN_CREATED)
    assert (event.entity_type, event.entity_id, event.target_id) == ("Project", project.id, token.id)
    assert event.details == {"username": token.username, "scopes": ["read_registry"]}


# -- authenticating -------------------------------------------------------------------------------


def test_a_deploy_token_authenticates_with_its_exact_username(world: World) -> None:
    issued = factories.deploy_token(world.as_root(), project=_project(world), username="Deployer")
    assert issued.value.startswith(DEPLOY_PREFIX)
    found = authenticate_deploy_token(world.db, KEY, "Deployer", issued.value, world.today())
    assert found is not None
    assert found.id == issued.token.id
    for other in ("deployer", "DEPLOYER", "Deployer ", ""):
        assert authenticate_deploy_token(world.db, KEY, other, issued.value, world.today()) is None


def test_a_deploy_token_expiring_today_is_born_expired(world: World) -> None:
    issued = factories.deploy_token(world.as_root(), project=_project(world), expires_at=world.today())
    token = issued.token
    assert token.expires_at == world.today()
    assert authenticate_deploy_token(world.db, KEY, token.username, issued.value, world.today()) is None


def test_a_deploy_token_works_until_its_expiry_date(world: World) -> None:
    tomorrow = world.today() + dt.timedelta(days=1)
    issued = factories.deploy_token(world.as_root(), project=_project(world), expires_at=tomorrow)
    username = issued.token.username
    assert authenticate_deploy_token(world.db, KEY, username, issued.value, world.today()) is not None
    world.clock.advance(days=1)
    assert authenticate_deploy_token(world.db, KEY, username, issued.value, world.today()) is None


def test_a_revoked_deploy_token_does_not_authenticate(world: World) -> None:
    issued = factories.deploy_token(world.as_root(), project=_project(world))
    assert revoke_deploy_token(world.as_root(), issued.token) is True
    assert revoke_deploy_token(world.as_root(), issued.token) is False
    username = issued.token.username
    assert authenticate_deploy_token(world.db, KEY, username, issued.value, world.today()) is None
