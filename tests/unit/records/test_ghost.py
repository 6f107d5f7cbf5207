"""Rule: what a deleted user authored: moved wholesale to another user (the Ghost), or deleted with
every note on the user's issues, edit marks cleared; counted per kind, in the caller's transaction
(keycrew/records/ghost.py)."""

from __future__ import annotations

from sqlalchemy import select

from keycrew.access.levels import AccessLevel
from keycrew.identity.internal import ghost
from keycrew.records.ghost import delete_records_of, move_records_to
from keycrew.records.issues import IssueChanges, update_issue
from keycrew.records.models import Issue, Note
from tests.unit import factories
from tests.unit.conftest import World


def _authors(world: World) -> tuple[list[int], list[int]]:
    issues = world.db.scalars(select(Issue.author_id).order_by(Issue.id)).all()
    notes = world.db.scalars(select(Note.author_id).order_by(Note.id)).all()
    return list(issues), list(notes)


def test_moving_touches_only_the_given_users_records(world: World) -> None:
    root = world.as_root()
    project = factories.project(root)
    alice = factories.user(root)
    factories.membership(root, project, alice, AccessLevel.REPORTER)
    mine = factories.issue(world.ctx(alice), project)
    theirs = factories.issue(root, project)
    factories.note(world.ctx(alice), project, theirs)
    factories.note(root, project, mine)
    the_ghost = ghost(root)
    moved = move_records_to(root, alice.id, the_ghost.id)
    assert moved == {"issues": 1, "issues_last_edited": 0, "notes": 1}
    assert _authors(world) == ([the_ghost.id, world.root.id], [the_ghost.id, world.root.id])


def test_moving_nothing_counts_nothing(world: World) -> None:
    root = world.as_root()
    nobody = factories.user(root)
    assert move_records_to(root, nobody.id, ghost(root).id) == {
        "issues": 0,
        "issues_last_edited": 0,
        "notes": 0,
    }
    assert delete_records_of(root, nobody.id) == {"issues": 0, "notes": 0, "issues_last_edited": 0}


def test_deleting_takes_the_users_issues_with_all_their_notes(world: World) -> None:
    root = world.as_root()
    project = factories.project(root)
    alice = factories.user(root)
    factories.membership(root, project, alice, AccessLevel.PLANNER)
    as_alice = world.ctx(alice)
    mine = factories.issue(as_alice, project)
    theirs = factories.issue(root, project)
    factories.note(root, project, mine)
    factories.note(as_alice, project, theirs)
    kept = factories.note(root, project, theirs)
    update_issue(as_alice, project, theirs, IssueChanges(description="edited"))
    assert delete_records_of(root, alice.id) == {"issues": 1, "notes": 2, "issues_last_edited": 1}
    issues = world.db.scalars(select(Issue)).all()
    assert [(i.id, i.last_edited_by_id) for i in issues] == [(theirs.id, None)]
    assert world.db.scalars(select(Note.id)).all() == [kept.id]
