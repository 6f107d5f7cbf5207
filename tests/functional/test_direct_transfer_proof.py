"""The proof of direct transfer (issue 15): two keycrew servers, a source populated with the real
clients (python-gitlab, git, twine) and a destination that imports it with python-gitlab's
``gl.bulk_imports.create(...)``, compared afterwards as a user of both would compare them: the
group tree and its paths, issues and notes, their authors (placeholders; GitLab Migration Bot for
the source's Ghost User), memberships, the repositories' refs (``git ls-remote``) and the package
(``pip download``). Then the placeholders' contributions reassigned with GitLab's CSV sheet, the
e-mail and the review page; and a kill -9 of the destination's ``keycrew serve`` mid-import, after
which the restarted server finishes the import with nothing copied twice.

The source always runs on SQLite; the destination on each backend (PostgreSQL with
KEYCREW_TEST_POSTGRES=1). Both listen on 127.0.0.1, which the destination is told to allow.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gitlab
import pytest
import requests
from gitlab.v4.objects import BulkImport
from sqlalchemy import update

from keycrew.automation.runs import CLI, SKIPPED, SUCCEEDED, run_job
from keycrew.db.engine import make_engine
from keycrew.instance.jobs import JobLease
from tests.support import hygiene
from tests.support.live import (
    BACKENDS,
    ROOT_TOKEN,
    Factory,
    LiveServer,
    PgDatabase,
    free_port,
    start_server,
    uid,
)
from tests.support.mail import MailSink, Received
from tests.support.populate import (
    MAINTAINER,
    GatedProxy,
    Populated,
    Tree,
    later_issue_pages,
    ls_remote,
    pip_download,
    placeholder_username,
    populate,
    populate_many_issues,
    push_repository,
    read_tree,
    user_ids,
    users,
)
from tests.support.processes import KEYCREW, Running, clean_env
from tests.support.web import csrf_of, signed_in

ENDED = ("finished", "failed", "timeout", "canceled")
IMPORT_TIMEOUT = 150.0
# A restarted node resumes at the job's next slot (every minute) once the dead node's lease lapsed.
RESUME_TIMEOUT = 240.0
BIG = 300
JOB = "bulk-imports"


# -- the servers -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The source instance (SQLite), shared by the module's tests."""
    yield from start_server("sqlite", tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def populated(source: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Populated:
    """The issue's group tree on the source (tests/support/populate.py), made once: the tests
    import it into new groups of their own."""
    return populate(source, tmp_path_factory.mktemp("populate"))


@pytest.fixture(scope="module")
def source_token(source: LiveServer) -> str:
    """An ``api`` token of the source's admin: what a user pastes into the import form."""
    root_id = source.root("GET", "/user").json()["id"]
    return Factory(source).token(root_id, ["api"])


def allow_imports(gl: gitlab.Gitlab) -> None:
    """Direct transfer on, and requests to 127.0.0.1 (where the source listens) allowed."""
    settings = gl.settings.get()
    settings.bulk_import_enabled = True
    settings.allow_local_requests_from_web_hooks_and_services = True
    settings.save()


@pytest.fixture(scope="module", params=BACKENDS)
def destination(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, smtp_sink: MailSink
) -> Iterator[LiveServer]:
    """The destination, with its background jobs on (the bulk-imports job runs the import) and its
    e-mail to the session's SMTP sink. When it stops, its database holds no token value of the
    session in clear (the source's token included, sealed while an import runs)."""
    nodes = start_server(
        request.param,
        tmp_path_factory.mktemp(f"destination-{request.param}"),
        jobs="on",
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
    )
    live = next(nodes)
    try:
        allow_imports(live.gl())
        yield live
        assert hygiene.tables_storing(live, hygiene.ISSUED_TOKENS) == []
    finally:
        nodes.close()


# -- importing -------------------------------------------------------------------------------------


def start_import(gl: gitlab.Gitlab, source_url: str, token: str, top: str, slug: str) -> BulkImport:
    created = gl.bulk_imports.create(
        {
            "configuration": {"url": source_url, "access_token": token},
            "entities": [
                {
                    "source_type": "group_entity",
                    "source_full_path": top,
                    "destination_slug": slug,
                    "destination_namespace": "",
                }
            ],
        }
    )
    assert created.status in ("created", "started"), created.asdict()
    assert created.source_type == "gitlab"
    return created


def entities_of(gl: gitlab.Gitlab, import_id: int) -> list[dict[str, Any]]:
    listed = gl.bulk_imports.get(import_id, lazy=True).entities.list(get_all=True)
    return [e.asdict() for e in listed]


def wait_finished(gl: gitlab.Gitlab, import_id: int, timeout: float = IMPORT_TIMEOUT) -> BulkImport:
    """Poll the import until it ends (bounded); it must end ``finished``."""
    deadline = time.monotonic() + timeout
    while True:
        found = gl.bulk_imports.get(import_id)
        if found.status in ENDED:
            break
        assert time.monotonic() < deadline, (
            f"import {import_id} still {found.status} after {timeout} s: {entities_of(gl, import_id)}"
        )
        time.sleep(0.25)
    assert found.status == "finished", (found.asdict(), entities_of(gl, import_id))
    return found


def run_import(destination: LiveServer, source: LiveServer, token: str, top: str, slug: str) -> BulkImport:
    gl = destination.gl()
    created = start_import(gl, source.url, token, top, slug)
    return wait_finished(gl, created.id)


# -- comparing -------------------------------------------------------------------------------------


def mapped_users(before: Tree, after: Tree) -> dict[int, int]:
    """Each source author's destination user, read from the issues and notes in order: one each."""
    pairs: set[tuple[int, int]] = set()
    for rel, issues in before.issues.items():
        for src, dst in zip(issues, after.issues[rel], strict=True):
            pairs.add((src["author"], dst["author"]))
        for iid, notes in before.notes[rel].items():
            for (_, src_author), (_, dst_author) in zip(notes, after.notes[rel][iid], strict=True):
                pairs.add((src_author, dst_author))
    mapping: dict[int, int] = {}
    for src_id, dst_id in pairs:
        assert mapping.setdefault(src_id, dst_id) == dst_id, f"source user {src_id} has two authors"
    return mapping


def assert_same_records(before: Tree, after: Tree) -> None:
    """The same groups, projects, issues and notes (authors aside: they map, checked apart)."""
    assert sorted(after.groups) == sorted(before.groups)
    for rel, group in before.groups.items():
        copied = after.groups[rel]
        assert (copied["name"], copied["description"], copied["visibility"]) == (
            group["name"],
            group["description"],
            group["visibility"],
        ), rel
        if rel:
            assert copied["path"] == group["path"]
    assert sorted(after.projects) == sorted(before.projects)
    for rel, project in before.projects.items():
        copied = after.projects[rel]
        for key in ("name", "path", "description", "visibility"):
            assert copied[key] == project[key], (rel, key)
    strip = ("author",)
    for rel, issues in before.issues.items():
        assert [{k: v for k, v in i.items() if k not in strip} for i in after.issues[rel]] == [
            {k: v for k, v in i.items() if k not in strip} for i in issues
        ], rel
        assert {iid: [body for body, _ in notes] for iid, notes in after.notes[rel].items()} == {
            iid: [body for body, _ in notes] for iid, notes in before.notes[rel].items()
        }, rel


def assert_authors(
    source_users: dict[int, dict[str, Any]], dest_users: dict[int, dict[str, Any]], mapping: dict[int, int]
) -> None:
    """Humans (and bots) of the source → a placeholder each, named as GitLab names them; the
    source's Ghost User → GitLab Migration Bot."""
    placeholders = [d for s, d in mapping.items() if source_users[s]["user_type"] != "ghost"]
    assert len(set(placeholders)) == len(placeholders), "one placeholder per source user"
    for src_id, dst_id in mapping.items():
        src, dst = source_users[src_id], dest_users[dst_id]
        if src["user_type"] == "ghost":
            assert (dst["user_type"], dst["name"]) == ("migration_bot", "GitLab Migration Bot"), dst
            continue
        assert dst["user_type"] == "placeholder", (src["username"], dst)
        assert placeholder_username(src["username"]).fullmatch(dst["username"]), (src["username"], dst)
        assert dst["name"] == f"Placeholder {src['name']}", dst
        assert dst["bot"] is False
        assert dst["state"] == "active"


def assert_memberships(
    before: Tree,
    after: Tree,
    source_users: dict[int, dict[str, Any]],
    dest_users: dict[int, dict[str, Any]],
    importer: int,
) -> None:
    """Every direct member of every source group and project is a member of its copy at the same
    level, as their placeholder; nobody else is but the importer (the Owner of the new group)."""
    for container, levels in before.members.items():
        copied = dict(after.members[container])
        for src_id, level in levels.items():
            pattern = placeholder_username(source_users[src_id]["username"])
            matches = [u for u in copied if pattern.fullmatch(dest_users[u]["username"])]
            assert len(matches) == 1, (container, source_users[src_id]["username"], copied)
            assert copied.pop(matches[0]) == level, (container, source_users[src_id]["username"])
        assert set(copied) <= {importer}, (container, {dest_users[u]["username"] for u in copied})


def reassignment_sheet(destination: LiveServer, group_id: int) -> list[dict[str, str]]:
    """GitLab's placeholder reassignment CSV of a group, as its rows."""
    sheet = destination.root("GET", f"/groups/{group_id}/placeholder_reassignments")
    assert sheet.status_code == 200, sheet.text
    return list(csv.DictReader(io.StringIO(sheet.text)))


def mail_about(sink: MailSink, to: str, subject: str, timeout: float = 15.0) -> Received:
    """The message to ``to`` with ``subject``, once the SMTP sink has it (bounded)."""
    deadline = time.monotonic() + timeout
    while not (found := [m for m in sink.messages(to) if m.subject == subject]):
        assert time.monotonic() < deadline, f"no {subject!r} to {to}"
        time.sleep(0.05)
    (message,) = found
    return message


# -- the proof -------------------------------------------------------------------------------------


def test_direct_transfer_copies_the_group_tree_as_gitlab(
    source: LiveServer, populated: Populated, source_token: str, destination: LiveServer, tmp_path: Path
) -> None:
    slug = uid("copy")
    done = run_import(destination, source, source_token, populated.top, slug)
    gl = destination.gl()
    assert done.source_url == source.url
    assert done.has_failures is False

    # The entities: each group and project of the tree, finished, without failures.
    entities = entities_of(gl, done.id)
    top = populated.top
    expected = {
        (top, "group"),
        (f"{top}/sub", "group"),
        (f"{top}/sub/leaf", "group"),
        (f"{top}/app", "project"),
        (f"{top}/sub/lib", "project"),
    }
    assert {(e["source_full_path"], e["entity_type"]) for e in entities} == expected
    for entity in entities:
        assert entity["status"] == "finished", entity
        assert entity["bulk_import_id"] == done.id
        assert entity["has_failures"] is False, entity
        assert entity["failures"] == [], entity
        rel = entity["source_full_path"].removeprefix(top)
        assert entity["destination_full_path"] == slug + rel, entity
    (top_entity,) = [e for e in entities if e["source_full_path"] == top]
    assert (top_entity["destination_slug"], top_entity["destination_namespace"]) == (slug, "")
    issues_stats = [e["stats"]["issues"] for e in entities if e["entity_type"] == "project"]
    assert all(s["source"] == s["imported"] == 4 for s in issues_stats), issues_stats
    everyone = {e.id for e in gl.bulk_import_entities.list(get_all=True)}
    assert {e["id"] for e in entities} <= everyone

    # The tree, its records, their authors and the memberships.
    before = read_tree(source, top)
    after = read_tree(destination, slug)
    assert after.top["full_path"] == slug
    assert_same_records(before, after)
    source_users = users(source, user_ids(before))
    dest_users = users(destination, user_ids(after))
    mapping = mapped_users(before, after)
    assert set(mapping) == {i["author"] for v in before.issues.values() for i in v} | {
        a for v in before.notes.values() for notes in v.values() for _, a in notes
    }
    assert {source_users[s]["user_type"] for s in mapping} == {"human", "ghost", "project_bot"}
    assert_authors(source_users, dest_users, mapping)
    importer = destination.root("GET", "/user").json()["id"]
    assert_memberships(before, after, source_users, dest_users, importer)
    # One source user each (awaiting reassignment) for the people, the bot and the service account;
    # none for the source's Ghost User nor for the person deleted before the import.
    rows = reassignment_sheet(destination, after.top["id"])
    assert sorted(r["Source username"] for r in rows) == sorted(
        [
            "root",
            populated.people["alice"]["username"],
            populated.people["bob"]["username"],
            populated.bot["username"],
            populated.service_account["username"],
        ]
    )
    assert {(r["Source host"], r["Import type"]) for r in rows} == {(source.url, "gitlab_migration")}

    # The repositories: the same refs at the same commits.
    for project in populated.projects:
        copied = ls_remote(tmp_path, destination.url, f"{slug}/{project}", ROOT_TOKEN)
        assert copied == ls_remote(tmp_path, source.url, f"{top}/{project}", ROOT_TOKEN), project

    # The package: listed, and pip downloads the very file that was uploaded.
    package = populated.package
    assert package is not None
    app_id = after.projects[package.project]["id"]
    listed = gl.projects.get(app_id, lazy=True).packages.list(get_all=True)
    assert [(p.name, p.version, p.package_type) for p in listed] == [(package.name, package.version, "pypi")]
    downloaded = pip_download(
        destination.url, app_id, ROOT_TOKEN, package.name, package.version, tmp_path / "pip"
    )
    assert downloaded.name == package.filename
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == package.sha256

    # The source's token is not kept in clear anywhere once the import ended.
    assert hygiene.tables_storing(destination, [source_token]) == []


def test_placeholders_contributions_reassigned_with_the_csv_sheet(
    source: LiveServer,
    populated: Populated,
    source_token: str,
    destination: LiveServer,
    smtp_sink: MailSink,
) -> None:
    slug = uid("reas")
    run_import(destination, source, source_token, populated.top, slug)
    gl = destination.gl()
    group = gl.groups.get(slug)
    alice = populated.people["alice"]
    person = Factory(destination).user()
    pattern = placeholder_username(alice["username"])
    (placeholder,) = [m.id for m in group.members.list(get_all=True) if pattern.fullmatch(m.username)]

    # GitLab's sheet: one row per source user; fill alice's with a person of the destination.
    rows = reassignment_sheet(destination, group.id)
    by_username = {r["Source username"]: r for r in rows}
    assert {alice["username"], populated.people["bob"]["username"], "root"} <= set(by_username)
    by_username[alice["username"]]["GitLab username"] = person["username"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    uploaded = destination.root(
        "POST",
        f"/groups/{group.id}/placeholder_reassignments",
        files={"file": ("sheet.csv", out.getvalue().encode(), "text/csv")},
    )
    assert uploaded.status_code == 201, uploaded.text

    # The chosen person is asked by e-mail, and approves on the page it links to.
    message = mail_about(smtp_sink, person["email"], f"Reassignments in {slug} waiting for review")
    link = re.search(rf"{re.escape(destination.url)}(/import/source_users/\d+)", message.body())
    assert link, message.body()
    http, _ = signed_in(destination.url, person["username"], "a-long-password-1")
    page = http.get(destination.url + link.group(1), timeout=30)
    assert page.status_code == 200
    assert alice["username"] in page.text
    approved = http.post(
        f"{destination.url}{link.group(1)}/accept",
        data={"authenticity_token": csrf_of(page.text)},
        timeout=30,
        allow_redirects=False,
    )
    assert approved.status_code == 303, approved.text

    # The job moves alice's placeholder's issues, notes and memberships to the person.
    deadline = time.monotonic() + 60
    while True:
        ran = run_job(
            destination.runtime.sessions,
            destination.runtime.instance,
            destination.runtime.clock,
            "placeholder-reassignment",
            trigger=CLI,
        )
        if ran.status != SKIPPED:
            break
        assert time.monotonic() < deadline, ran.reason
        time.sleep(0.5)
    assert ran.status == SUCCEEDED, ran.error
    before = read_tree(source, populated.top)
    after = read_tree(destination, slug)
    for rel, issues in before.issues.items():
        for src, dst in zip(issues, after.issues[rel], strict=True):
            if src["author"] == alice["id"]:
                assert dst["author"] == person["id"], (rel, dst)
            else:
                assert dst["author"] != person["id"], (rel, dst)
        for iid, notes in before.notes[rel].items():
            for (_, src_author), (_, dst_author) in zip(notes, after.notes[rel][iid], strict=True):
                assert (dst_author == person["id"]) == (src_author == alice["id"]), (rel, iid)
    assert after.members["group:"][person["id"]] == MAINTAINER
    # Her placeholder is gone (its personal namespace too); the others' stay.
    assert destination.root("GET", f"/users/{placeholder}").status_code == 404
    left = {r["Source username"] for r in reassignment_sheet(destination, group.id)}
    assert alice["username"] not in left
    assert populated.people["bob"]["username"] in left


# -- kill -9 mid-import ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big(source: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Populated:
    """A group with one project of BIG issues (and a repository) on the source."""
    made = populate_many_issues(source, BIG)
    push_repository(source, tmp_path_factory.mktemp("big"), f"{made.top}/big")
    return made


def serve(tmp: Path, data_dir: Path, port: int, database_url: str) -> Running:
    """`keycrew serve` as a real process on ``data_dir`` and ``database_url``, its jobs on."""
    running = Running.start(
        [*KEYCREW, "serve", "--port", str(port)],
        env=clean_env(
            data_dir,
            KEYCREW_DATABASE_URL=database_url,
            KEYCREW_INITIAL_ROOT_TOKEN=ROOT_TOKEN,
            KEYCREW_EXTERNAL_URL=f"http://127.0.0.1:{port}",
            KEYCREW_JOBS="on",
        ),
        cwd=tmp,
        stderr_path=tmp / f"serve-{time.monotonic_ns()}.stderr",
    )
    try:
        running.wait_http(f"http://127.0.0.1:{port}/-/health", 60)
    except BaseException:
        running.kill_group()
        raise
    return running


def lapse_lease(database_url: str, job: str) -> None:
    """What a minute without heartbeats does to a dead node's lease (LEASE_SECONDS), at once:
    the restarted node may take the job over without the test waiting for it."""
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(JobLease)
                .where(JobLease.name == job)
                .values(lease_until=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
            )
    finally:
        engine.dispose()


def imported_issues(gl: gitlab.Gitlab, import_id: int) -> int:
    """The issues the project entity's stats say are in so far (GitLab's per-relation stats)."""
    for entity in entities_of(gl, import_id):
        if entity["entity_type"] == "project":
            return int(entity["stats"].get("issues", {}).get("imported", 0))
    return 0


def issue_count(url: str, full_path: str) -> int:
    """How many issues the destination's API shows in a project (0 before the project exists)."""
    found = requests.get(
        f"{url}/api/v4/projects/{quote(full_path, safe='')}/issues",
        params={"scope": "all", "state": "all", "per_page": "1"},
        headers={"PRIVATE-TOKEN": ROOT_TOKEN},
        timeout=30,
    )
    return int(found.headers.get("X-Total", 0)) if found.status_code == 200 else 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_mid_import_then_restart_finishes_without_duplicates(
    backend: str, source: LiveServer, big: Populated, source_token: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    pg = PgDatabase.create() if backend == "postgresql" else None
    database_url = pg.url if pg is not None else f"sqlite:///{data_dir / 'keycrew.sqlite3'}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    project_id = source.gl().projects.get(f"{big.top}/big").id
    slug = uid("kill")
    runs: list[Running] = []
    try:
        with GatedProxy(source.url, later_issue_pages(project_id)) as proxy:
            runs.append(serve(tmp_path, data_dir, port, database_url))
            gl = gitlab.Gitlab(url, private_token=ROOT_TOKEN)
            allow_imports(gl)
            created = start_import(gl, proxy.url, source_token, big.top, slug)

            # The first page of issues is in, the second held at the gate: kill -9 now.
            proxy.wait_held(IMPORT_TIMEOUT)
            deadline = time.monotonic() + 30
            while (so_far := imported_issues(gl, created.id)) == 0:
                assert time.monotonic() < deadline, entities_of(gl, created.id)
                time.sleep(0.1)
            assert 0 < so_far < BIG
            assert 0 < issue_count(url, f"{slug}/big") < BIG
            assert gl.bulk_imports.get(created.id).status == "started"
            killed = runs[0].proc
            os.killpg(killed.pid, signal.SIGKILL)
            killed.wait(timeout=30)
            assert killed.returncode == -signal.SIGKILL
            proxy.release()

            # Restarted on the same data: the import goes on from where it stopped.
            lapse_lease(database_url, JOB)
            runs.append(serve(tmp_path, data_dir, port, database_url))
            wait_finished(gl, created.id, RESUME_TIMEOUT)
            (project_entity,) = [e for e in entities_of(gl, created.id) if e["entity_type"] == "project"]
            assert project_entity["stats"]["issues"]["imported"] == BIG, project_entity
            assert project_entity["has_failures"] is False, project_entity
            assert gl.bulk_imports.get(created.id).has_failures is False

        copied = gl.projects.get(f"{slug}/big")
        issues = copied.issues.list(get_all=True, scope="all", state="all")
        iids = [i.iid for i in issues]
        assert len(iids) == len(set(iids)) == BIG
        assert sorted(iids) == list(range(1, BIG + 1))
        assert {i.iid: i.title for i in issues} == {n: f"issue {n}" for n in range(1, BIG + 1)}
        for iid in range(50, BIG + 1, 50):
            bodies = [
                n.body for n in copied.issues.get(iid, lazy=True).notes.list(get_all=True) if not n.system
            ]
            assert bodies == [f"note on {iid}"], iid
        assert {i.iid: i.user_notes_count for i in issues} == {n: int(n % 50 == 0) for n in range(1, BIG + 1)}
        remote = ls_remote(tmp_path, source.url, f"{big.top}/big", ROOT_TOKEN)
        assert len(remote) >= 3  # HEAD, the branches and the tag
        assert ls_remote(tmp_path, url, f"{slug}/big", ROOT_TOKEN) == remote
        # Neither node logged the source's token, not even while being killed mid-request.
        for running in runs:
            assert source_token not in running.output()
    finally:
        for running in runs:
            running.kill_group()
        if pg is not None:
            pg.drop()
