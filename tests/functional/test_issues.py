"""Project issues over HTTP: python-gitlab and the gitlab CLI, permissions, filters, bad input, iids."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gitlab
import pytest
import requests
from sqlalchemy import select

from keycrew.records.models import Issue
from tests.support.live import Factory, LiveServer
from tests.support.records import (
    DEVELOPER,
    GUEST,
    MAINTAINER,
    OWNER,
    REPORTER,
    member_with_token,
    new_issue,
    run_cli,
    set_user_attrs,
)

# -- python-gitlab ----------------------------------------------------------------------------


def test_python_gitlab_issue_lifecycle(server: LiveServer, factory: Factory) -> None:
    gl = server.gl()
    project = gl.projects.get(factory.project()["id"])
    issue = project.issues.create({"title": "First", "description": "Body", "confidential": True})
    assert (issue.iid, issue.title, issue.description, issue.state) == (1, "First", "Body", "opened")
    assert issue.confidential is True
    assert issue.type == "ISSUE"
    assert issue.issue_type == "issue"
    assert issue.author["username"] == "root"
    assert issue.project_id == project.id
    assert issue.web_url == f"{server.url}/{project.path_with_namespace}/-/issues/1"
    assert issue.references == {
        "short": "#1",
        "relative": "#1",
        "full": f"{project.path_with_namespace}#1",
    }
    # closed_by is shadowed by a python-gitlab method of the same name: read the attribute dict.
    assert issue.closed_at is None
    assert issue.attributes["closed_by"] is None
    assert issue.labels == []
    assert issue.assignees == []
    assert issue.milestone is None

    second = project.issues.create({"title": "Second"})
    assert second.iid == 2

    fetched = project.issues.get(1)
    assert fetched.id == issue.id
    assert fetched.title == "First"
    fetched.title = "First, renamed"
    fetched.state_event = "close"
    fetched.save()
    assert fetched.title == "First, renamed"
    assert fetched.state == "closed"
    assert fetched.closed_at is not None
    assert fetched.attributes["closed_by"]["username"] == "root"

    reloaded = project.issues.get(1)
    assert reloaded.state == "closed"
    assert reloaded.title == "First, renamed"
    reloaded.state_event = "reopen"
    reloaded.save()
    assert reloaded.state == "opened"
    assert reloaded.closed_at is None
    assert reloaded.attributes["closed_by"] is None

    listed = project.issues.list(get_all=True)
    assert [i.iid for i in listed] == [2, 1]
    second.delete()
    assert [i.iid for i in project.issues.list(get_all=True)] == [1]
    with pytest.raises(gitlab.GitlabGetError) as err:
        project.issues.get(2)
    assert err.value.response_code == 404


def test_issue_by_encoded_project_path_and_numbering_per_project(
    server: LiveServer, factory: Factory
) -> None:
    first, second = factory.project(), factory.project()
    path = first["path_with_namespace"].replace("/", "%2F")
    response = server.root("POST", f"/projects/{path}/issues", json={"title": "by path"})
    assert response.status_code == 201
    assert response.json()["project_id"] == first["id"]
    assert new_issue(server, second["id"])["iid"] == 1
    assert new_issue(server, first["id"])["iid"] == 2
    assert server.root("GET", f"/projects/{path}/issues/1").json()["title"] == "by path"


def test_last_edited_by_set_on_title_or_description_edit(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="public")
    editor, token = member_with_token(server, factory, project["id"], REPORTER)
    issue = new_issue(server, project["id"])
    response = server.request(
        "PUT", f"/projects/{project['id']}/issues/{issue['iid']}", token=token, json={"confidential": True}
    )
    assert response.status_code == 200
    assert response.json()["confidential"] is True
    with server.runtime.sessions() as db:
        assert db.get(Issue, issue["id"]).last_edited_by_id is None  # type: ignore[union-attr]
    response = server.request(
        "PUT", f"/projects/{project['id']}/issues/{issue['iid']}", token=token, json={"description": "new"}
    )
    assert response.status_code == 200
    assert response.json()["updated_at"] >= issue["updated_at"]
    with server.runtime.sessions() as db:
        assert db.get(Issue, issue["id"]).last_edited_by_id == editor["id"]  # type: ignore[union-attr]


def test_incidents(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    _guest, guest_token = member_with_token(server, factory, project["id"], GUEST)
    incident = new_issue(server, project["id"], issue_type="incident")
    assert incident["type"] == "INCIDENT"
    assert incident["issue_type"] == "incident"
    assert incident["web_url"].endswith(f"/-/issues/incident/{incident['iid']}")
    # Like GitLab, a Guest may not open incidents: the type is dropped.
    by_guest = new_issue(server, project["id"], guest_token, issue_type="incident")
    assert by_guest["issue_type"] == "issue"
    listed = server.root("GET", f"/projects/{project['id']}/issues", params={"issue_type": "incident"})
    assert [i["iid"] for i in listed.json()] == [incident["iid"]]


# -- the gitlab CLI ---------------------------------------------------------------------------


def test_cli_creates_lists_and_closes_issues(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    created = run_cli(
        server,
        server.root_token,
        "-o",
        "json",
        "project-issue",
        "create",
        "--project-id",
        str(project["id"]),
        "--title",
        "From the CLI",
        "--description",
        "made by gitlab",
    )
    assert created.returncode == 0, created.stderr
    data = json.loads(created.stdout)
    assert (data["iid"], data["title"], data["description"]) == (1, "From the CLI", "made by gitlab")

    updated = run_cli(
        server,
        server.root_token,
        "project-issue",
        "update",
        "--project-id",
        project["path_with_namespace"],
        "--iid",
        "1",
        "--state-event",
        "close",
    )
    assert updated.returncode == 0, updated.stderr
    listed = run_cli(
        server, server.root_token, "-o", "json", "project-issue", "list", "--project-id", str(project["id"])
    )
    assert listed.returncode == 0, listed.stderr
    assert [(i["iid"], i["state"]) for i in json.loads(listed.stdout)] == [(1, "closed")]

    missing = run_cli(
        server, server.root_token, "project-issue", "create", "--project-id", str(project["id"])
    )
    assert missing.returncode != 0


# -- permissions ------------------------------------------------------------------------------


def test_non_member_of_private_project_sees_404(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    issue = new_issue(server, project["id"])
    _outsider, token = factory.user_with_token()
    for method, path, body in [
        ("GET", f"/projects/{project['id']}/issues", None),
        ("POST", f"/projects/{project['id']}/issues", {"title": "x"}),
        ("GET", f"/projects/{project['id']}/issues/{issue['iid']}", None),
        ("PUT", f"/projects/{project['id']}/issues/{issue['iid']}", {"title": "x"}),
        ("DELETE", f"/projects/{project['id']}/issues/{issue['iid']}", None),
    ]:
        response = server.request(method, path, token=token, json=body)
        assert response.status_code == 404, (method, path)
        assert response.json() == {"message": "404 Project Not Found"}
    anonymous = server.request("GET", f"/projects/{project['id']}/issues/{issue['iid']}")
    assert anonymous.status_code == 404


def test_anyone_signed_in_may_open_issues_on_public_and_internal_projects(
    server: LiveServer, factory: Factory
) -> None:
    public, internal = factory.project(visibility="public"), factory.project(visibility="internal")
    stranger, token = factory.user_with_token()
    for project in (public, internal):
        issue = new_issue(server, project["id"], token)
        assert issue["author"]["id"] == stranger["id"]
        # The author may edit what they opened, not others' issues.
        own = server.request(
            "PUT", f"/projects/{project['id']}/issues/{issue['iid']}", token=token, json={"title": "mine"}
        )
        assert own.status_code == 200
        assert own.json()["title"] == "mine"
        other = new_issue(server, project["id"])
        response = server.request(
            "PUT", f"/projects/{project['id']}/issues/{other['iid']}", token=token, json={"title": "theirs"}
        )
        assert response.status_code == 403
        assert response.json() == {"message": "403 Forbidden"}
    # Anonymous visitors read public issues but may not write.
    assert server.request("GET", f"/projects/{public['id']}/issues").status_code == 200
    assert server.request("GET", f"/projects/{internal['id']}/issues").status_code == 404
    response = server.request("POST", f"/projects/{public['id']}/issues", json={"title": "anon"})
    assert response.status_code == 401
    # External users do not see internal projects.
    external, external_token = factory.user_with_token()
    set_user_attrs(server, external["id"], external=True)
    response = server.request(
        "POST", f"/projects/{internal['id']}/issues", token=external_token, json={"title": "x"}
    )
    assert response.status_code == 404


def test_confidential_issues_visible_to_author_reporters_and_admins(
    server: LiveServer, factory: Factory
) -> None:
    project = factory.project(visibility="public")
    pid = project["id"]
    author, author_token = member_with_token(server, factory, pid, GUEST)
    _guest, guest_token = member_with_token(server, factory, pid, GUEST)
    _reporter, reporter_token = member_with_token(server, factory, pid, REPORTER)
    _stranger, stranger_token = factory.user_with_token()
    secret = new_issue(server, pid, author_token, confidential=True, title="secret")
    public_issue = new_issue(server, pid, guest_token, title="open")

    def visible(token: str | None) -> list[int]:
        response = server.request("GET", f"/projects/{pid}/issues", token=token)
        assert response.status_code == 200
        return sorted(i["iid"] for i in response.json())

    both = sorted([secret["iid"], public_issue["iid"]])
    assert visible(author_token) == both
    assert visible(reporter_token) == both
    assert visible(server.root_token) == both
    assert visible(guest_token) == [public_issue["iid"]]
    assert visible(stranger_token) == [public_issue["iid"]]
    assert visible(None) == [public_issue["iid"]]
    for token in (guest_token, stranger_token):
        response = server.request("GET", f"/projects/{pid}/issues/{secret['iid']}", token=token)
        assert response.status_code == 404
        assert response.json() == {"message": "404 Issue Not Found"}
        response = server.request(
            "POST", f"/projects/{pid}/issues/{secret['iid']}/notes", token=token, json={"body": "x"}
        )
        assert response.status_code == 404
    assert (
        server.request("GET", f"/projects/{pid}/issues/{secret['iid']}", token=reporter_token).status_code
        == 200
    )
    # A Reporter may edit anyone's issue (including making it public).
    response = server.request(
        "PUT", f"/projects/{pid}/issues/{secret['iid']}", token=reporter_token, json={"confidential": False}
    )
    assert response.status_code == 200
    assert (
        server.request("GET", f"/projects/{pid}/issues/{secret['iid']}", token=guest_token).status_code == 200
    )
    assert author["id"] == secret["author"]["id"]


def test_delete_needs_owner_or_admin(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    _author, author_token = member_with_token(server, factory, pid, DEVELOPER)
    _maintainer, maintainer_token = member_with_token(server, factory, pid, MAINTAINER)
    _owner, owner_token = member_with_token(server, factory, pid, OWNER)
    issue = new_issue(server, pid, author_token)
    path = f"/projects/{pid}/issues/{issue['iid']}"
    for token in (author_token, maintainer_token):
        response = server.request("DELETE", path, token=token)
        assert response.status_code == 403
    assert server.request("GET", path, token=author_token).status_code == 200
    response = server.request("DELETE", path, token=owner_token)
    assert response.status_code == 204
    assert response.content == b""
    assert server.request("GET", path, token=owner_token).status_code == 404
    assert server.request("DELETE", path, token=owner_token).json() == {"message": "404 Issue Not Found"}
    other = new_issue(server, pid)
    assert server.root("DELETE", f"/projects/{pid}/issues/{other['iid']}").status_code == 204


def test_read_only_token_may_list_but_not_create(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["read_api"])
    project = factory.project(visibility="public")
    assert server.request("GET", f"/projects/{project['id']}/issues", token=token).status_code == 200
    response = server.request("POST", f"/projects/{project['id']}/issues", token=token, json={"title": "t"})
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert user["id"]


def test_archived_project_refuses_new_issues(server: LiveServer, factory: Factory) -> None:
    from keycrew.namespaces.models import Project

    project = factory.project()
    with server.runtime.sessions() as db, db.begin():
        db.get(Project, project["id"]).archived = True  # type: ignore[union-attr]
    response = server.root("POST", f"/projects/{project['id']}/issues", json={"title": "late"})
    assert response.status_code == 403


# -- filters, ordering, pagination ------------------------------------------------------------


def test_list_filters_order_and_pagination(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="public")
    pid = project["id"]
    other, other_token = factory.user_with_token()
    a = new_issue(server, pid, title="Alpha needle", description="first")
    b = new_issue(server, pid, other_token, title="Beta", description="has a NEEDLE inside")
    c = new_issue(server, pid, title="Gamma 100%_literal", confidential=True)
    server.root("PUT", f"/projects/{pid}/issues/{b['iid']}", json={"state_event": "close"})

    def iids(**params: Any) -> list[int]:
        response = server.root("GET", f"/projects/{pid}/issues", params=params)
        assert response.status_code == 200, response.text
        return [i["iid"] for i in response.json()]

    assert iids() == [c["iid"], b["iid"], a["iid"]]
    assert iids(sort="asc") == [a["iid"], b["iid"], c["iid"]]
    assert iids(state="opened") == [c["iid"], a["iid"]]
    assert iids(state="closed") == [b["iid"]]
    assert iids(state="all") == [c["iid"], b["iid"], a["iid"]]
    assert iids(author_id=other["id"]) == [b["iid"]]
    assert iids(author_username=other["username"]) == [b["iid"]]
    assert iids(search="needle") == [b["iid"], a["iid"]]
    assert iids(search="needle", **{"in": "title"}) == [a["iid"]]
    assert iids(search="100%_") == [c["iid"]]
    assert iids(search="0%x") == []
    assert iids(confidential="true") == [c["iid"]]
    assert iids(confidential="false") == [b["iid"], a["iid"]]
    assert iids(**{"iids[]": [a["iid"], c["iid"]]}) == [c["iid"], a["iid"]]
    assert iids(order_by="updated_at") == [b["iid"], c["iid"], a["iid"]]
    assert iids(order_by="title", sort="asc") == [a["iid"], b["iid"], c["iid"]]

    page = server.root("GET", f"/projects/{pid}/issues", params={"per_page": 2, "page": 1})
    assert page.headers["X-Total"] == "3"
    assert page.headers["X-Total-Pages"] == "2"
    assert page.headers["X-Next-Page"] == "2"
    assert 'rel="next"' in page.headers["Link"]
    assert [i["iid"] for i in page.json()] == [c["iid"], b["iid"]]
    last = server.root("GET", f"/projects/{pid}/issues", params={"per_page": 2, "page": 2})
    assert [i["iid"] for i in last.json()] == [a["iid"]]
    assert last.headers["X-Next-Page"] == ""
    # python-gitlab follows the Link header.
    gl = server.gl()
    assert len(gl.projects.get(pid, lazy=True).issues.list(per_page=1, get_all=True)) == 3


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"state": "open"}, "state does not have a valid value"),
        ({"order_by": "priority_x"}, "order_by does not have a valid value"),
        ({"sort": "up"}, "sort does not have a valid value"),
        ({"author_id": "me"}, "author_id is invalid"),
        ({"confidential": "perhaps"}, "confidential is invalid"),
        ({"created_after": "yesterday"}, "created_after is invalid"),
        ({"iids[]": ["x"]}, "iids is invalid"),
    ],
)
def test_list_rejects_bad_filters(
    server: LiveServer, factory: Factory, params: dict[str, Any], error: str
) -> None:
    project = factory.project()
    response = server.root("GET", f"/projects/{project['id']}/issues", params=params)
    assert response.status_code == 400
    assert response.json() == {"error": error}


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {"error": "title is missing"}),
        ({"description": "no title"}, {"error": "title is missing"}),
        ({"title": ""}, {"message": {"title": ["can't be blank"]}}),
        ({"title": "   "}, {"message": {"title": ["can't be blank"]}}),
        ({"title": "x" * 300}, {"message": {"title": ["is too long (maximum is 255 characters)"]}}),
        ({"title": ["a", "b"]}, {"error": "title is invalid"}),
        ({"title": {"a": 1}}, {"error": "title is invalid"}),
        ({"title": "ok", "confidential": "sometimes"}, {"error": "confidential is invalid"}),
        ({"title": "ok", "issue_type": "epic"}, {"error": "issue_type does not have a valid value"}),
        ({"title": "ok", "description": ["x"]}, {"error": "description is invalid"}),
    ],
)
def test_create_rejects_bad_input(
    server: LiveServer, factory: Factory, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    project = factory.project()
    response = server.root("POST", f"/projects/{project['id']}/issues", json=body)
    assert response.status_code == 400, response.text
    assert response.json() == expected
    assert server.root("GET", f"/projects/{project['id']}/issues").json() == []


def test_title_of_exactly_255_characters_is_fine(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    assert new_issue(server, project["id"], title="é" * 255)["title"] == "é" * 255


def test_bad_json_and_form_bodies(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    url = server.api(f"/projects/{project['id']}/issues")
    headers = {"PRIVATE-TOKEN": server.root_token, "Content-Type": "application/json"}
    response = requests.post(url, data="{not json", headers=headers, timeout=30)
    assert response.status_code == 400
    form = requests.post(
        url,
        data={"title": "by form", "confidential": "true"},
        headers={"PRIVATE-TOKEN": server.root_token},
        timeout=30,
    )
    assert form.status_code == 201
    assert form.json()["confidential"] is True


def test_update_and_lookup_errors(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    issue = new_issue(server, pid)
    path = f"/projects/{pid}/issues/{issue['iid']}"
    response = server.root("PUT", path, json={})
    assert response.status_code == 400
    assert response.json()["error"].endswith("are missing, at least one parameter must be provided")
    assert server.root("PUT", path, json={"state_event": "shut"}).json() == {
        "error": "state_event does not have a valid value"
    }
    assert server.root("PUT", path, json={"title": "y" * 256}).status_code == 400
    assert server.root("PUT", path, json={"title": ""}).json() == {"message": {"title": ["can't be blank"]}}
    assert server.root("GET", f"/projects/{pid}/issues/abc").json() == {"error": "issue_iid is invalid"}
    assert server.root("GET", f"/projects/{pid}/issues/999999").json() == {"message": "404 Issue Not Found"}
    assert server.root("GET", "/projects/999999999/issues").json() == {"message": "404 Project Not Found"}
    # Nothing changed by the failed edits.
    assert server.root("GET", path).json()["title"] == issue["title"]


# -- iids under concurrency -------------------------------------------------------------------


def test_concurrent_creates_get_distinct_iids(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    count = 16

    def create(n: int) -> int:
        response = server.root("POST", f"/projects/{pid}/issues", json={"title": f"race {n}"})
        assert response.status_code == 201, response.text
        return int(response.json()["iid"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        iids = list(pool.map(create, range(count)))
    assert sorted(iids) == list(range(1, count + 1))
    with server.runtime.sessions() as db:
        stored = db.scalars(select(Issue.iid).where(Issue.project_id == pid)).all()
    assert sorted(stored) == list(range(1, count + 1))
    assert new_issue(server, pid)["iid"] == count + 1


def test_admin_may_choose_iid_and_the_counter_follows(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    assert new_issue(server, pid, iid=10)["iid"] == 10
    assert new_issue(server, pid)["iid"] == 11
    # A plain member's iid is ignored, as GitLab does.
    _dev, dev_token = member_with_token(server, factory, pid, DEVELOPER)
    assert new_issue(server, pid, dev_token, iid=50)["iid"] == 12
    response = server.root("POST", f"/projects/{pid}/issues", json={"title": "dup", "iid": 11})
    assert response.status_code == 400
    assert response.json() == {"message": {"iid": ["has already been taken"]}}
    assert new_issue(server, pid)["iid"] == 13


def test_hostile_numbers_and_text_are_4xx_not_500(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    issue = new_issue(server, pid)
    huge = str(2**63 + 5)
    cases = [
        ("GET", f"/projects/{pid}/issues/{huge}", None, 404),
        ("GET", f"/projects/{pid}/issues/{2**31}", None, 404),
        ("GET", f"/projects/{pid}/issues/%C2%B2", None, 400),
        ("GET", f"/projects/{pid}/issues/-1", None, 400),
        ("PUT", f"/projects/{pid}/issues/{huge}", {"title": "x"}, 404),
        ("GET", f"/projects/{pid}/issues/{issue['iid']}/notes/{huge}", None, 404),
        ("GET", f"/projects/{pid}/issues?author_id={huge}", None, 200),
        ("GET", f"/projects/{pid}/issues?page={huge}", None, 200),
        ("GET", f"/projects/{pid}/issues?page=922337203685477580&per_page=100", None, 200),
        ("GET", f"/projects/{pid}/issues?iids[]={huge}", None, 200),
        ("GET", f"/projects/{pid}/issues?search=a%00b", None, 400),
        ("GET", f"/projects/{pid}/issues?author_username=a%00b", None, 400),
        ("POST", f"/projects/{pid}/issues", {"title": "nul\x00byte"}, 400),
        ("POST", f"/projects/{pid}/issues", {"title": "ok", "description": "a\x00"}, 400),
        ("POST", f"/projects/{pid}/issues", {"title": "ok", "iid": int(huge)}, 400),
        ("PUT", f"/projects/{pid}/issues/{issue['iid']}", {"title": "\x00"}, 400),
        ("POST", f"/projects/{pid}/issues/{issue['iid']}/notes", {"body": "\x00"}, 400),
    ]
    for method, path, body, status in cases:
        response = server.root(method, path, json=body)
        assert response.status_code == status, (method, path, response.text)
    assert server.root("GET", f"/projects/{pid}/issues?author_id={huge}").json() == []
    assert [i["iid"] for i in server.root("GET", f"/projects/{pid}/issues").json()] == [issue["iid"]]
