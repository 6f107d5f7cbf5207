"""Rule: deleting a user (GitLab's Users::DestroyService): a soft delete moves what they authored to
the Ghost user, a hard delete removes it; tokens, memberships and personal projects go; the sole
Owner of a group is refused on a soft delete, and a hard delete takes the group along
(keycrew/actions/deletion.py destroy_user)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from keycrew.access.levels import AccessLevel
from keycrew.access.members import add_member
from keycrew.access.models import Member
from keycrew.access.resources import Resource
from keycrew.actions.deletion import SOLE_OWNER, can_be_removed, destroy_user
from keycrew.audit.events import Event
from keycrew.errors import Conflict, Forbidden
from keycrew.identity.internal import ghost, internal_user
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Namespace, Project
from keycrew.records.issues import IssueChanges, update_issue
from keycrew.records.models import Issue, Note
from keycrew.tokens.models import PersonalAccessToken
from tests.unit import factories
from tests.unit.conftest import World


@dataclass
class Story:
    """Alice and Bob on root's project: each opens an issue, each comments on both, Alice edits
    and closes Bob's issue."""

    alice: User
    bob: User
    project: Project
    alices_issue: int
    bobs_issue: int
    alices_notes: list[int]
    bobs_notes: list[int]


def _story(world: World) -> Story:
    root = world.as_root()
    project = factories.project(root, group=factories.group(root))
    alice, bob = factories.user(root), factories.user(root)
    for person in (alice, bob):
        factories.membership(root, project, person, AccessLevel.REPORTER)
    as_alice, as_bob = world.ctx(alice), world.ctx(bob)
    alices_issue = factories.issue(as_alice, project)
    bobs_issue = factories.issue(as_bob, project)
    alices_notes = [factories.note(as_alice, project, i).id for i in (alices_issue, bobs_issue)]
    bobs_notes = [factories.note(as_bob, project, i).id for i in (alices_issue, bobs_issue)]
    update_issue(as_alice, project, bobs_issue, IssueChanges(title="Edited by Alice", state_event="close"))
    assert (bobs_issue.last_edited_by_id, bobs_issue.closed_by_id) == (alice.id, alice.id)
    return Story(alice, bob, project, alices_issue.id, bobs_issue.id, alices_notes, bobs_notes)


def _issue(world: World, issue_id: int) -> Issue | None:
    return world.db.scalars(select(Issue).where(Issue.id == issue_id)).first()


def _note_authors(world: World, ids: list[int]) -> list[int | None]:
    found = {n.id: n.author_id for n in world.db.scalars(select(Note).where(Note.id.in_(ids)))}
    return [found.get(i) for i in ids]


def _ghosts(world: World) -> int:
    return int(world.db.scalar(select(func.count(User.id)).where(User.user_type == int(UserType.GHOST))) or 0)


# -- soft delete ----------------------------------------------------------------------------------


def test_a_soft_delete_moves_issues_and_notes_to_the_ghost(world: World) -> None:
    story = _story(world)
    done = destroy_user(world.as_root(), story.alice)
    the_ghost = ghost(world.as_root())
    assert done.ghost_id == the_ghost.id
    alices_issue, bobs_issue = _issue(world, story.alices_issue), _issue(world, story.bobs_issue)
    assert alices_issue is not None
    assert bobs_issue is not None
    assert alices_issue.author_id == the_ghost.id
    assert bobs_issue.author_id == story.bob.id
    assert bobs_issue.last_edited_by_id == the_ghost.id
    # Who closed an issue is forgotten, not ghosted (GitLab nullifies closed_by).
    assert bobs_issue.closed_by_id is None
    assert _note_authors(world, story.alices_notes) == [the_ghost.id, the_ghost.id]
    assert _note_authors(world, story.bobs_notes) == [story.bob.id, story.bob.id]
    assert done.records == {"issues": 1, "issues_last_edited": 1, "notes": 2}


def test_a_soft_delete_makes_the_ghost_once(world: World) -> None:
    story = _story(world)
    assert _ghosts(world) == 0
    first = destroy_user(world.as_root(), story.alice)
    second = destroy_user(world.as_root(), story.bob)
    assert first.ghost_id == second.ghost_id
    assert _ghosts(world) == 1
    assert [i.author_id for i in world.db.scalars(select(Issue).order_by(Issue.id))] == [
        first.ghost_id,
        second.ghost_id,
    ]


def test_a_soft_delete_is_audited_with_what_moved(world: World) -> None:
    story = _story(world)
    done = destroy_user(world.as_root(), story.alice, reason="left the company")
    (moved,) = world.events(Event.USER_RECORDS_GHOSTED, target_id=story.alice.id)
    assert moved.details == {"ghost_user_id": done.ghost_id, "moved": done.records}
    (deleted,) = world.events(Event.USER_DELETED, target_id=story.alice.id)
    assert (deleted.author_id, deleted.target_details) == (world.root.id, story.alice.username)
    assert deleted.details["hard_delete"] is False
    assert deleted.details["reason"] == "left the company"


# -- hard delete ----------------------------------------------------------------------------------


def test_a_hard_delete_removes_issues_notes_and_notes_on_those_issues(world: World) -> None:
    story = _story(world)
    done = destroy_user(world.as_root(), story.alice, hard_delete=True)
    assert done.ghost_id is None
    assert _issue(world, story.alices_issue) is None
    bobs_issue = _issue(world, story.bobs_issue)
    assert bobs_issue is not None
    assert bobs_issue.last_edited_by_id is None
    assert _note_authors(world, story.alices_notes) == [None, None]
    # Bob's comment on Alice's issue went with the issue; his comment on his own issue stays.
    assert _note_authors(world, story.bobs_notes) == [None, story.bob.id]
    assert done.records == {"issues": 1, "notes": 3, "issues_last_edited": 1}
    assert _ghosts(world) == 0
    assert world.events(Event.USER_RECORDS_GHOSTED) == []


# -- what goes either way -------------------------------------------------------------------------


@pytest.mark.parametrize("hard_delete", [False, True])
def test_tokens_memberships_and_personal_projects_go(world: World, hard_delete: bool) -> None:
    alice = factories.user(world.as_root())
    factories.personal_token(world.as_root(), alice)
    own = factories.project(world.ctx(alice))
    elsewhere = factories.project(world.as_root(), group=factories.group(world.as_root()))
    factories.membership(world.as_root(), elsewhere, alice, AccessLevel.DEVELOPER)
    done = destroy_user(world.as_root(), alice, hard_delete=hard_delete)
    assert (done.tokens, done.memberships, done.projects) == (1, 1, [own.full_path])
    assert world.db.scalar(select(func.count()).where(PersonalAccessToken.user_id == alice.id)) == 0
    assert world.db.scalar(select(func.count()).where(Member.user_id == alice.id)) == 0
    assert world.db.scalars(select(Project).where(Project.id == own.id)).first() is None
    assert world.db.scalars(select(Namespace).where(Namespace.owner_id == alice.id)).first() is None
    assert world.db.scalars(select(User).where(User.id == alice.id)).first() is None


# -- sole Owners ----------------------------------------------------------------------------------


def test_the_sole_owner_of_a_group_is_not_soft_deleted(world: World) -> None:
    alice = factories.user(world.as_root())
    group = factories.group(world.ctx(alice))
    assert not can_be_removed(world.as_root(), alice)
    with pytest.raises(Conflict, match=SOLE_OWNER):
        destroy_user(world.as_root(), alice)
    assert world.db.scalars(select(User).where(User.id == alice.id)).one()
    assert world.db.scalars(select(Namespace).where(Namespace.id == group.id)).one()


def test_a_bot_owner_does_not_save_the_sole_owner(world: World) -> None:
    alice = factories.user(world.as_root())
    group = factories.group(world.ctx(alice))
    factories.resource_token(world.ctx(alice), group, access_level=AccessLevel.OWNER)
    with pytest.raises(Conflict, match=SOLE_OWNER):
        destroy_user(world.as_root(), alice)


def test_with_another_owner_the_group_stays(world: World) -> None:
    alice, bob = factories.user(world.as_root()), factories.user(world.as_root())
    group = factories.group(world.ctx(alice))
    add_member(world.ctx(alice), Resource(group), bob, access_level=AccessLevel.OWNER)
    assert can_be_removed(world.as_root(), alice)
    destroy_user(world.as_root(), alice)
    assert world.db.scalars(select(Namespace).where(Namespace.id == group.id)).one()


def test_an_owner_of_the_parent_group_counts(world: World) -> None:
    alice = factories.user(world.as_root())
    parent = factories.group(world.as_root())
    factories.membership(world.as_root(), parent, alice, AccessLevel.MAINTAINER)
    subgroup = factories.group(world.ctx(alice), parent=parent)  # alice: its one direct Owner
    destroy_user(world.as_root(), alice)
    assert world.db.scalars(select(Namespace).where(Namespace.id == subgroup.id)).one()


@pytest.mark.parametrize(
    ("hard_delete", "delete_solo_owned_groups"), [(True, None), (False, True)], ids=["hard", "asked"]
)
def test_a_hard_delete_takes_solely_owned_groups_along(
    world: World, hard_delete: bool, delete_solo_owned_groups: bool | None
) -> None:
    alice = factories.user(world.as_root())
    group = factories.group(world.ctx(alice))
    project = factories.project(world.ctx(alice), group=group)
    done = destroy_user(
        world.as_root(), alice, hard_delete=hard_delete, delete_solo_owned_groups=delete_solo_owned_groups
    )
    assert done.groups == [group.full_path]
    assert project.full_path in done.projects
    assert world.db.scalars(select(Namespace).where(Namespace.id == group.id)).first() is None
    assert len(world.events(Event.GROUP_DELETED, target_id=group.id)) == 1


# -- who may delete whom --------------------------------------------------------------------------


def test_only_admins_delete_users(world: World) -> None:
    alice, bob = factories.user(world.as_root()), factories.user(world.as_root())
    with pytest.raises(Forbidden):
        destroy_user(world.ctx(bob), alice)
    assert world.db.scalars(select(User).where(User.id == alice.id)).one()


@pytest.mark.parametrize("user_type", [UserType.GHOST, UserType.ADMIN_BOT, UserType.SUPPORT_BOT])
def test_internal_users_are_never_deleted(world: World, user_type: UserType) -> None:
    with pytest.raises(Forbidden, match="Internal users cannot be deleted"):
        destroy_user(world.as_root(), internal_user(world.as_root(), user_type), hard_delete=True)
