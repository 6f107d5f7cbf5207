"""The ``bulk-imports`` job (direct transfer) through a live server that is its own source: imports
are started with python-gitlab (``POST /bulk_imports``), the job's body runs in the test (the
server runs no jobs, so each test decides when), and the copy is read back with python-gitlab,
git and pip. Faults come from a real HTTP proxy in front of the source (500s, a refused token) and
from a crash raised between two batches (a ``BaseException``, which nothing in the job catches:
its open transaction is rolled back as a killed process's would be). One test starts a server
with its scheduler on to see a new import start without waiting for the job's minute."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gitlab
import pytest
import requests
from sqlalchemy import func, select

from keycrew.audit.models import AuditEvent
from keycrew.automation.direct_transfer import stages
from keycrew.automation.direct_transfer import work as work_module
from keycrew.automation.jobs import JobRun
from keycrew.automation.registry import JOBS
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.imports.bulk import BulkImport, BulkImportEntity, BulkImportFailure
from keycrew.instance.jobs import JobRunRecord
from keycrew.namespaces.models import Project
from keycrew.records.models import Issue, Note
from tests.support.live import Factory, LiveServer, start_server, uid
from tests.support.populate import ls_remote, pip_download, push_repository, upload_package

JOB = "bulk-imports"
DEVELOPER, REPORTER, OWNER = 30, 20, 50
SETTINGS = {"bulk_import_enabled": True, "allow_local_requests_from_web_hooks_and_services": True}
# Fast retries: one retry inside a request, no pauses, and an entity tried again at once.
FAST = {"import_source_retries": 1, "import_source_backoff": 0.0, "import_source_timeout": 20.0}


class Crash(BaseException):
    """Stands for a kill -9 between two batches: nothing in the job catches it."""


@pytest.fixture(scope="module")
def node(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    nodes = start_server(server.backend, tmp_path_factory.mktemp("direct-transfer"), **FAST)
    live = next(nodes)
    assert live.root("PUT", "/application/settings", json=SETTINGS).status_code == 200
    try:
        yield live
    finally:
        nodes.close()


@pytest.fixture(scope="module")
def make(node: LiveServer) -> Factory:
    return Factory(node)


# -- helpers ------------------------------------------------------------------------------------------


def run_job(node: LiveServer) -> JobRun:
    runtime = node.runtime
    run = JobRun(runtime.sessions, runtime.instance, runtime.clock)
    JOBS[JOB].body(run)
    return run


def start(node: LiveServer, token: str, *entities: dict[str, Any], url: str | None = None) -> int:
    """An import started through the API with python-gitlab; its id."""
    payload = {"configuration": {"url": url or node.url, "access_token": token}, "entities": list(entities)}
    return int(node.gl(token).bulk_imports.create(payload).id)


def group_entity(path: str, slug: str, namespace: str = "") -> dict[str, Any]:
    return {
        "source_type": "group_entity",
        "source_full_path": path,
        "destination_slug": slug,
        "destination_namespace": namespace,
    }


def project_entity(path: str, slug: str, namespace: str) -> dict[str, Any]:
    return {
        "source_type": "project_entity",
        "source_full_path": path,
        "destination_slug": slug,
        "destination_namespace": namespace,
    }


def import_row(node: LiveServer, import_id: int) -> BulkImport:
    with node.runtime.sessions() as db:
        found = db.get(BulkImport, import_id)
        assert found is not None
        db.expunge(found)
        return found


def entities(node: LiveServer, import_id: int) -> list[BulkImportEntity]:
    with node.runtime.sessions() as db:
        rows = list(
            db.scalars(
                select(BulkImportEntity)
                .where(BulkImportEntity.bulk_import_id == import_id)
                .order_by(BulkImportEntity.id)
            )
        )
        for row in rows:
            db.expunge(row)
        return rows


def failures(node: LiveServer, import_id: int) -> list[BulkImportFailure]:
    with node.runtime.sessions() as db:
        rows = list(
            db.scalars(
                select(BulkImportFailure)
                .join(BulkImportEntity, BulkImportEntity.id == BulkImportFailure.entity_id)
                .where(BulkImportEntity.bulk_import_id == import_id)
            )
        )
        for row in rows:
            db.expunge(row)
        return rows


def user_types(node: LiveServer, ids: set[int]) -> dict[int, int]:
    with node.runtime.sessions() as db:
        return {u.id: u.user_type for u in db.scalars(select(User).where(User.id.in_(ids)))}


def counts_in(node: LiveServer, project_id: int) -> tuple[int, int]:
    with node.runtime.sessions() as db:
        issues = db.scalar(select(func.count(Issue.id)).where(Issue.project_id == project_id))
        notes = db.scalar(select(func.count(Note.id)).where(Note.project_id == project_id))
        return int(issues or 0), int(notes or 0)


def project_path_exists(node: LiveServer, full_path: str) -> bool:
    with node.runtime.sessions() as db:
        return db.scalar(select(Project.id).where(Project.full_path == full_path)) is not None


def small_source(node: LiveServer, make: Factory, issues: int = 3) -> tuple[dict[str, Any], str, Any, Any]:
    """A person with an ``api`` token, their group and a project in it with ``issues`` issues
    (each with one comment)."""
    person, token = make.user_with_token(["api"])
    gl = node.gl(token)
    group = gl.groups.create({"name": uid("Src"), "path": uid("src")})
    project = gl.projects.create({"name": "App", "path": "app", "namespace_id": group.id})
    for n in range(issues):
        issue = project.issues.create({"title": f"issue {n}", "description": f"text {n}"})
        issue.notes.create({"body": f"comment on {n}"})
    return person, token, group, project


class FaultProxy:
    """A real HTTP proxy in front of the source's API: ``fault(path)`` may answer a status of its
    own instead of the source's. Pagination links are rewritten to the proxy's address."""

    def __init__(self, target: str, fault: Callable[[str], int | None]) -> None:
        self.target = target
        self.fault = fault
        self.faults = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status = proxy.fault(self.path)
                if status is not None:
                    proxy.faults += 1
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"message": "injected"}')
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("private-token", "accept")}
                answer = requests.get(proxy.target + self.path, headers=headers, timeout=30)
                self.send_response(answer.status_code)
                for name in ("Content-Type", "Link", "X-Next-Page", "X-Total", "X-Page", "X-Per-Page"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name].replace(proxy.target, proxy.url))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- the whole copy -------------------------------------------------------------------------------------


def test_a_group_tree_is_copied_with_placeholders_and_nothing_twice(
    node: LiveServer, make: Factory, tmp_path: Path
) -> None:
    alice, token = make.user_with_token(["api"])
    bob, bob_token = make.user_with_token(["api"])
    dave, dave_token = make.user_with_token(["api"])
    gl = node.gl(token)
    top = gl.groups.create({"name": uid("Top"), "path": uid("top"), "description": "the top"})
    sub = gl.groups.create({"name": "Sub", "path": "sub", "parent_id": top.id})
    project = gl.projects.create({"name": "App", "path": "app", "namespace_id": top.id})
    make.member("groups", top.id, bob["id"], DEVELOPER, token=token)
    make.member("projects", project.id, dave["id"], REPORTER, token=token)
    first = project.issues.create({"title": "first", "description": "by alice"})
    second = (
        node.gl(bob_token)
        .projects.get(project.id)
        .issues.create({"title": "second", "description": "by bob", "confidential": True})
    )
    second.notes.create({"body": "bob comments"})
    first.notes.create({"body": "alice comments"})
    second.state_event = "close"
    second.save()
    by_dave = node.gl(dave_token).projects.get(project.id).issues.create({"title": "by dave"})
    by_dave.notes.create({"body": "dave comments"})
    refs = push_repository(node, tmp_path, project.path_with_namespace)
    package = upload_package(node, tmp_path, project)
    # Dave is blocked on the source since: his records go to GitLab Migration Bot.
    assert node.root("POST", f"/users/{dave['id']}/block").status_code == 201

    slug = uid("copy")
    import_id = start(node, token, group_entity(top.full_path, slug))
    run = run_job(node)
    assert run.counts["entities finished"] == 3, run.counts

    bulk = import_row(node, import_id)
    assert bulk.status == "finished"
    assert bulk.has_failures is False
    assert bulk.access_token_sealed is None
    rows = entities(node, import_id)
    assert [(e.entity_type, e.status, e.stage) for e in rows] == [
        ("group", "finished", "done"),
        ("group", "finished", "done"),
        ("project", "finished", "done"),
    ] or sorted((e.entity_type, e.status) for e in rows) == [
        ("group", "finished"),
        ("group", "finished"),
        ("project", "finished"),
    ]
    assert failures(node, import_id) == []

    # The tree, as a user of the destination sees it.
    copy = gl.groups.get(slug)
    assert copy.name == top.name
    assert copy.description == "the top"
    assert [g.full_path for g in copy.subgroups.list(get_all=True)] == [f"{slug}/{sub.path}"]
    copied = gl.projects.get(f"{slug}/app")
    assert copied.default_branch == project.default_branch
    issues = {i.iid: i for i in copied.issues.list(get_all=True)}
    assert {(i.iid, i.title, i.state, i.confidential) for i in issues.values()} == {
        (first.iid, "first", "opened", False),
        (second.iid, "second", "closed", True),
        (by_dave.iid, "by dave", "opened", False),
    }
    assert issues[first.iid].created_at == first.created_at
    # Authors: placeholders for alice and bob, Migration Bot for the blocked dave.
    authors = {iid: issue.author["id"] for iid, issue in issues.items()}
    types = user_types(node, set(authors.values()))
    assert types[authors[first.iid]] == UserType.PLACEHOLDER
    assert types[authors[second.iid]] == UserType.PLACEHOLDER
    assert authors[first.iid] != authors[second.iid]
    assert types[authors[by_dave.iid]] == UserType.MIGRATION_BOT
    notes = {
        iid: [
            (n.body, n.author["id"]) for n in copied.issues.get(iid).notes.list(get_all=True) if not n.system
        ]
        for iid in issues
    }
    assert notes[first.iid] == [("alice comments", authors[first.iid])]
    assert notes[second.iid] == [("bob comments", authors[second.iid])]
    assert [body for body, _ in notes[by_dave.iid]] == ["dave comments"]
    assert types[notes[by_dave.iid][0][1]] == UserType.MIGRATION_BOT
    # Members: bob's placeholder on the group at Developer; none for the blocked dave.
    group_members = {m.id: m.access_level for m in copy.members.list(get_all=True)}
    assert group_members[alice["id"]] == OWNER  # the importing user owns what they created
    placeholders = {uid_: level for uid_, level in group_members.items() if uid_ != alice["id"]}
    assert sorted(placeholders.values()) == [DEVELOPER, OWNER]  # bob's and alice's (source Owner)
    assert set(user_types(node, set(placeholders)).values()) == {UserType.PLACEHOLDER}
    assert copied.members.list(get_all=True) == []
    # The repository: every branch and tag; the package: pip installs it from the copy.
    assert ls_remote(tmp_path, node.url, f"{slug}/app", node.root_token) == refs
    wheel = pip_download(node.url, copied.id, token, package.name, package.version, tmp_path / "pip")
    assert wheel.name == package.filename

    # A rerun copies nothing twice.
    before = counts_in(node, copied.id)
    again = run_job(node)
    assert again.counts == {}
    assert counts_in(node, copied.id) == before == (3, 3)
    assert len(copied.issues.list(get_all=True)) == 3
    with node.runtime.sessions() as db:
        events = list(
            db.scalars(
                select(AuditEvent.event_name).where(
                    AuditEvent.target_type == "BulkImport", AuditEvent.target_id == import_id
                )
            )
        )
    assert "import.bulk_import_started" in events
    assert "import.bulk_import_finished" in events


# -- resuming ------------------------------------------------------------------------------------------


def test_a_stage_stopped_between_batches_resumes_without_duplicates(
    node: LiveServer, make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _person, token, group, project = small_source(node, make, issues=5)
    slug = uid("resumed")
    import_id = start(node, token, group_entity(group.full_path, slug))
    monkeypatch.setattr(work_module, "BATCH_SIZE", 2)
    real = stages._issues_batch
    batches: list[int] = []

    def crash_after_the_first_batch(work: Any, issues: list[Any], seen: int) -> None:
        if batches:
            raise Crash("killed between two batches")
        real(work, issues, seen)
        batches.append(len(issues))

    monkeypatch.setattr(stages, "_issues_batch", crash_after_the_first_batch)
    with pytest.raises(Crash):
        run_job(node)
    copied = node.gl(token).projects.get(f"{slug}/app")
    assert counts_in(node, copied.id) == (2, 0)
    project_entity_row = next(e for e in entities(node, import_id) if e.entity_type == "project")
    assert (project_entity_row.status, project_entity_row.stage) == ("started", "issues")

    monkeypatch.setattr(stages, "_issues_batch", real)
    run_job(node)
    assert import_row(node, import_id).status == "finished"
    assert failures(node, import_id) == []
    assert counts_in(node, copied.id) == (5, 5)
    assert sorted(i.iid for i in copied.issues.list(get_all=True)) == sorted(
        i.iid for i in project.issues.list(get_all=True)
    )
    stats = next(e for e in entities(node, import_id) if e.entity_type == "project").stats or ""
    assert '"issues": {"fetched": 5, "imported": 5, "source": 5}' in stats


def test_a_source_failing_then_answering_is_retried(node: LiveServer, make: Factory) -> None:
    _person, token, group, _project = small_source(node, make, issues=2)
    left = {"n": 3}

    def three_500s_on_issues(path: str) -> int | None:
        if "/issues" in path and left["n"] > 0:
            left["n"] -= 1
            return 500
        return None

    with FaultProxy(node.url, three_500s_on_issues) as proxy:
        slug = uid("retried")
        import_id = start(node, token, group_entity(group.full_path, slug), url=proxy.url)
        run = run_job(node)
    assert proxy.faults == 3
    assert run.counts["entities retried later"] >= 1
    bulk = import_row(node, import_id)
    assert (bulk.status, bulk.has_failures, bulk.access_token_sealed) == ("finished", False, None)
    assert failures(node, import_id) == []
    copied = node.gl(token).projects.get(f"{slug}/app")
    assert counts_in(node, copied.id) == (2, 2)
    assert all(e.attempts == 0 for e in entities(node, import_id))


# -- failures -----------------------------------------------------------------------------------------


def test_a_missing_source_path_fails_the_entity(node: LiveServer, make: Factory) -> None:
    _person, token, _group, project = small_source(node, make, issues=1)
    destination = node.gl(token).groups.create({"name": uid("Dst"), "path": uid("dst")})
    import_id = start(
        node, token, project_entity(project.path_with_namespace, "moved", destination.full_path)
    )
    # Gone on the source after the import was accepted.
    node.gl(token).projects.delete(project.id)
    run_job(node)
    bulk = import_row(node, import_id)
    assert (bulk.status, bulk.has_failures, bulk.access_token_sealed) == ("failed", True, None)
    (entity,) = entities(node, import_id)
    assert entity.status == "failed"
    (failure,) = failures(node, import_id)
    assert failure.exception_class == "SourceNotFound"
    assert failure.relation == "project"
    assert project.path_with_namespace in failure.exception_message
    assert not project_path_exists(node, f"{destination.full_path}/moved")


def test_a_token_refused_mid_way_leaves_no_half_project(node: LiveServer, make: Factory) -> None:
    _person, token, _group, project = small_source(node, make, issues=2)
    destination = node.gl(token).groups.create({"name": uid("Dst"), "path": uid("dst")})

    def refuse_notes(path: str) -> int | None:
        return 401 if "/notes" in path else None

    with FaultProxy(node.url, refuse_notes) as proxy:
        import_id = start(
            node,
            token,
            project_entity(project.path_with_namespace, "half", destination.full_path),
            url=proxy.url,
        )
        run_job(node)
    bulk = import_row(node, import_id)
    assert (bulk.status, bulk.has_failures, bulk.access_token_sealed) == ("failed", True, None)
    (failure,) = failures(node, import_id)
    assert (failure.exception_class, failure.relation) == ("SourceAuthError", "notes")
    assert token not in failure.exception_message
    # The project had its issues when the notes were refused: it is gone with them.
    assert not project_path_exists(node, f"{destination.full_path}/half")
    (entity,) = entities(node, import_id)
    assert (entity.status, entity.project_id) == ("failed", None)


def test_a_revoked_token_fails_the_import(node: LiveServer, make: Factory) -> None:
    _person, token, group, _project = small_source(node, make, issues=1)
    slug = uid("revoked")
    import_id = start(node, token, group_entity(group.full_path, slug))
    assert node.request("DELETE", "/personal_access_tokens/self", token=token).status_code == 204
    run_job(node)
    bulk = import_row(node, import_id)
    assert (bulk.status, bulk.access_token_sealed) == ("failed", None)
    (entity,) = entities(node, import_id)
    assert entity.status == "failed"
    assert [f.exception_class for f in failures(node, import_id)] == ["SourceAuthError"]
    with pytest.raises(gitlab.GitlabGetError):
        node.gl().groups.get(slug)


def test_a_source_url_no_longer_allowed_fails_the_import(node: LiveServer, make: Factory) -> None:
    _person, token, group, _project = small_source(node, make, issues=1)
    slug = uid("blocked")
    import_id = start(node, token, group_entity(group.full_path, slug))
    setting = "allow_local_requests_from_web_hooks_and_services"
    assert node.root("PUT", "/application/settings", json={setting: False}).status_code == 200
    try:
        run_job(node)
    finally:
        assert node.root("PUT", "/application/settings", json={setting: True}).status_code == 200
    bulk = import_row(node, import_id)
    assert (bulk.status, bulk.access_token_sealed) == ("failed", None)
    (failure,) = failures(node, import_id)
    assert failure.exception_class == "BlockedUrl"
    assert failure.exception_message.startswith("URL is blocked: ")
    with pytest.raises(gitlab.GitlabGetError):
        node.gl().groups.get(slug)


# -- cancel ---------------------------------------------------------------------------------------------


def test_cancel_stops_the_job_before_its_next_batch(
    node: LiveServer, make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _person, token, group, _project = small_source(node, make, issues=4)
    slug = uid("canceled")
    import_id = start(node, token, group_entity(group.full_path, slug))
    monkeypatch.setattr(work_module, "BATCH_SIZE", 1)
    real = stages._issues_batch

    def cancel_after_the_first_batch(work: Any, issues: list[Any], seen: int) -> None:
        real(work, issues, seen)
        # Between two batches (nothing held): the user cancels through the API.
        node.gl(token).http_post(f"/bulk_imports/{import_id}/cancel")

    monkeypatch.setattr(stages, "_issues_batch", cancel_after_the_first_batch)
    run = run_job(node)
    assert run.counts["entities stopped (import ended)"] == 1
    copied = node.gl(token).projects.get(f"{slug}/app")
    assert counts_in(node, copied.id) == (1, 0)
    bulk = import_row(node, import_id)
    assert (bulk.status, bulk.access_token_sealed) == ("canceled", None)
    assert {e.status for e in entities(node, import_id)} == {"canceled", "finished"}
    monkeypatch.setattr(stages, "_issues_batch", real)
    assert run_job(node).counts == {}
    assert counts_in(node, copied.id) == (1, 0)


# -- waking ---------------------------------------------------------------------------------------------


def test_a_new_import_starts_without_waiting_for_the_schedule(
    server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    nodes = start_server(server.backend, tmp_path_factory.mktemp("direct-transfer-jobs"), jobs="on", **FAST)
    live = next(nodes)
    with contextlib.closing(nodes):
        assert live.root("PUT", "/application/settings", json=SETTINGS).status_code == 200
        _person, token = Factory(live).user_with_token(["api"])
        group = live.gl(token).groups.create({"name": uid("Src"), "path": uid("src")})
        import_id = start(live, token, group_entity(group.full_path, uid("woken")))
        deadline = time.monotonic() + 50
        while import_row(live, import_id).status != "finished":
            assert time.monotonic() < deadline, "the import did not finish"
            time.sleep(0.1)
        with live.runtime.sessions() as db:
            woken = db.scalars(
                select(JobRunRecord).where(JobRunRecord.job_name == JOB, JobRunRecord.scheduled_for.is_(None))
            ).all()
        # A run on wake (no slot of the schedule) did it.
        assert woken
        assert import_row(live, import_id).access_token_sealed is None


def test_a_failing_subgroup_fails_what_it_queued_and_the_import_still_finishes(
    node: LiveServer, make: Factory
) -> None:
    _person, token = make.user_with_token(["api"])
    gl = node.gl(token)
    top = gl.groups.create({"name": uid("Top"), "path": uid("top")})
    sub = gl.groups.create({"name": "Sub", "path": "sub", "parent_id": top.id})
    gl.projects.create({"name": "Kept", "path": "kept", "namespace_id": top.id})
    gl.projects.create({"name": "Below", "path": "below", "namespace_id": sub.id})
    gl.groups.create({"name": "Deeper", "path": "deeper", "parent_id": sub.id})
    hidden = "/groups/" + quote(sub.full_path, safe="")

    def the_subgroup_is_gone(path: str) -> int | None:
        return 404 if path.split("?", 1)[0].endswith(hidden) else None

    slug = uid("partial")
    with FaultProxy(node.url, the_subgroup_is_gone) as proxy:
        import_id = start(node, token, group_entity(top.full_path, slug), url=proxy.url)
        run_job(node)
    bulk = import_row(node, import_id)
    # One entity finished: the import is finished, with failures (GitLab's rule).
    assert (bulk.status, bulk.has_failures, bulk.access_token_sealed) == ("finished", True, None)
    statuses = {e.source_full_path: e.status for e in entities(node, import_id)}
    assert statuses == {
        top.full_path: "finished",
        f"{top.full_path}/kept": "finished",
        sub.full_path: "failed",
    }
    (failure,) = failures(node, import_id)
    assert (failure.exception_class, failure.relation) == ("SourceNotFound", "group")
    assert project_path_exists(node, f"{slug}/kept")
    with pytest.raises(gitlab.GitlabGetError):
        gl.groups.get(f"{slug}/sub")


def test_a_failing_group_fails_the_entities_it_queued(node: LiveServer, make: Factory) -> None:
    _person, token = make.user_with_token(["api"])
    gl = node.gl(token)
    top = gl.groups.create({"name": uid("Top"), "path": uid("top")})
    gl.groups.create({"name": "Sub", "path": "sub", "parent_id": top.id})
    gl.projects.create({"name": "App", "path": "app", "namespace_id": top.id})

    def members_refused(path: str) -> int | None:
        return 403 if path.split("?", 1)[0].endswith(f"/groups/{top.id}/members") else None

    slug = uid("refused")
    with FaultProxy(node.url, members_refused) as proxy:
        import_id = start(node, token, group_entity(top.full_path, slug), url=proxy.url)
        run_job(node)
    bulk = import_row(node, import_id)
    assert (bulk.status, bulk.has_failures, bulk.access_token_sealed) == ("failed", True, None)
    rows = entities(node, import_id)
    assert {e.status for e in rows} == {"failed"}
    assert len(rows) == 3
    classes = sorted(f.exception_class for f in failures(node, import_id))
    assert classes == ["ParentFailed", "ParentFailed", "SourceAuthError"]
    assert not project_path_exists(node, f"{slug}/app")


def test_a_source_that_keeps_failing_fails_the_entity_after_its_attempts(
    node: LiveServer, make: Factory
) -> None:
    _person, token, _group, project = small_source(node, make, issues=1)
    destination = node.gl(token).groups.create({"name": uid("Dst"), "path": uid("dst")})

    def issues_always_fail(path: str) -> int | None:
        return 502 if "/issues" in path else None

    with FaultProxy(node.url, issues_always_fail) as proxy:
        import_id = start(
            node,
            token,
            project_entity(project.path_with_namespace, "flaky", destination.full_path),
            url=proxy.url,
        )
        run = run_job(node)
    # Five runs of the stage, two requests each (one retry inside the request).
    assert proxy.faults == 10
    assert run.counts["entities retried later"] == 4
    bulk = import_row(node, import_id)
    assert (bulk.status, bulk.access_token_sealed) == ("failed", None)
    (entity,) = entities(node, import_id)
    assert (entity.status, entity.attempts, entity.project_id) == ("failed", 5, None)
    (failure,) = failures(node, import_id)
    assert (failure.exception_class, failure.relation, failure.step) == (
        "SourceTransientError",
        "issues",
        "extractor",
    )
    assert "HTTP 502" in failure.exception_message
    assert not project_path_exists(node, f"{destination.full_path}/flaky")


def test_an_import_with_no_progress_for_a_day_times_out(node: LiveServer, make: Factory) -> None:
    _person, token, group, _project = small_source(node, make, issues=0)
    import_id = start(node, token, group_entity(group.full_path, uid("late")))
    node.clock.offset = dt.timedelta(hours=24, minutes=1)
    try:
        run = run_job(node)
    finally:
        node.clock.reset()
    assert run.counts["imports timed out"] == 1
    bulk = import_row(node, import_id)
    assert (bulk.status, bulk.access_token_sealed) == ("timeout", None)
    assert [e.status for e in entities(node, import_id)] == ["timeout"]
    with node.runtime.sessions() as db:
        assert db.scalar(
            select(AuditEvent.id).where(
                AuditEvent.event_name == "import.bulk_import_timed_out", AuditEvent.target_id == import_id
            )
        )


def test_without_projects_and_memberships_only_the_groups_are_copied(node: LiveServer, make: Factory) -> None:
    person, token, group, _project = small_source(node, make, issues=1)
    other, _ = make.user_with_token(["api"])
    make.member("groups", group.id, other["id"], DEVELOPER, token=token)
    slug = uid("bare")
    entity = group_entity(group.full_path, slug) | {"migrate_projects": False, "migrate_memberships": False}
    import_id = start(node, token, entity)
    run_job(node)
    assert import_row(node, import_id).status == "finished"
    assert [(e.entity_type, e.status) for e in entities(node, import_id)] == [("group", "finished")]
    copy = node.gl(token).groups.get(slug)
    assert copy.projects.list(get_all=True) == []
    assert [m.id for m in copy.members.list(get_all=True)] == [person["id"]]
