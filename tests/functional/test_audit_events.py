"""Audit events API: instance (admins), group (Owners; Developers their own) and project
(Maintainers; Developers their own) events, filters, entity shape, and the events issues/notes write."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import gitlab
import pytest

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, record
from keycrew.context import Actor
from keycrew.identity.models import User
from tests.support.live import Factory, LiveServer
from tests.support.records import (
    DEVELOPER,
    GUEST,
    MAINTAINER,
    OWNER,
    REPORTER,
    add_member,
    member_with_token,
    new_issue,
    new_note,
    run_cli,
)


def project_events(
    server: LiveServer, pid: int, token: str | None = None, **params: Any
) -> list[dict[str, Any]]:
    response = server.request(
        "GET",
        f"/projects/{pid}/audit_events",
        token=token or server.root_token,
        params=params | {"per_page": 100},
    )
    assert response.status_code == 200, response.text
    return list(response.json())


def record_as(server: LiveServer, user_id: int, event: Event, entity: Entity, **details: Any) -> None:
    """Write an event as ``user_id`` through the domain's own writer (for scopes no API writes to yet)."""
    with server.runtime.sessions() as db, db.begin():
        user = db.get(User, user_id)
        record(server.runtime.ctx(db, Actor(user=user, ip="10.0.0.1")), event, entity, **details)


def test_issue_and_note_changes_are_audited(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    path = project["path_with_namespace"]
    issue = new_issue(server, pid, title="audited")
    server.root(
        "PUT", f"/projects/{pid}/issues/{issue['iid']}", json={"title": "renamed", "state_event": "close"}
    )
    note = new_note(server, pid, issue["iid"])
    note_path = f"/projects/{pid}/issues/{issue['iid']}/notes/{note['id']}"
    assert server.root("PUT", note_path, json={"body": "edited"}).status_code == 200
    assert server.root("DELETE", note_path).status_code == 204
    assert server.root("DELETE", f"/projects/{pid}/issues/{issue['iid']}").status_code == 204

    events = list(reversed(project_events(server, pid)))
    names = [e["event_name"] for e in events]
    assert names == [
        "project.created",
        "issue.created",
        "issue.updated",
        "issue.updated",
        "note.created",
        "note.updated",
        "note.deleted",
        "issue.deleted",
    ]
    created = events[1]
    assert created["entity_type"] == "Project"
    assert created["entity_id"] == pid
    assert created["author_id"] == 1
    assert created["details"]["target_type"] == "Issue"
    assert created["details"]["target_id"] == issue["id"]
    assert created["details"]["target_details"] == f"{path}#{issue['iid']}"
    assert created["details"]["entity_path"] == path
    changes = {e["details"]["change"]: (e["details"]["from"], e["details"]["to"]) for e in events[2:4]}
    assert changes == {"title": ("audited", "renamed"), "state": ("opened", "closed")}
    assert events[4]["details"]["target_type"] == "Note"
    assert events[4]["details"]["target_id"] == note["id"]
    # Note bodies stay out of the audit trail.
    assert "edited" not in json.dumps(events[5])


def test_no_op_update_writes_no_event(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    issue = new_issue(server, project["id"], title="same")
    before = len(project_events(server, project["id"]))
    response = server.root("PUT", f"/projects/{project['id']}/issues/{issue['iid']}", json={"title": "same"})
    assert response.status_code == 200
    assert len(project_events(server, project["id"])) == before


def test_entity_shape_and_no_secret(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    project = factory.project(visibility="public")
    new_issue(server, project["id"], token)
    response = server.root(
        "GET", "/audit_events", params={"entity_type": "Project", "entity_id": project["id"]}
    )
    assert response.status_code == 200
    assert token not in response.text
    event = response.json()[0]
    assert set(event) == {
        "id",
        "author_id",
        "entity_id",
        "entity_type",
        "event_name",
        "details",
        "created_at",
    }
    assert event["author_id"] == user["id"]
    details = event["details"]
    assert details["author_name"] == user["username"]
    assert details["author_class"] == "User"
    assert details["ip_address"] == "127.0.0.1"
    assert isinstance(details["token_id"], int)
    assert details["custom_message"].startswith("Created issue")
    assert event["created_at"].endswith("Z")


def test_instance_events_for_admins_only(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    new_issue(server, project["id"])
    gl = server.gl()
    events = gl.audit_events.list(entity_type="Project", entity_id=project["id"], get_all=True)
    assert {e.event_name for e in events} == {"project.created", "issue.created"}
    single = gl.audit_events.get(events[0].id)
    assert single.id == events[0].id
    assert single.entity_id == project["id"]

    _user, token = factory.user_with_token(["api"])
    for path in ("/audit_events", f"/audit_events/{events[0].id}"):
        response = server.request("GET", path, token=token)
        assert response.status_code == 403
        assert response.json() == {"message": "403 Forbidden"}
        assert server.request("GET", path).status_code == 401
    with pytest.raises(gitlab.GitlabListError):
        server.gl(token).audit_events.list()
    assert server.root("GET", "/audit_events/999999999").json() == {"message": "404 Audit Event Not Found"}
    assert server.root("GET", "/audit_events/abc").json() == {"error": "id is invalid"}


def test_instance_event_filters(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    start = server.clock.now()
    server.clock.travel_to(start + dt.timedelta(days=10))
    late = new_issue(server, pid)
    server.clock.reset()

    def ids(**params: Any) -> list[int]:
        response = server.root("GET", "/audit_events", params={"per_page": 100} | params)
        assert response.status_code == 200, response.text
        return [e["details"]["target_id"] for e in response.json() if e["event_name"] == "issue.created"]

    scoped = {"entity_type": "Project", "entity_id": pid}
    assert ids(**scoped) == [late["id"]]
    after = (start + dt.timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids(created_after=after, **scoped) == [late["id"]]
    assert ids(created_before=after, **scoped) == []
    response = server.root("GET", "/audit_events", params={"created_after": after, **scoped})
    assert [e["event_name"] for e in response.json()] == ["issue.created"]
    assert server.root("GET", "/audit_events", params={"entity_type": "Pipeline"}).json() == {
        "error": "entity_type does not have a valid value"
    }
    assert server.root("GET", "/audit_events", params={"entity_id": pid}).json() == {
        "error": "entity_type is missing"
    }
    assert server.root("GET", "/audit_events", params={"created_after": "soon"}).json() == {
        "error": "created_after is invalid"
    }
    paged = server.root("GET", "/audit_events", params={"per_page": 1, **scoped})
    assert paged.headers["X-Total"] == "2"
    assert len(paged.json()) == 1


def test_project_events_by_role(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    dev, dev_token = member_with_token(server, factory, pid, DEVELOPER)
    _maintainer, maintainer_token = member_with_token(server, factory, pid, MAINTAINER)
    _reporter, reporter_token = member_with_token(server, factory, pid, REPORTER)
    _outsider, outsider_token = factory.user_with_token()
    new_issue(server, pid, dev_token)
    new_issue(server, pid)

    everything = project_events(server, pid, maintainer_token)
    # Root's: the project and the three memberships; the developer's and root's issues.
    assert [e["event_name"] for e in everything] == [
        "issue.created",
        "issue.created",
        "member.added",
        "member.added",
        "member.added",
        "project.created",
    ]
    assert {e["author_id"] for e in everything} == {1, dev["id"]}
    own = project_events(server, pid, dev_token)
    assert [(e["event_name"], e["author_id"]) for e in own] == [("issue.created", dev["id"])]
    assert server.request("GET", f"/projects/{pid}/audit_events", token=reporter_token).status_code == 403
    assert server.request("GET", f"/projects/{pid}/audit_events", token=outsider_token).json() == {
        "message": "404 Project Not Found"
    }

    event_id = everything[0]["id"]
    single = server.request("GET", f"/projects/{pid}/audit_events/{event_id}", token=maintainer_token)
    assert single.status_code == 200
    assert single.json()["id"] == event_id
    assert (
        server.request("GET", f"/projects/{pid}/audit_events/{event_id}", token=dev_token).status_code == 403
    )
    # An event of another project is not found through this one.
    other = factory.project()
    other_event = project_events(server, other["id"])[0]["id"]
    assert server.root("GET", f"/projects/{pid}/audit_events/{other_event}").json() == {
        "message": "404 Audit Event Not Found"
    }

    gl_project = server.gl(maintainer_token).projects.get(pid, lazy=True)
    assert len(gl_project.audit_events.list(get_all=True)) == len(everything)
    assert gl_project.audit_events.get(event_id).event_name == "issue.created"


def test_group_events_by_role(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    gid = group["id"]
    owner, owner_token = factory.user_with_token(["api"])
    dev, dev_token = factory.user_with_token(["api"])
    guest, guest_token = factory.user_with_token(["api"])
    add_member(server, "groups", gid, owner["id"], OWNER)
    add_member(server, "groups", gid, dev["id"], DEVELOPER)
    add_member(server, "groups", gid, guest["id"], GUEST)
    entity = Entity("Group", gid, group["full_path"])
    record_as(server, dev["id"], Event.GROUP_UPDATED, entity, change="description", **{"from": "", "to": "x"})
    record_as(server, owner["id"], Event.GROUP_UPDATED, entity, change="name")

    def events(token: str) -> list[dict[str, Any]]:
        response = server.request("GET", f"/groups/{gid}/audit_events", token=token)
        assert response.status_code == 200, response.text
        return list(response.json())

    everything = events(owner_token)
    # Newest first: the owner's and developer's changes, then root's three memberships and the group.
    assert [e["author_id"] for e in everything] == [owner["id"], dev["id"], 1, 1, 1, 1]
    assert everything[-1]["event_name"] == "group.created"
    assert everything[1]["details"]["change"] == "description"
    assert everything[1]["details"]["ip_address"] == "10.0.0.1"
    assert [e["author_id"] for e in events(dev_token)] == [dev["id"]]
    assert len(events(server.root_token)) == len(everything)
    assert server.request("GET", f"/groups/{gid}/audit_events", token=guest_token).status_code == 403
    event_id = everything[0]["id"]
    assert (
        server.request("GET", f"/groups/{gid}/audit_events/{event_id}", token=owner_token).status_code == 200
    )
    assert server.request("GET", f"/groups/{gid}/audit_events/{event_id}", token=dev_token).status_code == 403
    _stranger, stranger_token = factory.user_with_token()
    assert server.request("GET", f"/groups/{gid}/audit_events", token=stranger_token).json() == {
        "message": "404 Group Not Found"
    }
    gl_group = server.gl(owner_token).groups.get(gid, lazy=True)
    assert [e.id for e in gl_group.audit_events.list(get_all=True)] == [e["id"] for e in everything]
    assert gl_group.audit_events.get(event_id).author_id == owner["id"]


def test_cli_lists_audit_events(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    issue = new_issue(server, project["id"])
    listed = run_cli(
        server,
        server.root_token,
        "-o",
        "json",
        "audit-event",
        "list",
        "--entity-type",
        "Project",
        "--entity-id",
        str(project["id"]),
    )
    assert listed.returncode == 0, listed.stderr
    events = json.loads(listed.stdout)
    assert [e["event_name"] for e in events] == ["issue.created", "project.created"]
    assert events[0]["details"]["target_id"] == issue["id"]
    scoped = run_cli(
        server,
        server.root_token,
        "-o",
        "json",
        "project-audit-event",
        "list",
        "--project-id",
        str(project["id"]),
    )
    assert scoped.returncode == 0, scoped.stderr
    assert [e["id"] for e in json.loads(scoped.stdout)] == [e["id"] for e in events]
    _user, token = factory.user_with_token(["api"])
    denied = run_cli(server, token, "audit-event", "list")
    assert denied.returncode != 0
    assert "403" in denied.stderr + denied.stdout


def test_hostile_audit_ids(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    huge = str(2**63 + 5)
    assert server.root("GET", f"/audit_events/{huge}").status_code == 404
    assert server.root("GET", f"/projects/{project['id']}/audit_events/{huge}").status_code == 404
    response = server.root("GET", "/audit_events", params={"entity_type": "Project", "entity_id": huge})
    assert response.status_code == 200
    assert response.json() == []
