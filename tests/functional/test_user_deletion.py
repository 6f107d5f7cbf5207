"""Deleting users: records move to the Ghost User (or go, on a hard delete), and everything the
user owned personally goes with them, in one synchronous transaction."""

from __future__ import annotations

from typing import Any

import gitlab
import pytest
from sqlalchemy import func, select

from keycrew.access.models import Member
from keycrew.audit.models import AuditEvent
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Namespace, Project, Route
from keycrew.records.models import Issue, Note
from keycrew.tokens.models import PersonalAccessToken
from tests.support.live import Factory, LiveServer, uid

OWNER, MAINTAINER, DEVELOPER = 50, 40, 30


def add_issue(server: LiveServer, project_id: int, author_id: int, *, edited_by: int | None = None) -> int:
    now = server.clock.now()
    with server.runtime.sessions() as db, db.begin():
        project = db.get(Project, project_id)
        assert project is not None
        project.last_issue_iid += 1
        issue = Issue(
            project_id=project_id,
            iid=project.last_issue_iid,
            title=uid("issue"),
            description="",
            author_id=author_id,
            last_edited_by_id=edited_by,
            state="opened",
            confidential=False,
            issue_type="issue",
            created_at=now,
            updated_at=now,
        )
        db.add(issue)
        db.flush()
        return issue.id


def add_note(server: LiveServer, issue_id: int, author_id: int) -> int:
    now = server.clock.now()
    with server.runtime.sessions() as db, db.begin():
        issue = db.get(Issue, issue_id)
        assert issue is not None
        note = Note(
            project_id=issue.project_id,
            issue_id=issue_id,
            author_id=author_id,
            body="a comment",
            system=False,
            confidential=False,
            created_at=now,
            updated_at=now,
        )
        db.add(note)
        db.flush()
        return note.id


def ghost_id(server: LiveServer) -> int | None:
    with server.runtime.sessions() as db:
        return db.scalar(select(User.id).where(User.user_type == int(UserType.GHOST)))


def row(server: LiveServer, model: Any, row_id: int) -> Any:
    with server.runtime.sessions() as db:
        return db.get(model, row_id)


def count(server: LiveServer, query: Any) -> int:
    with server.runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(query.subquery())) or 0)


def audit_names(server: LiveServer, user_id: int) -> list[str]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent.event_name).where(
                    AuditEvent.target_type == "User", AuditEvent.target_id == user_id
                )
            ).all()
        )


@pytest.fixture
def shared_project(factory: Factory) -> dict[str, Any]:
    """A root-owned project where the doomed user wrote things."""
    return factory.project()


def test_soft_delete_moves_records_to_ghost(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, shared_project: dict[str, Any]
) -> None:
    user, token = factory.user_with_token(["api"])
    authored = add_issue(server, shared_project["id"], user["id"])
    edited = add_issue(server, shared_project["id"], 1, edited_by=user["id"])
    note = add_note(server, edited, user["id"])
    roots_note = add_note(server, authored, 1)

    gl.users.delete(user["id"])

    with pytest.raises(gitlab.GitlabGetError) as gone:
        gl.users.get(user["id"])
    assert gone.value.response_code == 404
    ghost = ghost_id(server)
    assert ghost is not None
    assert row(server, Issue, authored).author_id == ghost
    assert row(server, Issue, edited).author_id == 1
    assert row(server, Issue, edited).last_edited_by_id == ghost
    assert row(server, Note, note).author_id == ghost
    assert row(server, Note, roots_note).author_id == 1
    # The token is gone with its user.
    assert server.request("GET", "/user", token=token).status_code == 401
    names = audit_names(server, user["id"])
    assert "user.records_moved_to_ghost" in names
    assert "user.deleted" in names
    # The Ghost User is a real, visible, protected user.
    ghost_user = gl.users.get(ghost)
    assert ghost_user.username.startswith("ghost")
    assert ghost_user.name == "Ghost User"
    assert ghost_user.user_type == "ghost"


def test_hard_delete_removes_records(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, shared_project: dict[str, Any]
) -> None:
    user = factory.user()
    authored = add_issue(server, shared_project["id"], user["id"])
    others_note = add_note(server, authored, 1)
    edited = add_issue(server, shared_project["id"], 1, edited_by=user["id"])
    note = add_note(server, edited, user["id"])

    gl.users.delete(user["id"], hard_delete=True)  # sends ?hard_delete=True

    assert server.root("GET", f"/users/{user['id']}").status_code == 404
    assert row(server, Issue, authored) is None
    assert row(server, Note, others_note) is None  # it was on the deleted issue
    assert row(server, Note, note) is None
    assert row(server, Issue, edited) is not None
    assert row(server, Issue, edited).last_edited_by_id is None
    assert "user.records_moved_to_ghost" not in audit_names(server, user["id"])


def test_delete_removes_tokens_memberships_namespace_and_projects(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    user, token = factory.user_with_token(["api"])
    group = factory.group()
    factory.member("groups", group["id"], user["id"], DEVELOPER)
    personal = factory.project(token=token)
    issue = add_issue(server, personal["id"], user["id"])
    assert count(server, select(PersonalAccessToken).where(PersonalAccessToken.user_id == user["id"])) == 1

    response = server.root("DELETE", f"/users/{user['id']}")
    assert response.status_code == 204
    assert response.content == b""

    assert count(server, select(PersonalAccessToken).where(PersonalAccessToken.user_id == user["id"])) == 0
    assert count(server, select(Member).where(Member.user_id == user["id"])) == 0
    assert count(server, select(Namespace).where(Namespace.owner_id == user["id"])) == 0
    assert row(server, Project, personal["id"]) is None
    assert row(server, Issue, issue) is None  # deleted with the project, not ghosted
    assert server.root("GET", f"/projects/{personal['id']}").status_code == 404
    assert count(server, select(Route).where(Route.path_lower == user["username"].lower())) == 0
    # The group the user was only a member of is untouched.
    assert gl.groups.get(group["id"]).id == group["id"]
    # The username is free again.
    again = factory.user(username=user["username"])
    assert again["id"] != user["id"]


def test_sole_owner_of_a_group_cannot_be_soft_deleted(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    user, token = factory.user_with_token(["api"])
    group = factory.group(token=token)
    subgroup = factory.group(token=token, parent_id=group["id"])
    project = factory.project(token=token, namespace_id=subgroup["id"])

    with pytest.raises(gitlab.GitlabDeleteError) as refused:
        gl.users.delete(user["id"])
    assert refused.value.response_code == 409
    assert refused.value.error_message == "User cannot be removed while is the sole-owner of a group"
    # Nothing was written.
    assert gl.users.get(user["id"]).state == "active"
    assert server.request("GET", "/user", token=token).status_code == 200

    gl.users.delete(user["id"], hard_delete=True)
    assert server.root("GET", f"/groups/{group['id']}").status_code == 404
    assert server.root("GET", f"/groups/{subgroup['id']}").status_code == 404
    assert server.root("GET", f"/projects/{project['id']}").status_code == 404
    assert count(server, select(Route).where(Route.path_lower.like(f"{group['full_path'].lower()}%"))) == 0
    assert count(server, select(Member).where(Member.source_id == group["id"])) == 0


def test_group_with_another_owner_survives(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    group = factory.group(token=token)
    co_owner = factory.user()
    factory.member("groups", group["id"], co_owner["id"], OWNER, token=token)
    gl.users.delete(user["id"])
    assert gl.groups.get(group["id"]).id == group["id"]
    assert server.root("GET", f"/users/{user['id']}").status_code == 404


def test_owner_of_a_parent_group_is_not_a_sole_owner_below(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    parent = factory.group()  # root owns it
    user, token = factory.user_with_token(["api"])
    factory.member("groups", parent["id"], user["id"], MAINTAINER)
    sub = factory.group(token=token, parent_id=parent["id"])
    gl.users.delete(user["id"])  # root owns the subgroup through the parent
    assert gl.groups.get(sub["id"]).id == sub["id"]


def test_internal_users_are_protected(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    user = factory.user()
    gl.users.delete(user["id"])  # makes sure the Ghost User exists
    ghost = ghost_id(server)
    assert ghost is not None
    response = server.root("PUT", f"/users/{ghost}", json={"name": "Not a ghost"})
    assert response.status_code == 403
    assert response.json() == {"message": "403 Forbidden - Internal users cannot be modified"}
    for hard in (False, True):
        response = server.root("DELETE", f"/users/{ghost}", params={"hard_delete": hard})
        assert response.status_code == 403
        assert response.json() == {"message": "403 Forbidden - Internal users cannot be deleted"}
    response = server.root("POST", f"/users/{ghost}/block")
    assert response.status_code == 403
    assert response.json() == {"message": "An internal user cannot be blocked"}
    assert server.root("POST", f"/users/{ghost}/ban").json() == {
        "message": "An internal user cannot be banned"
    }
    response = server.root("POST", f"/users/{ghost}/deactivate")
    assert response.json() == {"message": "Internal users cannot be deactivated"}
    ghost_user = gl.users.get(ghost)
    assert ghost_user.name == "Ghost User"
    assert ghost_user.state == "active"


def test_non_admins_cannot_delete(server: LiveServer, factory: Factory) -> None:
    victim = factory.user()
    _user, token = factory.user_with_token(["api"])
    response = server.request("DELETE", f"/users/{victim['id']}", token=token)
    assert response.status_code == 403
    assert server.request("DELETE", f"/users/{victim['id']}").status_code == 401
    assert server.root("GET", f"/users/{victim['id']}").status_code == 200


def test_deleting_a_project_owner_removes_its_bots(server: LiveServer, factory: Factory) -> None:
    """A project bot whose project goes with its owner has nothing left to act on: it goes too."""
    user, token = factory.user_with_token(["api"])
    project = factory.project(token=token)
    made = server.request(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        token=token,
        json={"name": "bot", "scopes": ["api"]},
    )
    assert made.status_code == 201, made.text
    bot_id, bot_token = made.json()["user_id"], made.json()["token"]
    issue = add_issue(server, factory.project()["id"], bot_id)
    assert server.request("GET", f"/projects/{project['id']}", token=bot_token).status_code == 200

    assert server.root("DELETE", f"/users/{user['id']}").status_code == 204

    assert server.root("GET", f"/users/{bot_id}").status_code == 404
    assert server.request("GET", "/user", token=bot_token).status_code == 401
    assert "user.deleted" in audit_names(server, bot_id)
    # The bot's own records went to the Ghost User like anyone's.
    assert row(server, Issue, issue).author_id == ghost_id(server)


def test_concurrent_deletes_delete_once(server: LiveServer, factory: Factory) -> None:
    from concurrent.futures import ThreadPoolExecutor

    user = factory.user()
    with ThreadPoolExecutor(4) as pool:
        codes = sorted(
            pool.map(lambda _: server.root("DELETE", f"/users/{user['id']}").status_code, range(4))
        )
    assert codes == [204, 404, 404, 404]
    assert audit_names(server, user["id"]).count("user.deleted") == 1
