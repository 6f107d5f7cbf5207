"""Issue notes over HTTP: python-gitlab and the CLI, permissions, internal notes, bad input."""

from __future__ import annotations

import json
from typing import Any

import gitlab
import pytest

from tests.support.live import Factory, LiveServer
from tests.support.records import GUEST, REPORTER, member_with_token, new_issue, new_note, run_cli


def test_python_gitlab_note_lifecycle(server: LiveServer, factory: Factory) -> None:
    gl = server.gl()
    project = gl.projects.get(factory.project()["id"])
    issue = project.issues.create({"title": "discuss"})
    first = issue.notes.create({"body": "first!"})
    assert first.body == "first!"
    assert first.noteable_type == "Issue"
    assert first.noteable_id == issue.id
    assert first.noteable_iid == issue.iid
    assert first.project_id == project.id
    assert first.author["username"] == "root"
    assert first.system is False
    assert first.confidential is False
    assert first.internal is False
    assert first.resolvable is False
    assert first.attachment is None
    assert first.type is None
    second = issue.notes.create({"body": "second"})

    assert [n.id for n in issue.notes.list(get_all=True)] == [second.id, first.id]
    assert [n.id for n in issue.notes.list(get_all=True, sort="asc")] == [first.id, second.id]
    assert project.issues.get(issue.iid).user_notes_count == 2

    fetched = issue.notes.get(first.id)
    fetched.body = "first, edited"
    fetched.save()
    assert issue.notes.get(first.id).body == "first, edited"
    second.delete()
    assert [n.id for n in issue.notes.list(get_all=True)] == [first.id]
    with pytest.raises(gitlab.GitlabGetError) as err:
        issue.notes.get(second.id)
    assert err.value.response_code == 404


def test_note_touches_issue_updated_at(server: LiveServer, factory: Factory) -> None:
    import datetime as dt

    project = factory.project()
    issue = new_issue(server, project["id"])
    server.clock.travel_to(server.clock.now() + dt.timedelta(hours=1))
    note = new_note(server, project["id"], issue["iid"])
    after = server.root("GET", f"/projects/{project['id']}/issues/{issue['iid']}").json()
    assert after["updated_at"] == note["created_at"]
    assert after["updated_at"] > issue["updated_at"]


def test_cli_comments_on_an_issue(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    issue = new_issue(server, project["id"])
    args = ["--project-id", str(project["id"]), "--issue-iid", str(issue["iid"])]
    created = run_cli(
        server, server.root_token, "-o", "json", "project-issue-note", "create", *args, "--body", "via cli"
    )
    assert created.returncode == 0, created.stderr
    note = json.loads(created.stdout)
    assert note["body"] == "via cli"
    listed = run_cli(server, server.root_token, "-o", "json", "project-issue-note", "list", *args)
    assert listed.returncode == 0, listed.stderr
    assert [n["id"] for n in json.loads(listed.stdout)] == [note["id"]]
    deleted = run_cli(
        server, server.root_token, "project-issue-note", "delete", *args, "--id", str(note["id"])
    )
    assert deleted.returncode == 0, deleted.stderr
    assert server.root("GET", f"/projects/{project['id']}/issues/{issue['iid']}/notes").json() == []


def test_who_may_comment_edit_and_delete(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="public")
    pid = project["id"]
    issue = new_issue(server, pid)
    path = f"/projects/{pid}/issues/{issue['iid']}/notes"
    _stranger, stranger_token = factory.user_with_token()
    _other, other_token = factory.user_with_token()
    # Any signed-in user may comment on a public project's issue.
    note = new_note(server, pid, issue["iid"], stranger_token, body="drive-by")
    # Others may not edit or delete it, whatever their role short of admin.
    _reporter, reporter_token = member_with_token(server, factory, pid, REPORTER)
    for token in (other_token, reporter_token):
        assert (
            server.request("PUT", f"{path}/{note['id']}", token=token, json={"body": "x"}).status_code == 403
        )
        assert server.request("DELETE", f"{path}/{note['id']}", token=token).status_code == 403
    edited = server.request("PUT", f"{path}/{note['id']}", token=stranger_token, json={"body": "fixed"})
    assert edited.status_code == 200
    assert edited.json()["body"] == "fixed"
    # Admins may edit and delete anyone's note.
    assert (
        server.root("PUT", f"{path}/{note['id']}", json={"body": "moderated"}).json()["body"] == "moderated"
    )
    assert server.root("DELETE", f"{path}/{note['id']}").status_code == 204
    # Notes need a signed-in user, even on public projects.
    assert server.request("GET", path).status_code == 401
    assert server.request("POST", path, json={"body": "anon"}).status_code == 401


def test_private_project_notes_hidden_from_non_members(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    issue = new_issue(server, project["id"])
    note = new_note(server, project["id"], issue["iid"])
    _outsider, token = factory.user_with_token()
    base = f"/projects/{project['id']}/issues/{issue['iid']}/notes"
    for method, path in [("GET", base), ("POST", base), ("GET", f"{base}/{note['id']}")]:
        response = server.request(method, path, token=token, json={"body": "x"} if method == "POST" else None)
        assert response.status_code == 404
        assert response.json() == {"message": "404 Project Not Found"}
    # A guest member may read and comment.
    _guest, guest_token = member_with_token(server, factory, project["id"], GUEST)
    assert server.request("GET", base, token=guest_token).status_code == 200
    assert new_note(server, project["id"], issue["iid"], guest_token)["author"]["id"] == _guest["id"]


def test_internal_notes(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="public")
    pid = project["id"]
    issue = new_issue(server, pid)
    base = f"/projects/{pid}/issues/{issue['iid']}/notes"
    _guest, guest_token = member_with_token(server, factory, pid, GUEST)
    _reporter, reporter_token = member_with_token(server, factory, pid, REPORTER)
    internal = new_note(server, pid, issue["iid"], reporter_token, body="team only", internal=True)
    assert internal["internal"] is True
    assert internal["confidential"] is True
    legacy = new_note(server, pid, issue["iid"], reporter_token, body="old flag", confidential=True)
    assert legacy["internal"] is True
    visible = new_note(server, pid, issue["iid"], guest_token, body="everyone")

    def ids(token: str) -> list[int]:
        return [n["id"] for n in server.request("GET", base, token=token).json()]

    assert ids(reporter_token) == [visible["id"], legacy["id"], internal["id"]]
    assert ids(server.root_token) == [visible["id"], legacy["id"], internal["id"]]
    assert ids(guest_token) == [visible["id"]]
    assert server.request("GET", f"{base}/{internal['id']}", token=guest_token).json() == {
        "message": "404 Note Not Found"
    }
    response = server.request("POST", base, token=guest_token, json={"body": "psst", "internal": True})
    assert response.status_code == 403
    assert ids(reporter_token)[0] == visible["id"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {"error": "body is missing"}),
        ({"body": ""}, {"message": {"note": ["can't be blank"]}}),
        ({"body": "   "}, {"message": {"note": ["can't be blank"]}}),
        ({"body": ["x"]}, {"error": "body is invalid"}),
        ({"body": "x" * 1_000_001}, {"message": {"note": ["is too long (maximum is 1000000 characters)"]}}),
        ({"body": "ok", "internal": "maybe"}, {"error": "internal is invalid"}),
    ],
)
def test_create_note_rejects_bad_input(
    server: LiveServer, factory: Factory, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    project = factory.project()
    issue = new_issue(server, project["id"])
    base = f"/projects/{project['id']}/issues/{issue['iid']}/notes"
    response = server.root("POST", base, json=body)
    assert response.status_code == 400, response.text
    assert response.json() == expected
    assert server.root("GET", base).json() == []


def test_note_lookup_and_update_errors(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    first, second = new_issue(server, pid), new_issue(server, pid)
    note = new_note(server, pid, first["iid"])
    # A note is only found under its own issue.
    response = server.root("GET", f"/projects/{pid}/issues/{second['iid']}/notes/{note['id']}")
    assert response.json() == {"message": "404 Note Not Found"}
    response = server.root("GET", f"/projects/{pid}/issues/999999/notes")
    assert response.json() == {"message": "404 Issue Not Found"}
    response = server.root("GET", f"/projects/{pid}/issues/{first['iid']}/notes/abc")
    assert response.json() == {"error": "note_id is invalid"}
    path = f"/projects/{pid}/issues/{first['iid']}/notes/{note['id']}"
    assert server.root("PUT", path, json={"body": ""}).json() == {"error": "body is empty"}
    assert server.root("GET", path).json()["body"] == note["body"]
    # No body: nothing to change, the note comes back as it was.
    unchanged = server.root("PUT", path, json={})
    assert unchanged.status_code == 200
    assert unchanged.json()["updated_at"] == note["updated_at"]
    assert server.root(
        "GET", f"/projects/{pid}/issues/{first['iid']}/notes", params={"sort": "sideways"}
    ).json() == {"error": "sort does not have a valid value"}


def test_deleting_an_issue_removes_its_notes(server: LiveServer, factory: Factory) -> None:
    from sqlalchemy import func, select

    from keycrew.records.models import Note

    project = factory.project()
    issue = new_issue(server, project["id"])
    for n in range(3):
        new_note(server, project["id"], issue["iid"], body=f"n{n}")
    assert server.root("DELETE", f"/projects/{project['id']}/issues/{issue['iid']}").status_code == 204
    with server.runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Note).where(Note.issue_id == issue["id"])) == 0
