"""Projects through python-gitlab and raw HTTP: create, list and its filters, get/HEAD, update, delete."""

from __future__ import annotations

from typing import Any

import gitlab
import pytest
from sqlalchemy import func, select

from keycrew.access.models import Member
from keycrew.audit.models import AuditEvent
from keycrew.namespaces.models import Project, Route
from keycrew.records.models import Issue, Note
from tests.support.live import Factory, LiveServer, uid


def audit(server: LiveServer, event: str, entity_id: int, path: str) -> list[AuditEvent]:
    query = select(AuditEvent).where(
        AuditEvent.event_name == event, AuditEvent.entity_id == entity_id, AuditEvent.entity_path == path
    )
    with server.runtime.sessions() as db:
        return list(db.scalars(query.order_by(AuditEvent.id)).all())


def count(server: LiveServer, model: Any, *where: Any) -> int:
    with server.runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_create_get_by_path_list_owned_delete(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    gl = server.gl(token)
    project = gl.projects.create({"name": "My Project"})
    assert project.path == "my-project", "the path is derived from the name"
    assert project.path_with_namespace == f"{user['username']}/my-project"
    assert project.name_with_namespace == f"{user['name']} / My Project"
    assert project.web_url == f"{server.url}/{user['username']}/my-project"
    assert project.http_url_to_repo == f"{server.url}/{user['username']}/my-project.git"
    assert project.namespace["kind"] == "user"
    assert project.owner["id"] == user["id"]
    assert project.permissions["project_access"]["access_level"] == 50

    assert gl.projects.get(f"{user['username']}/my-project").id == project.id
    assert [p.id for p in gl.projects.list(owned=True)] == [project.id]

    gl.projects.delete(project.id)
    with pytest.raises(gitlab.GitlabGetError) as err:
        gl.projects.get(project.id)
    assert err.value.response_code == 404
    assert gl.projects.list(owned=True) == []


def test_delete_answers_202_and_cascades(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    user = factory.user()
    factory.member("projects", project["id"], user["id"], 30)
    with server.runtime.sessions() as db, db.begin():
        now = server.clock.now()
        issue = Issue(project_id=project["id"], iid=1, title="t", author_id=1, created_at=now, updated_at=now)
        db.add(issue)
        db.flush()
        db.add(
            Note(
                project_id=project["id"],
                issue_id=issue.id,
                author_id=1,
                body="b",
                created_at=now,
                updated_at=now,
            )
        )
    response = server.root("DELETE", f"/projects/{project['id']}")
    assert response.status_code == 202
    assert response.json() == {"message": "202 Accepted"}
    assert server.root("GET", f"/projects/{project['id']}").status_code == 404
    assert count(server, Issue, Issue.project_id == project["id"]) == 0
    assert count(server, Note, Note.project_id == project["id"]) == 0
    assert count(server, Route, Route.source_type == "Project", Route.source_id == project["id"]) == 0
    assert count(server, Member, Member.source_type == "Project", Member.source_id == project["id"]) == 0
    [event] = audit(server, "project.deleted", project["id"], project["path_with_namespace"])
    assert event.author_id == 1


def test_who_may_delete_and_update(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"], visibility="private")
    users = {}
    for level in (30, 40, 50):
        user, token = factory.user_with_token()
        factory.member("projects", project["id"], user["id"], level)
        users[level] = token
    outsider_token = factory.user_with_token()[1]
    pid = project["id"]

    # Not visible: 404; visible but not enough: 403.
    assert (
        server.request("PUT", f"/projects/{pid}", token=outsider_token, json={"name": "x"}).status_code == 404
    )
    assert server.request("DELETE", f"/projects/{pid}", token=outsider_token).status_code == 404
    assert server.request("PUT", f"/projects/{pid}", token=users[30], json={"name": "x"}).status_code == 403
    renamed = server.request(
        "PUT", f"/projects/{pid}", token=users[40], json={"description": "by maintainer"}
    )
    assert renamed.status_code == 200
    assert renamed.json()["description"] == "by maintainer"
    # Visibility is an Owner's decision.
    to_private = server.request("PUT", f"/projects/{pid}", token=users[40], json={"visibility": "public"})
    assert to_private.status_code == 403
    assert server.request("DELETE", f"/projects/{pid}", token=users[40]).status_code == 403
    assert server.request("GET", f"/projects/{pid}", token=users[40]).status_code == 200
    assert server.request("DELETE", f"/projects/{pid}", token=users[50]).status_code == 202


def test_update_rename_path_visibility_and_audit(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    group = factory.group(visibility="internal")
    created = factory.project(namespace_id=group["id"], name="Old")
    project = gl.projects.get(created["id"])
    project.name = "New Name"
    project.path = "new-path"
    project.default_branch = "trunk"
    project.visibility = "internal"
    project.save()
    assert project.path_with_namespace == f"{group['full_path']}/new-path"
    assert project.name_with_namespace == f"{group['name']} / New Name"
    assert project.default_branch == "trunk"
    assert gl.projects.get(f"{group['full_path']}/new-path").id == created["id"]
    assert server.root("GET", f"/projects/{group['full_path']}%2Fold").status_code == 404

    [event] = audit(server, "project.updated", created["id"], f"{group['full_path']}/new-path")
    assert event.details["changes"] == {
        "name": {"from": "Old", "to": "New Name"},
        "path": {"from": f"{group['full_path']}/old", "to": f"{group['full_path']}/new-path"},
        "default_branch": {"from": "main", "to": "trunk"},
        "visibility": {"from": "private", "to": "internal"},
    }
    too_open = server.root("PUT", f"/projects/{created['id']}", json={"visibility": "public"})
    assert too_open.status_code == 400
    assert too_open.json()["message"]["visibility_level"] == ["public is not allowed in a internal group."]


def test_update_refuses_bad_input_and_writes_nothing(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    other = factory.project(namespace_id=group["id"])
    pid = project["id"]
    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "x" * 300}, "name"),
        ({"name": other["name"]}, "name"),
        ({"path": "../evil"}, "path"),
        ({"path": other["path"].upper()}, "path"),
        ({"default_branch": " "}, "default_branch"),
    ):
        response = server.root("PUT", f"/projects/{pid}", json=body)
        assert response.status_code == 400, body
        assert field in response.json()["message"], response.text
    for body in ({"visibility": "nope"}, {"name": {"a": 1}}, {"bogus": 1}):
        response = server.root("PUT", f"/projects/{pid}", json=body)
        assert response.status_code == 400, body
        assert "error" in response.json()
    assert server.root("GET", f"/projects/{pid}").json()["name"] == project["name"]
    assert audit(server, "project.updated", pid, project["path_with_namespace"]) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 400),
        ({"name": ""}, 400),
        ({"name": "n" * 300}, 400),
        ({"name": "ok", "path": "../up"}, 400),
        ({"name": "ok", "path": "a/b"}, 400),
        ({"name": "ok", "visibility": "secret"}, 400),
        ({"name": ["x"]}, 400),
        ({"name": "ok", "namespace_id": "abc"}, 400),
        ({"name": "ok", "namespace_id": 987654321}, 404),
    ],
)
def test_bad_create_input(server: LiveServer, body: dict[str, Any], status: int) -> None:
    before = count(server, Project)
    response = server.root("POST", "/projects", json=body)
    assert response.status_code == status, response.text
    assert count(server, Project) == before


def test_malformed_json(server: LiveServer) -> None:
    before = count(server, Project)
    response = server.root("POST", "/projects", data="[1, 2", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert count(server, Project) == before


def test_taken_path_and_name(server: LiveServer, factory: Factory) -> None:
    project = factory.project(name="Taken")
    again = server.root("POST", "/projects", json={"name": "Taken"})
    assert again.status_code == 400
    message = again.json()["message"]
    assert message["path"] == ["has already been taken"]
    assert message["name"] == ["has already been taken"]
    assert project["path"] == "taken"


def test_list_filters_and_ordering(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    tag = uid("lst")
    group = factory.group(visibility="public")
    mine = factory.project(token=token, name=f"{tag} mine")
    member_of = factory.project(namespace_id=group["id"], name=f"{tag} member", visibility="public")
    factory.member("projects", member_of["id"], user["id"], 20)
    public = factory.project(namespace_id=group["id"], name=f"{tag} public", visibility="public")
    factory.project(name=f"{tag} hidden")  # root's private project

    def ids(**query: Any) -> list[int]:
        response = server.request("GET", "/projects", token=token, params={"search": tag, **query})
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()]

    assert ids() == [public["id"], member_of["id"], mine["id"]], "newest first by default"
    assert ids(sort="asc") == [mine["id"], member_of["id"], public["id"]]
    assert ids(order_by="name", sort="asc") == [member_of["id"], mine["id"], public["id"]]
    assert ids(owned="true") == [mine["id"]]
    assert ids(membership="true") == [member_of["id"], mine["id"]]
    assert ids(min_access_level=30) == [mine["id"]]
    assert ids(visibility="public") == [public["id"], member_of["id"]]
    simple = server.request("GET", "/projects", token=token, params={"search": tag, "simple": "true"}).json()
    assert "visibility" not in simple[0]
    assert simple[0]["path_with_namespace"] == public["path_with_namespace"]
    anonymous = server.request("GET", "/projects", params={"search": tag}).json()
    assert [p["id"] for p in anonymous] == [public["id"], member_of["id"]]
    assert server.request("GET", "/projects", token=token, params={"order_by": "stars"}).status_code == 400


def test_head_on_collection_and_item(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    tag = uid("head")
    project = factory.project(name=f"{tag} one")
    factory.project(name=f"{tag} two")
    headers = gl.projects.head(query_parameters={"search": tag})
    assert headers["X-Total"] == "2"
    response = server.root("HEAD", f"/projects/{project['id']}")
    assert response.status_code == 200
    assert response.content == b""
    assert server.root("HEAD", "/projects/987654321").status_code == 404


def test_admin_creates_for_user(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    response = server.root("POST", f"/projects/user/{user['id']}", json={"name": "Made For You"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["path_with_namespace"] == f"{user['username']}/made-for-you"
    assert body["creator_id"] == user["id"]
    owned = server.request("GET", "/projects", token=token, params={"owned": "true"}).json()
    assert [p["id"] for p in owned] == [body["id"]]
    refused = server.request("POST", f"/projects/user/{user['id']}", token=token, json={"name": "x"})
    assert refused.status_code == 403
    assert server.root("POST", "/projects/user/987654321", json={"name": "x"}).status_code == 404
    assert server.root("POST", "/projects/user/abc", json={"name": "x"}).status_code == 400


def test_group_project_creation_rights(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    reporter, reporter_token = factory.user_with_token()
    developer, developer_token = factory.user_with_token()
    factory.member("groups", group["id"], reporter["id"], 20)
    factory.member("groups", group["id"], developer["id"], 30)
    refused = server.request(
        "POST", "/projects", token=reporter_token, json={"name": "r", "namespace_id": group["id"]}
    )
    assert refused.status_code == 403
    created = server.request(
        "POST", "/projects", token=developer_token, json={"name": "d", "namespace_id": group["id"]}
    )
    assert created.status_code == 201
    # The developer who created it administers it: GitLab makes them its Maintainer.
    members = server.root("GET", f"/projects/{created.json()['id']}/members").json()
    assert [(m["id"], m["access_level"]) for m in members] == [(developer["id"], 40)]
    outsider_token = factory.user_with_token()[1]
    hidden = server.request(
        "POST", "/projects", token=outsider_token, json={"name": "o", "namespace_id": group["id"]}
    )
    assert hidden.status_code == 404


def test_cascade_keeps_other_projects(server: LiveServer, factory: Factory) -> None:
    keep = factory.project()
    gone = factory.project()
    with server.runtime.sessions() as db, db.begin():
        now = server.clock.now()
        for pid in (keep["id"], gone["id"]):
            db.add(Issue(project_id=pid, iid=1, title="t", author_id=1, created_at=now, updated_at=now))
    assert server.root("DELETE", f"/projects/{gone['id']}").status_code == 202
    assert count(server, Issue, Issue.project_id == keep["id"]) == 1
    assert server.root("GET", f"/projects/{keep['id']}").status_code == 200
