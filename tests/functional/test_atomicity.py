"""A failing use case leaves nothing behind: not the object, not its audit event, not a counter bump.

Also: what an audit event records about who acted (actor, token id, client IP, sudo impersonator).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from keycrew.audit.models import AuditEvent
from keycrew.context import Actor, Ctx
from keycrew.namespaces.models import Project
from keycrew.records import ghost
from keycrew.records.models import Issue, Note
from tests.support.live import Factory, LiveServer
from tests.support.records import new_issue, new_note

T = TypeVar("T")


class InjectedFault(Exception):
    """Raised by a patched step to make a use case fail after earlier steps have written."""


@dataclass(frozen=True)
class Snapshot:
    audit_events: int
    issues: int
    notes: int
    last_issue_iid: int
    last_activity_at: dt.datetime
    issue_updated_at: tuple[dt.datetime, ...]


def snapshot(server: LiveServer, project_id: int) -> Snapshot:
    """Counts across the whole database, plus the project's counter and timestamps."""
    with server.runtime.sessions() as db:
        project = db.get(Project, project_id)
        assert project is not None
        return Snapshot(
            audit_events=db.scalar(select(func.count()).select_from(AuditEvent)) or 0,
            issues=db.scalar(select(func.count()).select_from(Issue)) or 0,
            notes=db.scalar(select(func.count()).select_from(Note)) or 0,
            last_issue_iid=project.last_issue_iid,
            last_activity_at=project.last_activity_at,
            issue_updated_at=tuple(
                db.scalars(select(Issue.updated_at).where(Issue.project_id == project_id).order_by(Issue.id))
            ),
        )


@pytest.fixture
def fault(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Make a module's ``record`` (the audit write, the last step of each use case) raise.

    The live server runs in this process, so the patch reaches the request being served.
    """

    def install(module: Any) -> None:
        def failing_record(*_args: Any, **_kwargs: Any) -> None:
            raise InjectedFault("audit write failed")

        monkeypatch.setattr(module, "record", failing_record)

    return install


def test_create_issue_failing_at_its_last_step_leaves_nothing(
    server: LiveServer, factory: Factory, fault: Any
) -> None:
    from keycrew.records import issues

    project = factory.project()
    new_issue(server, project["id"])
    before = snapshot(server, project["id"])
    server.clock.travel_to(server.clock.now() + dt.timedelta(minutes=5))
    fault(issues)
    # The counter was bumped and the issue inserted before the audit write failed.
    response = server.root("POST", f"/projects/{project['id']}/issues", json={"title": "doomed"})
    assert response.status_code == 500
    assert response.json() == {"message": "500 Internal Server Error"}
    assert snapshot(server, project["id"]) == before


def test_create_note_failing_at_its_last_step_leaves_nothing(
    server: LiveServer, factory: Factory, fault: Any
) -> None:
    from keycrew.records import notes

    project = factory.project()
    issue = new_issue(server, project["id"])
    before = snapshot(server, project["id"])
    server.clock.travel_to(server.clock.now() + dt.timedelta(minutes=5))
    fault(notes)
    response = server.root(
        "POST", f"/projects/{project['id']}/issues/{issue['iid']}/notes", json={"body": "x"}
    )
    assert response.status_code == 500
    # Neither the note nor the touch of the issue's updated_at survived.
    assert snapshot(server, project["id"]) == before


def test_update_and_delete_failing_late_leave_the_issue_as_it_was(
    server: LiveServer, factory: Factory, fault: Any
) -> None:
    from keycrew.records import issues

    project = factory.project()
    pid = project["id"]
    issue = new_issue(server, pid, title="kept")
    new_note(server, pid, issue["iid"])
    before = snapshot(server, pid)
    fault(issues)
    path = f"/projects/{pid}/issues/{issue['iid']}"
    assert server.root("PUT", path, json={"title": "lost", "state_event": "close"}).status_code == 500
    assert server.root("DELETE", path).status_code == 500
    assert snapshot(server, pid) == before
    with server.runtime.sessions() as db:
        stored = db.get(Issue, issue["id"])
        assert stored is not None
        assert (stored.title, stored.state, stored.closed_by_id) == ("kept", "opened", None)


def test_taken_iid_fails_after_the_counter_step_and_rolls_it_back(
    server: LiveServer, factory: Factory
) -> None:
    project = factory.project()
    pid = project["id"]
    new_issue(server, pid)
    new_issue(server, pid)
    before = snapshot(server, pid)
    server.clock.travel_to(server.clock.now() + dt.timedelta(minutes=5))
    # Step one updates the project row (counter, last activity); step two's insert then collides.
    response = server.root("POST", f"/projects/{pid}/issues", json={"title": "dup", "iid": 2})
    assert response.status_code == 400
    assert response.json() == {"message": {"iid": ["has already been taken"]}}
    assert snapshot(server, pid) == before
    assert new_issue(server, pid)["iid"] == 3


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status"),
    [
        ("POST", "", {"title": "x" * 300}, 400),
        ("POST", "", {"title": "ok", "confidential": "maybe"}, 400),
        ("PUT", "/1", {"title": "ok", "state_event": "explode"}, 400),
        ("PUT", "/1", {"title": ""}, 400),
        ("POST", "/1/notes", {"body": ""}, 400),
        ("POST", "/1/notes", {"body": "ok", "internal": "yes please"}, 400),
    ],
)
def test_rejected_input_writes_nothing(
    server: LiveServer, factory: Factory, method: str, suffix: str, body: dict[str, Any], status: int
) -> None:
    project = factory.project()
    new_issue(server, project["id"])
    before = snapshot(server, project["id"])
    response = server.root(method, f"/projects/{project['id']}/issues{suffix}", json=body)
    assert response.status_code == status, response.text
    assert snapshot(server, project["id"]) == before


def test_forbidden_changes_write_nothing(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="public")
    pid = project["id"]
    issue = new_issue(server, pid)
    new_note(server, pid, issue["iid"])
    _user, token = factory.user_with_token(["api"])
    before = snapshot(server, pid)
    base = f"/projects/{pid}/issues/{issue['iid']}"
    assert server.request("PUT", base, token=token, json={"title": "hijack"}).status_code == 403
    assert server.request("DELETE", base, token=token).status_code == 403
    response = server.request("POST", f"{base}/notes", token=token, json={"body": "x", "internal": True})
    assert response.status_code == 403
    assert snapshot(server, pid) == before


def run_then_fail(server: LiveServer, work: Callable[[Ctx], T]) -> T:
    """Run ``work`` in a transaction that then fails (as a user deletion failing later would)."""
    results: list[T] = []

    def transaction() -> None:
        with server.runtime.sessions() as db, db.begin():
            results.append(work(server.runtime.ctx(db, Actor.system())))
            raise InjectedFault("user deletion failed later")

    with pytest.raises(InjectedFault):
        transaction()
    return results[0]


def test_ghost_helpers_roll_back_with_their_transaction(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="public")
    pid = project["id"]
    leaver, token = factory.user_with_token(["api"])
    heir = factory.user()
    issue = new_issue(server, pid, token)
    new_note(server, pid, issue["iid"], token)
    new_note(server, pid, new_issue(server, pid)["iid"], token)
    before = snapshot(server, pid)
    moved = run_then_fail(server, lambda ctx: ghost.move_records_to(ctx, leaver["id"], heir["id"]))
    assert moved == {"issues": 1, "issues_last_edited": 0, "notes": 2}
    deleted = run_then_fail(server, lambda ctx: ghost.delete_records_of(ctx, leaver["id"]))
    assert deleted == {"issues": 1, "notes": 2, "issues_last_edited": 0}
    assert snapshot(server, pid) == before
    with server.runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Note).where(Note.author_id == leaver["id"])) == 2

    # Committed, they do their work.
    with server.runtime.sessions() as db, db.begin():
        ghost.move_records_to(server.runtime.ctx(db, Actor.system()), leaver["id"], heir["id"])
    moved = server.root("GET", f"/projects/{pid}/issues/{issue['iid']}").json()
    assert moved["author"]["id"] == heir["id"]
    with server.runtime.sessions() as db, db.begin():
        counts = ghost.delete_records_of(server.runtime.ctx(db, Actor.system()), heir["id"])
    assert counts["issues"] == 1
    assert server.root("GET", f"/projects/{pid}/issues/{issue['iid']}").status_code == 404


# -- who acted --------------------------------------------------------------------------------


def _last_event(server: LiveServer, project_id: int) -> dict[str, Any]:
    response = server.root("GET", f"/projects/{project_id}/audit_events", params={"per_page": 1})
    assert response.status_code == 200
    return dict(response.json()[0])


def _token_id(server: LiveServer, token: str) -> int:
    response = server.request("GET", "/personal_access_tokens/self", token=token)
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def test_event_records_actor_token_and_client_ip(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="public")
    user, token = factory.user_with_token(["api"])
    issue = new_issue(server, project["id"], token)
    event = _last_event(server, project["id"])
    assert event["event_name"] == "issue.created"
    assert event["author_id"] == user["id"]
    details = event["details"]
    assert details["author_name"] == user["username"]
    assert details["token_id"] == _token_id(server, token)
    assert details["ip_address"] == "127.0.0.1"
    assert details["target_id"] == issue["id"]
    assert "impersonated_by" not in details
    with server.runtime.sessions() as db:
        row = db.get(AuditEvent, event["id"])
        assert row is not None
        assert (row.author_id, row.token_id, row.ip_address) == (user["id"], details["token_id"], "127.0.0.1")
        assert row.impersonated_by_id is None


def test_sudo_records_the_user_acted_as_and_the_admin_behind(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="public")
    user = factory.user()
    response = server.root(
        "POST",
        f"/projects/{project['id']}/issues",
        json={"title": "as someone"},
        headers={"Sudo": user["username"]},
    )
    assert response.status_code == 201
    assert response.json()["author"]["id"] == user["id"]
    event = _last_event(server, project["id"])
    assert event["author_id"] == user["id"]
    details = event["details"]
    assert details["author_name"] == user["username"]
    assert details["impersonated_by"] == "root"
    assert details["impersonated_by_id"] == 1
    assert details["token_id"] == _token_id(server, server.root_token)
    assert details["ip_address"] == "127.0.0.1"
    # python-gitlab's sudo (a query parameter) is the same thing.
    gl = server.gl()
    note = (
        gl.projects.get(project["id"], lazy=True)
        .issues.get(response.json()["iid"], lazy=True)
        .notes.create({"body": "hi"}, sudo=user["id"])
    )
    assert note.author["id"] == user["id"]
    event = _last_event(server, project["id"])
    assert event["event_name"] == "note.created"
    assert (event["author_id"], event["details"]["impersonated_by"]) == (user["id"], "root")
