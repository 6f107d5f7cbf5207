"""Placeholder reassignment through a live server: GitLab's CSV sheet (download and upload), the
e-mail to the chosen user received by a real SMTP server, acceptance (the
``placeholder-reassignment`` job then moves every issue, note, event and membership and deletes
the placeholder), rejection, cancellation, the admin bypass, failures, and a kill -9 of
``keycrew jobs run placeholder-reassignment`` mid-way. The importer is not built yet: source users
are made with the domain's use case on the server's own database, as tests/functional/
test_placeholders.py does; accepting is the domain's use case here (the page the e-mail links to is
tested in tests/browser/test_web_placeholder_review.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, func, insert, select, text

from keycrew.access.models import Member
from keycrew.activity.models import ActivityEvent
from keycrew.audit.models import AuditEvent
from keycrew.automation.jobs import JobRun
from keycrew.automation.registry import JOBS
from keycrew.context import Actor, Ctx
from keycrew.errors import Forbidden, Unprocessable
from keycrew.identity.internal import internal_user
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.imports import reassignment
from keycrew.imports.models import ImportSourceUser
from keycrew.imports.placeholders import find_or_create_source_user
from keycrew.namespaces.models import Namespace
from keycrew.records.models import Issue, Note
from tests.functional.test_ghost_migration import add_records
from tests.support.live import Factory, LiveServer, start_server, uid
from tests.support.mail import MailSink, Received
from tests.support.processes import clean_env

SOURCE = "https://source.example.com"
JOB = "placeholder-reassignment"
HEADER = (
    "Source host,Import type,Source user identifier,Source user name,Source username,"
    "GitLab username,GitLab public email"
)
PROCESSING = {"message": "The file is being processed and you will receive an email when completed."}
NOT_ALLOWED = "You can assign active users with regular, auditor, or administrator access only."
REPORTER, DEVELOPER, MAINTAINER, OWNER = 20, 30, 40, 50

T = TypeVar("T")


# -- helpers -----------------------------------------------------------------------------------------


def source_user(server: LiveServer, group_id: int, name: str = "Bob Source") -> tuple[int, int, str]:
    """A source user of the group made as the importer makes it: (source user id, placeholder id,
    source identifier)."""
    identifier = uid("src")
    runtime = server.runtime
    with runtime.sessions() as db, db.begin():
        group = db.get(Namespace, group_id)
        assert group is not None
        found = find_or_create_source_user(
            runtime.ctx(db, Actor.system()),
            group,
            source_hostname=SOURCE,
            source_user_identifier=identifier,
            source_name=name,
            source_username=f"u{identifier}",
        )
        assert found.placeholder_user_id is not None
        return found.id, found.placeholder_user_id, identifier


def as_user(server: LiveServer, user_id: int, action: Callable[[Ctx], T]) -> T:
    """``action`` in one transaction acting as the user (as the web page will)."""
    runtime = server.runtime
    with runtime.sessions() as db, db.begin():
        user = db.get(User, user_id)
        assert user is not None
        return action(runtime.ctx(db, Actor(user, via="web")))


def row_of(server: LiveServer, source_user_id: int) -> ImportSourceUser:
    with server.runtime.sessions() as db:
        found = db.get(ImportSourceUser, source_user_id)
        assert found is not None
        db.expunge(found)
        return found


def run_job(server: LiveServer) -> JobRun:
    runtime = server.runtime
    run = JobRun(runtime.sessions, runtime.instance, runtime.clock)
    JOBS[JOB].body(run)
    return run


def add_member(server: LiveServer, source_type: str, source_id: int, user_id: int, level: int) -> None:
    now = server.clock.now()
    with server.runtime.sessions() as db, db.begin():
        db.execute(
            insert(Member).values(
                source_type=source_type,
                source_id=source_id,
                user_id=user_id,
                access_level=level,
                created_at=now,
                updated_at=now,
            )
        )


def memberships(server: LiveServer, user_id: int) -> dict[tuple[str, int], int]:
    with server.runtime.sessions() as db:
        rows = db.execute(
            select(Member.source_type, Member.source_id, Member.access_level).where(Member.user_id == user_id)
        ).all()
        return {(str(t), int(i)): int(level) for t, i, level in rows}


def authors(server: LiveServer, model: Any, ids: list[int]) -> set[int]:
    with server.runtime.sessions() as db:
        return set(db.scalars(select(model.author_id).where(model.id.in_(ids)).distinct()))


def audit_names(server: LiveServer, source_user_id: int) -> list[str]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent.event_name)
                .where(AuditEvent.target_type == "ImportSourceUser", AuditEvent.target_id == source_user_id)
                .order_by(AuditEvent.id)
            )
        )


def wait_for(sink: MailSink, to: str, subject: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
    """The messages with ``subject`` the SMTP server received for ``to``, once there are ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in sink.messages(to) if m.subject == subject]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} {subject!r} message(s) to {to}, expected {count}"
        time.sleep(0.05)


def received(sink: MailSink, to: str, subject: str) -> Received:
    return wait_for(sink, to, subject)[0]


def upload(server: LiveServer, group_id: int, token: str, body: str, filename: str = "sheet.csv") -> Any:
    return server.request(
        "POST",
        f"/groups/{group_id}/placeholder_reassignments",
        token=token,
        files={"file": (filename, body.encode(), "text/csv")},
    )


@pytest.fixture
def owned(server: LiveServer, factory: Factory) -> dict[str, Any]:
    """A top-level group (private) whose Owner is a regular user with a token."""
    owner, token = factory.user_with_token()
    group = factory.group(token=token, visibility="private")
    return {"owner": owner, "token": token, "group": group}


# -- the CSV sheet -----------------------------------------------------------------------------------


def test_download_lists_the_source_users_to_reassign(
    server: LiveServer, factory: Factory, owned: dict[str, Any]
) -> None:
    group = owned["group"]
    first, _, first_id = source_user(server, group["id"], "Bob")
    second, _, second_id = source_user(server, group["id"], "Alice")
    got = server.request("GET", f"/groups/{group['id']}/placeholder_reassignments", token=owned["token"])
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = got.headers["content-disposition"]
    assert re.fullmatch(
        rf'attachment; filename="placeholder_reassignments_for_group_{group["id"]}_\d+\.csv"', disposition
    ), disposition
    lines = got.text.splitlines()
    assert lines[0] == HEADER
    assert lines[1:] == [
        f'{SOURCE},gitlab_migration,{first_id},Bob,u{first_id},"",""',
        f'{SOURCE},gitlab_migration,{second_id},Alice,u{second_id},"",""',
    ]
    # Owners of the top-level group only: a Developer 403, a stranger 404 (private), anonymous 401.
    developer, dev_token = factory.user_with_token()
    factory.member("groups", group["id"], developer["id"], DEVELOPER)
    path = f"/groups/{group['id']}/placeholder_reassignments"
    assert server.request("GET", path, token=dev_token).status_code == 403
    _, stranger_token = factory.user_with_token()
    assert server.request("GET", path, token=stranger_token).status_code == 404
    assert server.request("GET", path).status_code == 401
    assert server.request("POST", path, token=dev_token, files={"file": ("a.csv", b"x")}).status_code == 403
    # A subgroup has no sheet of its own (its source users belong to the top-level group).
    sub = factory.group(token=owned["token"], parent_id=group["id"])
    assert (
        server.request(
            "GET", f"/groups/{sub['id']}/placeholder_reassignments", token=owned["token"]
        ).status_code
        == 403
    )
    assert row_of(server, first).status == "pending_reassignment"
    assert row_of(server, second).status == "pending_reassignment"


def test_upload_reassigns_by_username_and_email_and_refuses_the_rest(
    server: LiveServer, factory: Factory, owned: dict[str, Any], smtp_sink: MailSink
) -> None:
    group, token, owner = owned["group"], owned["token"], owned["owner"]
    by_name, _, by_name_id = source_user(server, group["id"], "Named")
    by_email, _, by_email_id = source_user(server, group["id"], "Mailed")
    to_bot, _, to_bot_id = source_user(server, group["id"], "Botted")
    to_blocked, _, to_blocked_id = source_user(server, group["id"], "Blocked")
    first, second, blocked, spare = factory.user(), factory.user(), factory.user(), factory.user()
    assert server.root("POST", f"/users/{blocked['id']}/block").status_code == 201
    with server.runtime.sessions() as db, db.begin():
        bot_username = internal_user(server.runtime.ctx(db, Actor.system()), UserType.SUPPORT_BOT).username
    sheet = "\n".join(
        [
            HEADER,
            f'{SOURCE},gitlab_migration,{by_name_id},Named,u{by_name_id},{first["username"]},""',
            f"{SOURCE},gitlab_migration,{by_email_id},Mailed,u{by_email_id},,{second['email'].upper()}",
            f"{SOURCE},gitlab_migration,{to_bot_id},Botted,u{to_bot_id},{bot_username},",
            f"{SOURCE},gitlab_migration,{to_blocked_id},Blocked,u{to_blocked_id},{blocked['username']},",
            f"{SOURCE},gitlab_migration,no-such-id,Nobody,nobody,{spare['username']},",
            f"{SOURCE},gitlab_migration,{to_bot_id},Botted,u{to_bot_id},,",
            "",
        ]
    )
    # Not a .csv file: GitLab's 422, nothing done.
    refused = upload(server, group["id"], token, sheet, filename="sheet.txt")
    assert refused.status_code == 422, refused.text
    assert refused.json() == {"message": "You must upload a CSV file with a .csv file extension."}
    assert row_of(server, by_name).status == "pending_reassignment"

    done = upload(server, group["id"], token, sheet)
    assert done.status_code == 201, done.text
    assert done.json() == PROCESSING
    assert row_of(server, by_name).status == "awaiting_approval"
    assert row_of(server, by_name).reassign_to_user_id == first["id"]
    assert row_of(server, by_email).status == "awaiting_approval"
    assert row_of(server, by_email).reassign_to_user_id == second["id"]
    assert row_of(server, to_bot).status == "pending_reassignment"
    assert row_of(server, to_blocked).status == "pending_reassignment"
    assert re.fullmatch(r"[0-9a-f]{32}", row_of(server, by_name).reassignment_token or "")

    # Each chosen user is asked by e-mail, with a link to review the reassignment.
    subject = f"Reassignments in {group['full_path']} waiting for review"
    for user, su in ((first, by_name), (second, by_email)):
        message = received(smtp_sink, user["email"], subject)
        body = message.body()
        assert f"{server.url}/import/source_users/{su}" in body
        assert owner["username"] in body
    # The uploader gets the result, with GitLab's reasons for the rows that were refused.
    result = received(
        smtp_sink, owner["email"], f"Placeholder reassignments for {group['full_path']} completed with errors"
    )
    body = result.body()
    assert "2 reassigned, 3 failed" in body
    assert f"(u{to_bot_id}): {NOT_ALLOWED}" in body
    assert f"(u{to_blocked_id}): {NOT_ALLOWED}" in body
    assert "(nobody): No matching placeholder user found" in body
    assert audit_names(server, by_name) == ["import.source_user_reassigned"]

    # The same user again for another source user of the group: refused.
    again = f"{HEADER}\n{SOURCE},gitlab_migration,{to_bot_id},Botted,u{to_bot_id},{first['username']},\n"
    assert upload(server, group["id"], token, again).status_code == 201
    body = received(
        smtp_sink, owner["email"], f"Placeholder reassignments for {group['full_path']} completed with errors"
    ).body()
    assert row_of(server, to_bot).status == "pending_reassignment"
    # The same user twice in one sheet: nothing is processed.
    twice = (
        f"{HEADER}\n{SOURCE},gitlab_migration,{to_bot_id},Botted,u{to_bot_id},{spare['username']},\n"
        f"{SOURCE},gitlab_migration,{to_blocked_id},Blocked,u{to_blocked_id},{spare['username']},\n"
    )
    assert upload(server, group["id"], token, twice).status_code == 201
    duplicated = received(
        smtp_sink,
        owner["email"],
        f"Placeholder reassignments for {group['full_path']} could not be processed",
    )
    assert "The provided spreadsheet contains duplicate email addresses or usernames." in duplicated.body()
    assert row_of(server, to_bot).status == "pending_reassignment"
    no_file = server.request(
        "POST", f"/groups/{group['id']}/placeholder_reassignments", token=token, data={"x": "1"}
    )
    assert no_file.status_code == 400, no_file.text
    # A sheet without GitLab's headers is not processed at all.
    assert upload(server, group["id"], token, "a,b\n1,2\n").status_code == 201
    subject = f"Placeholder reassignments for {group['full_path']} could not be processed"
    bad = next(m for m in wait_for(smtp_sink, owner["email"], subject, 2) if "duplicate" not in m.body())
    assert (
        "The following errors are preventing the sheet from being processed: "
        "The provided CSV was not correctly formatted."
    ) in bad.body()


# -- the state machine and the job --------------------------------------------------------------


def test_accepting_moves_every_contribution_and_membership_then_deletes_the_placeholder(
    server: LiveServer, factory: Factory, owned: dict[str, Any], smtp_sink: MailSink
) -> None:
    group, token, owner = owned["group"], owned["token"], owned["owner"]
    project = factory.project(token=token, namespace_id=group["id"])
    su, placeholder, _ = source_user(server, group["id"])
    target = factory.user()
    records = add_records(server, project["id"], placeholder, issues=30, notes=40, events=20)
    add_member(server, "Namespace", group["id"], placeholder, DEVELOPER)
    add_member(server, "Project", project["id"], placeholder, MAINTAINER)
    factory.member("projects", project["id"], target["id"], REPORTER)
    assert (server.root("GET", f"/users/{placeholder}").json()["user_type"]) == "placeholder"

    # Only Owners reassign; only the chosen user accepts.
    developer = factory.user()
    factory.member("groups", group["id"], developer["id"], MAINTAINER)
    with pytest.raises(Forbidden):
        as_user(
            server,
            developer["id"],
            lambda ctx: reassignment.reassign(ctx, su, ctx.db.get(User, target["id"])),
        )
    as_user(server, owner["id"], lambda ctx: reassignment.reassign(ctx, su, ctx.db.get(User, target["id"])))
    received(smtp_sink, target["email"], f"Reassignments in {group['full_path']} waiting for review")
    with pytest.raises(Forbidden):
        as_user(server, developer["id"], lambda ctx: reassignment.accept(ctx, su))
    # Nothing moves before the acceptance, even if the job runs.
    run_job(server)
    assert authors(server, Issue, records["issues"]) == {placeholder}

    as_user(server, target["id"], lambda ctx: reassignment.accept(ctx, su))
    assert row_of(server, su).status == "reassignment_in_progress"
    with pytest.raises(Unprocessable):
        as_user(server, target["id"], lambda ctx: reassignment.accept(ctx, su))

    run = run_job(server)
    assert run.counts["records moved"] >= 90 + 2
    assert run.counts["reassignments completed"] >= 1
    for kind, model in (("issues", Issue), ("notes", Note), ("events", ActivityEvent)):
        assert authors(server, model, records[kind]) == {target["id"]}, kind
    # The group membership moved; on the project the higher of the two levels is kept.
    assert memberships(server, target["id"]) == {
        ("Namespace", group["id"]): DEVELOPER,
        ("Project", project["id"]): MAINTAINER,
    }
    assert memberships(server, placeholder) == {}
    assert server.root("GET", f"/users/{placeholder}").status_code == 404
    done = row_of(server, su)
    assert done.status == "completed"
    assert done.reassign_to_user_id == target["id"]
    assert audit_names(server, su) == [
        "import.source_user_reassigned",
        "import.source_user_reassignment_accepted",
        "import.source_user_reassignment_completed",
    ]
    # The target sees the issues as theirs through the API.
    issues = server.root("GET", f"/projects/{project['id']}/issues", params={"per_page": 100}).json()
    assert {i["author"]["id"] for i in issues} == {target["id"]}


def test_reject_cancel_keep_and_refusals(server: LiveServer, factory: Factory, owned: dict[str, Any]) -> None:
    group, owner = owned["group"], owned["owner"]
    su, placeholder, _ = source_user(server, group["id"])
    other, _, _ = source_user(server, group["id"])
    target, second = factory.user(), factory.user()
    project = factory.project(token=owned["token"], namespace_id=group["id"])
    records = add_records(server, project["id"], placeholder, issues=3, notes=0, events=0)

    def reassign_to(user_id: int, source_user_id: int = su) -> Callable[[Ctx], Any]:
        return lambda ctx: reassignment.reassign(ctx, source_user_id, ctx.db.get(User, user_id))

    as_user(server, owner["id"], reassign_to(target["id"]))
    # The same user cannot be chosen for another source user of the group at the same time.
    with pytest.raises(Unprocessable, match="already assigned to another placeholder"):
        as_user(server, owner["id"], reassign_to(target["id"], other))
    as_user(server, target["id"], lambda ctx: reassignment.reject(ctx, su))
    assert row_of(server, su).status == "rejected"
    run_job(server)
    assert authors(server, Issue, records["issues"]) == {placeholder}
    # Rejected: the Owner may choose again, then cancel.
    as_user(server, owner["id"], reassign_to(second["id"]))
    assert row_of(server, su).status == "awaiting_approval"
    with pytest.raises(Forbidden):
        as_user(server, target["id"], lambda ctx: reassignment.accept(ctx, su))
    as_user(server, owner["id"], lambda ctx: reassignment.cancel_reassignment(ctx, su))
    cancelled = row_of(server, su)
    assert (cancelled.status, cancelled.reassign_to_user_id, cancelled.reassignment_token) == (
        "pending_reassignment",
        None,
        None,
    )
    with pytest.raises(Forbidden):
        as_user(server, second["id"], lambda ctx: reassignment.accept(ctx, su))
    as_user(server, owner["id"], lambda ctx: reassignment.keep_as_placeholder(ctx, su))
    assert row_of(server, su).status == "keep_as_placeholder"
    with pytest.raises(Unprocessable):
        as_user(server, owner["id"], reassign_to(second["id"]))
    # Deactivated users and service accounts are refused as GitLab refuses them.
    deactivated = factory.user()
    assert server.root("POST", f"/users/{deactivated['id']}/deactivate").status_code == 201
    with pytest.raises(Unprocessable, match=re.escape(NOT_ALLOWED)):
        as_user(server, owner["id"], reassign_to(deactivated["id"], other))
    account = server.root("POST", "/service_accounts", json={})
    assert account.status_code == 201, account.text
    with pytest.raises(Unprocessable, match=re.escape(NOT_ALLOWED)):
        as_user(server, owner["id"], reassign_to(account.json()["id"], other))
    assert audit_names(server, su) == [
        "import.source_user_reassigned",
        "import.source_user_reassignment_rejected",
        "import.source_user_reassigned",
        "import.source_user_reassignment_canceled",
        "import.source_user_kept_as_placeholder",
    ]


def test_an_admin_with_the_bypass_setting_skips_the_approval(
    server: LiveServer, factory: Factory, owned: dict[str, Any], smtp_sink: MailSink
) -> None:
    group = owned["group"]
    su, placeholder, _ = source_user(server, group["id"])
    target = factory.user()
    root_id = server.root("GET", "/user").json()["id"]
    assert (
        server.root("GET", "/application/settings").json()["allow_bypass_placeholder_confirmation"] is False
    )
    changed = server.root(
        "PUT", "/application/settings", json={"allow_bypass_placeholder_confirmation": True}
    )
    assert changed.status_code == 200, changed.text
    try:
        as_user(server, root_id, lambda ctx: reassignment.reassign(ctx, su, ctx.db.get(User, target["id"])))
    finally:
        server.root("PUT", "/application/settings", json={"allow_bypass_placeholder_confirmation": False})
    assert row_of(server, su).status == "reassignment_in_progress"
    run_job(server)
    assert row_of(server, su).status == "completed"
    assert server.root("GET", f"/users/{placeholder}").status_code == 404
    assert not [m for m in smtp_sink.messages(target["email"]) if "waiting for review" in m.subject]


def test_a_failing_reassignment_is_retried_then_marked_failed(
    server: LiveServer, factory: Factory, owned: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    group, owner = owned["group"], owned["owner"]
    su, _, _ = source_user(server, group["id"])
    target = factory.user()
    as_user(server, owner["id"], lambda ctx: reassignment.reassign(ctx, su, ctx.db.get(User, target["id"])))
    as_user(server, target["id"], lambda ctx: reassignment.accept(ctx, su))
    moves = reassignment.move_batch

    def broken(ctx: Ctx, source_user_id: int, limit: int = 1) -> Any:
        if source_user_id == su:
            raise RuntimeError("disk on fire")
        return moves(ctx, source_user_id, limit)

    monkeypatch.setattr(reassignment, "move_batch", broken)
    for attempt in range(1, reassignment.MAX_ATTEMPTS + 1):
        run_job(server)
        row = row_of(server, su)
        assert row.reassignment_attempts == attempt
        assert row.reassignment_error == "RuntimeError: disk on fire"
        expected = "failed" if attempt == reassignment.MAX_ATTEMPTS else "reassignment_in_progress"
        assert row.status == expected
    assert audit_names(server, su)[-1] == "import.source_user_reassignment_failed"


# -- kill -9 of `keycrew jobs run placeholder-reassignment` --------------------------------------

SLOW_JOB = textwrap.dedent(
    """
    import sys, time
    from keycrew.imports import reassignment

    reassignment.BATCH_SIZE = 100
    move = reassignment.move_batch

    def slow(*args, **kwargs):
        done = move(*args, **kwargs)
        time.sleep(0.05)
        return done

    reassignment.move_batch = slow
    from keycrew.cli import main

    sys.argv = ["keycrew", "jobs", "run", "placeholder-reassignment"]
    main()
    """
)


@pytest.fixture
def own_server(server: LiveServer, tmp_path: Path) -> Iterator[LiveServer]:
    nodes = start_server(server.backend, tmp_path / "node")
    try:
        yield next(nodes)
    finally:
        nodes.close()


def test_kill_9_mid_run_then_rerun_completes_exactly(own_server: LiveServer) -> None:
    server = own_server
    factory = Factory(server)
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    project = factory.project(token=token, namespace_id=group["id"])
    su, placeholder, _ = source_user(server, group["id"])
    target = factory.user()
    records = add_records(server, project["id"], placeholder, issues=1500, notes=1500, events=500)
    total = 3500
    as_user(server, owner["id"], lambda ctx: reassignment.reassign(ctx, su, ctx.db.get(User, target["id"])))
    as_user(server, target["id"], lambda ctx: reassignment.accept(ctx, su))

    env = clean_env(
        server.data_dir,
        KEYCREW_DATABASE_URL=str(server.runtime.settings.database_url),
        KEYCREW_EXTERNAL_URL=server.url,
    )
    watcher = create_engine(server.runtime.settings.database_url)

    def by(user_id: int) -> int:
        with watcher.connect() as conn:
            return sum(
                int(
                    conn.execute(
                        text(f"SELECT count(*) FROM {table} WHERE author_id = :u"), {"u": user_id}
                    ).scalar()
                    or 0
                )
                for table in ("issues", "notes", "events")
            )

    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_JOB],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while by(target["id"]) < 1000:
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
    assert proc.returncode == -signal.SIGKILL
    moved, left = by(target["id"]), by(placeholder)
    watcher.dispose()
    assert 0 < moved < total
    assert moved + left == total
    assert row_of(server, su).status == "reassignment_in_progress"

    run = run_job(server)

    assert run.counts["records moved"] == left
    for kind, model in (("issues", Issue), ("notes", Note), ("events", ActivityEvent)):
        assert authors(server, model, records[kind]) == {target["id"]}, kind
    assert row_of(server, su).status == "completed"
    assert server.root("GET", f"/users/{placeholder}").status_code == 404
    with server.runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(User).where(User.id == placeholder)) == 0
