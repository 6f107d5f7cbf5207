"""Rule: GitLab's membership rules: who administers members, nobody grants above their own role,
only Owners touch a project's Owners, a group always keeps an Owner (bots and expired memberships
do not count), bots and internal users stay out, an inherited role is a floor
(keycrew/access/members.py)."""

from __future__ import annotations

import pytest

from keycrew.access.levels import AccessLevel
from keycrew.access.members import (
    BLOCKED_USER,
    BOT_ELSEWHERE,
    INTERNAL_USER,
    LAST_OWNER,
    PAST_EXPIRY,
    add_member,
    all_members,
    get_member,
    grantable_levels,
    member_controls,
    remove_member,
    update_member,
)
from keycrew.access.resources import Resource
from keycrew.audit.events import Event
from keycrew.context import Ctx
from keycrew.errors import Conflict, Forbidden, Invalid, NotFound
from keycrew.identity.internal import ghost
from keycrew.identity.models import User
from keycrew.identity.types import UserState
from keycrew.namespaces.models import Namespace, Project
from tests.unit import factories
from tests.unit.conftest import World

L = AccessLevel
PROJECT_ROLES = [L.GUEST, L.PLANNER, L.REPORTER, L.DEVELOPER, L.MAINTAINER]


def _with_role(world: World, source: Project | Namespace, level: AccessLevel) -> tuple[User, Ctx]:
    user = factories.user(world.as_root())
    factories.membership(world.as_root(), source, user, level)
    return user, world.ctx(user)


def _group_owned_by(world: World) -> tuple[Namespace, User, Ctx]:
    owner = factories.user(world.as_root())
    ctx = world.ctx(owner)
    return factories.group(ctx), owner, ctx


# -- which roles an actor may give ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "roles"),
    [
        (L.REPORTER, []),
        (L.DEVELOPER, []),
        (L.MAINTAINER, PROJECT_ROLES),
        (L.OWNER, [*PROJECT_ROLES, L.OWNER]),
    ],
)
def test_project_roles_an_actor_may_give(world: World, level: AccessLevel, roles: list[AccessLevel]) -> None:
    project = factories.project(world.as_root())
    _user, ctx = _with_role(world, project, level)
    assert grantable_levels(ctx, Resource(project)) == roles


@pytest.mark.parametrize(
    ("level", "roles"),
    [(L.MAINTAINER, []), (L.OWNER, [L.MINIMAL_ACCESS, *PROJECT_ROLES, L.OWNER])],
)
def test_group_roles_an_actor_may_give(world: World, level: AccessLevel, roles: list[AccessLevel]) -> None:
    group = factories.group(world.as_root())
    _user, ctx = _with_role(world, group, level)
    assert grantable_levels(ctx, Resource(group)) == roles


def test_an_admin_gives_any_role(world: World) -> None:
    project = factories.project(world.as_root())
    assert grantable_levels(world.as_root(), Resource(project)) == [*PROJECT_ROLES, L.OWNER]


# -- adding ---------------------------------------------------------------------------------------


def test_a_project_maintainer_adds_up_to_maintainer_but_not_an_owner(world: World) -> None:
    project = factories.project(world.as_root())
    _maintainer, ctx = _with_role(world, project, L.MAINTAINER)
    newcomer = factories.user(world.as_root())
    with pytest.raises(Forbidden):
        add_member(ctx, Resource(project), newcomer, access_level=L.OWNER)
    added = add_member(ctx, Resource(project), newcomer, access_level=L.MAINTAINER)
    assert added.member.access_level == L.MAINTAINER


def test_a_developer_adds_nobody(world: World) -> None:
    project = factories.project(world.as_root())
    _developer, ctx = _with_role(world, project, L.DEVELOPER)
    with pytest.raises(Forbidden):
        add_member(ctx, Resource(project), factories.user(world.as_root()), access_level=L.GUEST)


def test_a_group_maintainer_adds_nobody_a_group_owner_adds_owners(world: World) -> None:
    group, _owner, owner_ctx = _group_owned_by(world)
    _maintainer, ctx = _with_role(world, group, L.MAINTAINER)
    with pytest.raises(Forbidden):
        add_member(ctx, Resource(group), factories.user(world.as_root()), access_level=L.GUEST)
    added = add_member(owner_ctx, Resource(group), factories.user(world.as_root()), access_level=L.OWNER)
    assert added.member.access_level == L.OWNER


def test_a_live_member_is_not_added_twice_an_expired_one_is_replaced(world: World) -> None:
    project = factories.project(world.as_root())
    user = factories.user(world.as_root())
    source = Resource(project)
    tomorrow = world.days(1)
    add_member(world.as_root(), source, user, access_level=L.REPORTER, expires_at=tomorrow)
    with pytest.raises(Conflict, match="Member already exists"):
        add_member(world.as_root(), source, user, access_level=L.DEVELOPER)
    world.clock.advance(days=1)
    with pytest.raises(NotFound):
        get_member(world.as_root(), source, user.id)
    add_member(world.as_root(), source, user, access_level=L.DEVELOPER)
    assert get_member(world.as_root(), source, user.id).member.access_level == L.DEVELOPER


@pytest.mark.parametrize(("offset", "refused"), [(-1, True), (0, False), (1, False)])
def test_a_membership_may_not_expire_in_the_past(world: World, offset: int, refused: bool) -> None:
    project = factories.project(world.as_root())
    user = factories.user(world.as_root())
    expires_at = world.days(offset)
    if refused:
        with pytest.raises(Invalid) as error:
            add_member(world.as_root(), Resource(project), user, access_level=L.GUEST, expires_at=expires_at)
        assert error.value.errors == {"expires_at": [PAST_EXPIRY]}
    else:
        add_member(world.as_root(), Resource(project), user, access_level=L.GUEST, expires_at=expires_at)


def test_bots_internal_and_blocked_users_are_not_added(world: World) -> None:
    project = factories.project(world.as_root())
    issued, _level = factories.resource_token(world.as_root(), factories.project(world.as_root()))
    bot = world.db.get(User, issued.token.user_id)
    assert bot is not None
    blocked = factories.user(world.as_root(), state=UserState.BLOCKED)
    cases = [(bot, {"user_id": [BOT_ELSEWHERE]}), (ghost(world.as_root()), {"user": [INTERNAL_USER]})]
    cases.append((blocked, {"user": [BLOCKED_USER]}))
    for user, errors in cases:
        with pytest.raises(Invalid) as error:
            add_member(world.as_root(), Resource(project), user, access_level=L.GUEST)
        assert error.value.errors == errors


@pytest.mark.parametrize("level", [0, 1, 35, 60])
def test_only_gitlabs_levels(world: World, level: int) -> None:
    project = factories.project(world.as_root())
    with pytest.raises(Invalid) as error:
        add_member(world.as_root(), Resource(project), factories.user(world.as_root()), access_level=level)
    assert error.value.errors == {"access_level": ["is not included in the list"]}


def test_an_inherited_role_is_a_floor(world: World) -> None:
    group = factories.group(world.as_root())
    project = factories.project(world.as_root(), group=group)
    user = factories.user(world.as_root())
    factories.membership(world.as_root(), group, user, L.DEVELOPER)
    with pytest.raises(Invalid) as error:
        add_member(world.as_root(), Resource(project), user, access_level=L.REPORTER)
    floor = f"should be greater than or equal to Developer inherited membership from group {group.name}"
    assert error.value.errors == {"access_level": [floor]}
    added = add_member(world.as_root(), Resource(project), user, access_level=L.DEVELOPER)
    assert added.member.access_level == L.DEVELOPER


# -- changing Owners ------------------------------------------------------------------------------


def test_a_project_maintainer_cannot_promote_to_or_demote_an_owner(world: World) -> None:
    project = factories.project(world.as_root(), group=factories.group(world.as_root()))
    _maintainer, ctx = _with_role(world, project, L.MAINTAINER)
    developer, _ = _with_role(world, project, L.DEVELOPER)
    owner, _ = _with_role(world, project, L.OWNER)
    with pytest.raises(Forbidden):
        update_member(ctx, Resource(project), developer.id, access_level=L.OWNER)
    with pytest.raises(Forbidden):
        update_member(ctx, Resource(project), owner.id, access_level=L.DEVELOPER)
    with pytest.raises(Forbidden):
        remove_member(ctx, Resource(project), owner.id)
    changed = update_member(ctx, Resource(project), developer.id, access_level=L.MAINTAINER)
    assert changed.member.access_level == L.MAINTAINER


def test_the_holder_of_a_personal_namespace_stays_owner_of_its_projects(world: World) -> None:
    holder = factories.user(world.as_root())
    project = factories.project(world.ctx(holder))
    assert get_member(world.as_root(), Resource(project), holder.id).member.access_level == L.OWNER
    with pytest.raises(Forbidden):
        update_member(world.as_root(), Resource(project), holder.id, access_level=L.MAINTAINER)
    with pytest.raises(Forbidden):
        remove_member(world.as_root(), Resource(project), holder.id)


# -- the last Owner of a group --------------------------------------------------------------------


def test_the_last_owner_of_a_group_is_neither_removed_nor_demoted(world: World) -> None:
    group, owner, ctx = _group_owned_by(world)
    source = Resource(group)
    for attempt in (
        lambda: remove_member(world.as_root(), source, owner.id),
        lambda: remove_member(ctx, source, owner.id),  # leaving
        lambda: update_member(world.as_root(), source, owner.id, access_level=L.MAINTAINER),
    ):
        with pytest.raises(Forbidden):
            attempt()
    assert get_member(ctx, source, owner.id).member.access_level == L.OWNER
    assert member_controls(ctx, source, get_member(ctx, source, owner.id)).note == LAST_OWNER


def test_with_a_second_owner_the_first_may_go(world: World) -> None:
    group, owner, ctx = _group_owned_by(world)
    second = factories.user(world.as_root())
    add_member(ctx, Resource(group), second, access_level=L.OWNER)
    update_member(ctx, Resource(group), owner.id, access_level=L.MAINTAINER)
    with pytest.raises(Forbidden):
        update_member(world.as_root(), Resource(group), second.id, access_level=L.MAINTAINER)


def test_a_bot_owner_does_not_keep_a_group_owned(world: World) -> None:
    group, owner, ctx = _group_owned_by(world)
    factories.resource_token(ctx, group, access_level=L.OWNER)
    with pytest.raises(Forbidden):
        remove_member(world.as_root(), Resource(group), owner.id)


def test_an_owner_whose_membership_expires_today_does_not_count(world: World) -> None:
    group, owner, ctx = _group_owned_by(world)
    second = factories.user(world.as_root())
    add_member(ctx, Resource(group), second, access_level=L.OWNER, expires_at=world.days(1))
    world.clock.advance(days=1)
    with pytest.raises(Forbidden):
        remove_member(world.as_root(), Resource(group), owner.id)


def test_an_owner_inherited_from_the_parent_group_counts(world: World) -> None:
    parent, owner, ctx = _group_owned_by(world)
    subgroup = factories.group(world.as_root(), parent=parent)
    # root created the subgroup and is its only direct Owner; the parent's Owner inherits.
    remove_member(ctx, Resource(subgroup), world.root.id)
    assert [m.user.id for m in all_members(ctx, Resource(subgroup))] == [owner.id]


# -- bots -----------------------------------------------------------------------------------------


def test_a_bots_membership_is_managed_by_its_token_only(world: World) -> None:
    project = factories.project(world.as_root())
    issued, _level = factories.resource_token(world.as_root(), project)
    bot_id = issued.token.user_id
    with pytest.raises(Forbidden):
        update_member(world.as_root(), Resource(project), bot_id, access_level=L.GUEST)
    with pytest.raises(Forbidden):
        remove_member(world.as_root(), Resource(project), bot_id)


# -- audit ----------------------------------------------------------------------------------------


def test_adding_changing_and_removing_are_audited_on_the_source(world: World) -> None:
    project = factories.project(world.as_root())
    user = factories.user(world.as_root())
    source = Resource(project)
    add_member(world.as_root(), source, user, access_level=L.GUEST)
    update_member(world.as_root(), source, user.id, access_level=L.REPORTER)
    remove_member(world.as_root(), source, user.id)
    added = world.events(Event.MEMBER_ADDED, target_id=user.id)
    changed = world.events(Event.MEMBER_ACCESS_LEVEL_CHANGED, target_id=user.id)
    removed = world.events(Event.MEMBER_REMOVED, target_id=user.id)
    assert [e.details["access_level"] for e in added] == [L.GUEST]
    assert [e.details["access_level"] for e in changed] == [{"from": L.GUEST, "to": L.REPORTER}]
    assert [e.details["access_level"] for e in removed] == [L.REPORTER]
    assert {(e.entity_type, e.entity_id) for e in added + changed + removed} == {("Project", project.id)}
