"""Asynchronous Ghost migration: DELETE /users/:id of a user with many records answers at once
with the user blocked and unable to authenticate anywhere; the ghost-migration job then moves the
records to the Ghost User in batches and deletes the user, and resumes after a kill -9."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests
from sqlalchemy import Engine, create_engine, func, insert, select, text
from sqlalchemy.orm import Session

from keycrew.access.models import Member
from keycrew.actions.users import PENDING_DELETION
from keycrew.activity.models import ActivityEvent
from keycrew.audit.models import AuditEvent
from keycrew.automation.jobs import JobRun
from keycrew.automation.registry import JOBS
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Project
from keycrew.records.ghost_migrations import GhostUserMigration
from keycrew.records.models import Issue, Note
from tests.support.git import basic, info_refs
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, start_server
from tests.support.processes import clean_env
from tests.support.web import sign_in, signed_in

PASSWORD = "a-long-password-1"
DEVELOPER = 30


# -- records, made fast through the ORM ---------------------------------------------------------


def add_records(
    server: LiveServer, project_id: int, author_id: int, *, issues: int, notes: int, events: int
) -> dict[str, list[int]]:
    """``issues`` issues, ``notes`` notes (on those issues) and ``events`` events by ``author_id``
    in the project, in one transaction; returns their ids by kind."""
    now = server.clock.now()
    with server.runtime.sessions() as db, db.begin():
        project = db.get(Project, project_id)
        assert project is not None
        first = project.last_issue_iid + 1
        project.last_issue_iid += issues
        db.execute(
            insert(Issue),
            [
                {
                    "project_id": project_id,
                    "iid": first + i,
                    "title": f"issue {i}",
                    "description": "",
                    "author_id": author_id,
                    "state": "opened",
                    "confidential": False,
                    "issue_type": "issue",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(issues)
            ],
        )
        issue_ids = list(
            db.scalars(
                select(Issue.id).where(Issue.project_id == project_id, Issue.iid >= first).order_by(Issue.id)
            )
        )
        if notes:
            db.execute(
                insert(Note),
                [
                    {
                        "project_id": project_id,
                        "issue_id": issue_ids[i % len(issue_ids)],
                        "author_id": author_id,
                        "body": "a comment",
                        "system": False,
                        "confidential": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(notes)
                ],
            )
        if events:
            db.execute(
                insert(ActivityEvent),
                [
                    {
                        "project_id": project_id,
                        "author_id": author_id,
                        "action": 1,
                        "target_type": "Issue",
                        "target_id": issue_ids[i % len(issue_ids)],
                        "target_title": "issue",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(events)
                ],
            )
        note_ids = list(
            db.scalars(select(Note.id).where(Note.issue_id.in_(issue_ids), Note.author_id == author_id))
        )
        event_ids = list(db.scalars(select(ActivityEvent.id).where(ActivityEvent.author_id == author_id)))
    return {"issues": issue_ids, "notes": note_ids, "events": event_ids}


def authored(server: LiveServer, user_id: int) -> dict[str, int]:
    with server.runtime.sessions() as db:
        return _authored(db, user_id)


def _authored(db: Session, user_id: int) -> dict[str, int]:
    def count(model: Any, column: Any) -> int:
        return int(db.scalar(select(func.count()).select_from(model).where(column == user_id)) or 0)

    return {
        "issues": count(Issue, Issue.author_id),
        "issues_last_edited": count(Issue, Issue.last_edited_by_id),
        "notes": count(Note, Note.author_id),
        "events": count(ActivityEvent, ActivityEvent.author_id),
    }


def ghost_id(server: LiveServer) -> int:
    with server.runtime.sessions() as db:
        found = db.scalar(select(User.id).where(User.user_type == int(UserType.GHOST)))
    assert found is not None
    return int(found)


def migration_of(server: LiveServer, user_id: int) -> GhostUserMigration | None:
    with server.runtime.sessions() as db:
        return db.scalar(select(GhostUserMigration).where(GhostUserMigration.user_id == user_id))


def audit_of(server: LiveServer, user_id: int, name: str) -> list[AuditEvent]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent)
                .where(AuditEvent.target_type == "User", AuditEvent.target_id == user_id)
                .where(AuditEvent.event_name == name)
            )
        )


def run_job(server: LiveServer, *, dry_run: bool = False) -> JobRun:
    run = JobRun(server.runtime.sessions, server.runtime.instance, server.runtime.clock, dry_run=dry_run)
    JOBS["ghost-migration"].body(run)
    return run


def ids_owned_by(server: LiveServer, model: Any, ids: list[int]) -> set[int]:
    """The distinct authors of these rows."""
    with server.runtime.sessions() as db:
        return set(db.scalars(select(model.author_id).where(model.id.in_(ids)).distinct()))


@pytest.fixture
def prolific(server: LiveServer, factory: Factory) -> Iterator[dict[str, Any]]:
    """A user with a token, a web session, a membership, a personal project, and 1,500 issues,
    1,200 notes and 800 events in a root-owned project (more than DEFER_OVER)."""
    user, token = factory.user_with_token(["api", "read_repository", "read_registry"])
    shared = factory.project()
    factory.member("projects", shared["id"], user["id"], DEVELOPER)
    own = factory.project(token=token)
    session, status = sign_in(server.url, user["username"], PASSWORD)
    assert status == 303
    records = add_records(server, shared["id"], user["id"], issues=1500, notes=1200, events=800)
    # A root issue the user edited last and closed.
    edited = add_records(server, shared["id"], 1, issues=1, notes=0, events=0)["issues"][0]
    with server.runtime.sessions() as db, db.begin():
        issue = db.get(Issue, edited)
        assert issue is not None
        issue.last_edited_by_id = user["id"]
        issue.state = "closed"
        issue.closed_by_id = user["id"]
    yield {
        "user": user,
        "token": token,
        "shared": shared,
        "own": own,
        "session": session,
        "records": records,
        "edited": edited,
    }
    # Never leave a pending migration behind for other tests' job runs.
    if migration_of(server, user["id"]) is not None:
        run_job(server)


# -- the deferred deletion ---------------------------------------------------------------------


def test_delete_answers_at_once_and_blocks_everything(
    server: LiveServer, gl: gitlab.Gitlab, prolific: dict[str, Any]
) -> None:
    user, token, records = prolific["user"], prolific["token"], prolific["records"]
    assert server.request("GET", "/user", token=token).status_code == 200

    gl.users.delete(user["id"])  # 204

    # Deferred: the migration row is there, no record has moved yet.
    migration = migration_of(server, user["id"])
    assert migration is not None
    assert migration.hard_delete is False
    assert migration.initiator_user_id == 1
    pending = authored(server, user["id"])
    # The records as made (and the user's contribution events of joining the project).
    assert pending["issues"] == 1500
    assert pending["issues_last_edited"] == 1
    assert pending["notes"] == 1200
    assert pending["events"] > 800
    # GitLab shows a user pending deletion as blocked.
    shown = gl.users.get(user["id"])
    assert shown.state == "blocked"
    # No credential of the user works any more, anywhere.
    assert server.request("GET", "/user", token=token).status_code == 401
    git = info_refs(server, prolific["shared"]["path_with_namespace"], headers=basic("any", token))
    assert git.status_code == 401
    registry = requests.get(
        f"{server.url}/jwt/auth",
        params={
            "service": "container_registry",
            "scope": f"repository:{prolific['shared']['path_with_namespace']}:pull",
        },
        auth=(user["username"], token),
        timeout=30,
    )
    assert registry.status_code in (401, 403)
    page = prolific["session"].get(
        f"{server.url}/-/user_settings/personal_access_tokens", timeout=30, allow_redirects=False
    )
    assert page.status_code in (302, 303, 401, 403)
    _, status = sign_in(server.url, user["username"], PASSWORD)
    assert status != 303
    # What GitLab removes at once: memberships and personal projects.
    with server.runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Member).where(Member.user_id == user["id"])) == 0
    assert server.root("GET", f"/projects/{prolific['own']['id']}").status_code == 404
    scheduled = audit_of(server, user["id"], "user.deletion_scheduled")
    assert len(scheduled) == 1
    assert scheduled[0].author_id == 1
    assert scheduled[0].details["from"] == "active"
    assert audit_of(server, user["id"], "user.deleted") == []
    # A second DELETE while it is under way changes nothing.
    gl.users.delete(user["id"])
    with server.runtime.sessions() as db:
        assert (
            db.scalar(
                select(func.count())
                .select_from(GhostUserMigration)
                .where(GhostUserMigration.user_id == user["id"])
            )
            == 1
        )

    run = run_job(server)

    assert run.counts["users deleted"] >= 1
    with pytest.raises(gitlab.GitlabGetError) as gone:
        gl.users.get(user["id"])
    assert gone.value.response_code == 404
    assert migration_of(server, user["id"]) is None
    ghost = ghost_id(server)
    assert ids_owned_by(server, Issue, records["issues"]) == {ghost}
    assert ids_owned_by(server, Note, records["notes"]) == {ghost}
    assert ids_owned_by(server, ActivityEvent, records["events"]) == {ghost}
    with server.runtime.sessions() as db:
        edited = db.get(Issue, prolific["edited"])
        assert edited is not None
        assert edited.author_id == 1
        assert edited.last_edited_by_id == ghost
        assert edited.closed_by_id is None  # forgotten, not moved
    deleted = audit_of(server, user["id"], "user.deleted")
    assert len(deleted) == 1
    assert deleted[0].author_id == 1  # the initiator, as GitLab
    assert deleted[0].details["records"] == {
        "issues": 1500,
        "issues_last_edited": 1,
        "notes": 1200,
        "issues_closed": 1,
    }
    assert deleted[0].details["events"] == pending["events"]
    assert len(audit_of(server, user["id"], "user.records_moved_to_ghost")) == 1


def test_hard_delete_deletes_the_records_in_the_background(
    server: LiveServer, prolific: dict[str, Any], factory: Factory
) -> None:
    user, records = prolific["user"], prolific["records"]
    # Someone else's comment on one of the user's issues goes with the issue.
    other = add_records(server, prolific["shared"]["id"], 1, issues=1, notes=0, events=0)["issues"][0]
    with server.runtime.sessions() as db, db.begin():
        first = db.get(Issue, records["issues"][0])
        assert first is not None
        db.add(
            Note(
                project_id=first.project_id,
                issue_id=first.id,
                author_id=1,
                body="root's comment",
                system=False,
                confidential=False,
                created_at=server.clock.now(),
                updated_at=server.clock.now(),
            )
        )

    response = server.root("DELETE", f"/users/{user['id']}", params={"hard_delete": "true"})
    assert response.status_code == 204
    migration = migration_of(server, user["id"])
    assert migration is not None
    assert migration.hard_delete is True
    assert authored(server, user["id"])["issues"] == 1500

    run_job(server)

    assert server.root("GET", f"/users/{user['id']}").status_code == 404
    with server.runtime.sessions() as db:
        for kind, model in (("issues", Issue), ("notes", Note), ("events", ActivityEvent)):
            left = db.scalar(select(func.count()).select_from(model).where(model.id.in_(records[kind])))
            assert left == 0, kind
        assert (
            db.scalar(select(func.count()).select_from(Note).where(Note.issue_id == records["issues"][0]))
            == 0
        )
        edited = db.get(Issue, prolific["edited"])
        assert edited is not None
        assert edited.last_edited_by_id is None
        assert edited.closed_by_id is None
        assert db.get(Issue, other) is not None
    deleted = audit_of(server, user["id"], "user.deleted")
    assert len(deleted) == 1
    assert deleted[0].details["hard_delete"] is True
    assert deleted[0].details["records"]["issues"] == 1500


def test_hard_delete_asked_while_under_way_applies_to_what_is_left(
    server: LiveServer, prolific: dict[str, Any]
) -> None:
    user = prolific["user"]
    assert server.root("DELETE", f"/users/{user['id']}").status_code == 204
    assert server.root("DELETE", f"/users/{user['id']}", params={"hard_delete": True}).status_code == 204
    migration = migration_of(server, user["id"])
    assert migration is not None
    assert migration.hard_delete is True
    run_job(server)
    with server.runtime.sessions() as db:
        assert (
            db.scalar(
                select(func.count()).select_from(Issue).where(Issue.id.in_(prolific["records"]["issues"]))
            )
            == 0
        )


def test_a_user_whose_deletion_is_under_way_cannot_be_unblocked(
    server: LiveServer, prolific: dict[str, Any]
) -> None:
    user = prolific["user"]
    assert server.root("DELETE", f"/users/{user['id']}").status_code == 204
    refused = server.root("POST", f"/users/{user['id']}/unblock")
    assert refused.status_code == 403, refused.text
    assert refused.json() == {"message": "403 Forbidden - " + PENDING_DELETION}
    assert server.root("GET", f"/users/{user['id']}").json()["state"] == "blocked"
    run_job(server)
    assert server.root("POST", f"/users/{user['id']}/unblock").status_code == 404


def test_dry_run_changes_nothing(server: LiveServer, prolific: dict[str, Any]) -> None:
    user = prolific["user"]
    assert server.root("DELETE", f"/users/{user['id']}").status_code == 204

    run = run_job(server, dry_run=True)

    assert run.counts["records to move"] >= 3501
    assert any(f"@{user['username']}" in line for line in run.notes)
    assert migration_of(server, user["id"]) is not None
    assert authored(server, user["id"])["issues"] == 1500
    assert server.root("GET", f"/users/{user['id']}").json()["state"] == "blocked"


def test_the_admin_page_defers_the_same_way(server: LiveServer, prolific: dict[str, Any]) -> None:
    user = prolific["user"]
    http, csrf = signed_in(server.url, "root", ROOT_PASSWORD)

    response = http.post(
        f"{server.url}/admin/users/{user['username']}/delete",
        data={"authenticity_token": csrf},
        timeout=30,
        allow_redirects=False,
    )

    assert response.status_code == 303
    page = http.get(f"{server.url}{response.headers['location']}", timeout=30)
    assert f"@{user['username']} is blocked and will be deleted shortly" in page.text
    assert migration_of(server, user["id"]) is not None
    assert server.request("GET", "/user", token=prolific["token"]).status_code == 401
    run_job(server)
    assert server.root("GET", f"/users/{user['id']}").status_code == 404


def test_a_user_with_few_records_is_still_deleted_at_once(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    user = factory.user()
    project = factory.project()
    records = add_records(server, project["id"], user["id"], issues=10, notes=10, events=10)

    gl.users.delete(user["id"])

    with pytest.raises(gitlab.GitlabGetError):
        gl.users.get(user["id"])
    assert migration_of(server, user["id"]) is None
    assert ids_owned_by(server, Issue, records["issues"]) == {ghost_id(server)}


def test_a_failed_migration_is_retried_later(
    server: LiveServer, prolific: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from keycrew.records import ghost_migrations

    user = prolific["user"]
    assert server.root("DELETE", f"/users/{user['id']}").status_code == 204

    def broken(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patched:
        patched.setattr(ghost_migrations, "migrate_batch", broken)
        run = run_job(server)
    assert run.counts["failed"] == 1
    migration = migration_of(server, user["id"])
    assert migration is not None
    assert migration.attempts == 1
    assert "disk on fire" in (migration.last_error or "")
    # Not due again before 30 minutes.
    run_job(server)
    assert migration_of(server, user["id"]) is not None
    server.clock.travel_to(server.clock.now() + dt.timedelta(minutes=31))
    run_job(server)
    assert migration_of(server, user["id"]) is None
    assert server.root("GET", f"/users/{user['id']}").status_code == 404


# -- kill -9 of `keycrew jobs run ghost-migration` ----------------------------------------------

# The real CLI, with small batches that each take a while (so that a kill lands mid-run, most
# often inside an open batch).
SLOW_JOB = textwrap.dedent(
    """
    import sys, time
    from keycrew.records import ghost_migrations

    ghost_migrations.BATCH_SIZE = 100
    move = ghost_migrations.migrate_batch

    def slow(*args, **kwargs):
        done = move(*args, **kwargs)
        time.sleep(0.05)
        return done

    ghost_migrations.migrate_batch = slow
    from keycrew.cli import main

    sys.argv = ["keycrew", "jobs", "run", "ghost-migration"]
    main()
    """
)


def progress_of(engine: Engine, user_id: int) -> dict[str, int] | None:
    """The migration's committed counts (None once it is gone), read without a write lock."""
    with engine.connect() as conn:
        moved = conn.execute(
            text("SELECT moved FROM ghost_user_migrations WHERE user_id = :u"), {"u": user_id}
        ).scalar()
    return None if moved is None else dict(json.loads(moved))


@pytest.fixture
def own_server(server: LiveServer, tmp_path: Path) -> Iterator[LiveServer]:
    """A server of the same backend on a database of its own, for a job run in another process."""
    nodes = start_server(server.backend, tmp_path / "node")
    try:
        yield next(nodes)
    finally:
        nodes.close()


def test_kill_9_mid_run_then_rerun_completes_exactly(own_server: LiveServer) -> None:
    server = own_server
    factory = Factory(server)
    user = factory.user()
    project = factory.project()
    records = add_records(server, project["id"], user["id"], issues=2500, notes=2500, events=1000)
    total = 6000
    assert server.root("DELETE", f"/users/{user['id']}").status_code == 204
    assert authored(server, user["id"])["issues"] == 2500

    env = clean_env(
        server.data_dir,
        KEYCREW_DATABASE_URL=str(server.runtime.settings.database_url),
        KEYCREW_EXTERNAL_URL=server.url,
    )
    # Watched through a plain connection: the server's sessions BEGIN IMMEDIATE on SQLite, and
    # would wait for the job's write lock.
    watcher = create_engine(server.runtime.settings.database_url)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_JOB],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        # Wait until some batches have committed, then kill it without warning.
        deadline = time.monotonic() + 120
        while True:
            moved = progress_of(watcher, user["id"])
            assert moved is not None, "the job finished before it could be killed"
            if sum(moved.values()) >= 1000:
                break
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "the job made no progress"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
        watcher.dispose()
    assert proc.returncode == -signal.SIGKILL

    # Killed mid-way: part moved, the rest still the user's, and the row's counts say exactly what.
    migration = migration_of(server, user["id"])
    assert migration is not None
    left = authored(server, user["id"])
    moved_so_far = sum(migration.moved.values())
    assert 0 < moved_so_far < total
    assert moved_so_far + sum(left.values()) == total
    assert server.root("GET", f"/users/{user['id']}").json()["state"] == "blocked"

    run = run_job(server)

    assert run.counts["records moved"] == total - moved_so_far
    assert server.root("GET", f"/users/{user['id']}").status_code == 404
    ghost = ghost_id(server)
    for kind, model in (("issues", Issue), ("notes", Note), ("events", ActivityEvent)):
        assert ids_owned_by(server, model, records[kind]) == {ghost}, kind
    deleted = audit_of(server, user["id"], "user.deleted")
    assert len(deleted) == 1
    assert deleted[0].details["records"] == {"issues": 2500, "notes": 2500}
    assert deleted[0].details["events"] == 1000
