"""Webhooks: project, group and system hooks through python-gitlab and raw HTTP, delivered to a real
HTTP receiver on 127.0.0.1, on both databases."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gitlab
import pytest
from sqlalchemy import func, select

from keycrew.context import Actor
from keycrew.namespaces.models import Project
from keycrew.tokens.models import PersonalAccessToken
from keycrew.webhooks import urls
from keycrew.webhooks.delivery import DeliveryWorker
from keycrew.webhooks.models import WebHook, WebHookDelivery, WebHookLog
from keycrew.webhooks.resource_tokens import fire_expiring
from keycrew.webhooks.service import queue
from tests.support.git import Git, repo_url
from tests.support.live import Factory, LiveServer, uid
from tests.support.receiver import Receiver

LOCAL = "allow_local_requests_from_web_hooks_and_services"
LOCAL_SYSTEM = "allow_local_requests_from_system_hooks"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    try:
        yield found
    finally:
        found.stop()


def _settings(server: LiveServer, **values: bool) -> None:
    response = server.root("PUT", "/application/settings", json=values)
    assert response.status_code == 200, response.text
    for name, value in values.items():
        assert response.json()[name] is value


@pytest.fixture
def local_allowed(server: LiveServer) -> Iterator[None]:
    """Hooks may reach the receiver on 127.0.0.1 (GitLab's defaults restored afterwards)."""
    _settings(server, **{LOCAL: True, LOCAL_SYSTEM: True})
    yield
    _settings(server, **{LOCAL: False, LOCAL_SYSTEM: True})


def _path() -> str:
    return "/" + uid("hook")


def _hook_row(server: LiveServer, hook_id: int) -> WebHook:
    with server.runtime.sessions() as db:
        row = db.get(WebHook, hook_id)
        assert row is not None
        db.expunge(row)
        return row


# -- CRUD ------------------------------------------------------------------------------------
def test_project_hooks_crud_with_python_gitlab(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    project = gl.projects.get(factory.project()["id"])
    url = receiver.url + _path()
    hook = project.hooks.create(
        {
            "url": url,
            "name": "ci",
            "description": "the CI bridge",
            "token": "hook-secret-1",
            "issues_events": True,
            "resource_access_token_events": True,
            "push_events_branch_filter": "main",
        }
    )
    data = hook.attributes
    assert "token" not in data
    assert data["url"] == url
    assert data["name"] == "ci"
    assert data["project_id"] == project.id
    assert data["push_events"] is True  # GitLab's default
    assert data["issues_events"] is True
    assert data["note_events"] is False
    assert data["resource_access_token_events"] is True
    assert data["enable_ssl_verification"] is True
    assert data["alert_status"] == "executable"
    assert data["disabled_until"] is None
    assert data["branch_filter_strategy"] == "wildcard"
    assert data["push_events_branch_filter"] == "main"
    assert [h.id for h in project.hooks.list()] == [hook.id]

    fetched = project.hooks.get(hook.id)
    assert "token" not in fetched.attributes
    fetched.note_events = True
    fetched.push_events = False
    fetched.save()
    again = project.hooks.get(hook.id)
    assert again.note_events is True
    assert again.push_events is False
    assert again.issues_events is True

    # The token is kept encrypted, never as given.
    row = _hook_row(server, hook.id)
    assert row.encrypted_token is not None
    assert "hook-secret-1" not in row.encrypted_token

    again.delete()
    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.hooks.get(hook.id)
    assert missing.value.response_code == 404
    assert project.hooks.list() == []


def test_group_and_system_hooks_crud(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    group = gl.groups.get(factory.group()["id"])
    hook = group.hooks.create({"url": receiver.url + _path(), "member_events": True, "subgroup_events": True})
    assert hook.group_id == group.id
    assert hook.member_events is True
    assert hook.project_events is False
    assert "token" not in hook.attributes
    hook.project_events = True
    hook.save()
    assert group.hooks.get(hook.id).project_events is True
    hook.delete()
    assert group.hooks.list() == []

    system = gl.hooks.create({"url": receiver.url + _path(), "token": "sys-secret", "push_events": False})
    try:
        listed = {h.id: h for h in gl.hooks.list(get_all=True)}
        assert system.id in listed
        got = gl.hooks.get(system.id)
        assert "token" not in got.attributes
        assert got.repository_update_events is True  # system hooks' default
        assert got.push_events is False
        assert "member_events" not in got.attributes
    finally:
        system.delete()
    with pytest.raises(gitlab.GitlabGetError):
        gl.hooks.get(system.id)


def test_hook_errors_have_gitlab_shapes(
    server: LiveServer, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    project = factory.project()
    base = f"/projects/{project['id']}/hooks"
    missing_url = server.root("POST", base, json={"push_events": True})
    assert missing_url.status_code == 400
    assert missing_url.json() == {"error": "url is missing"}
    bad = server.root("POST", base, json={"url": "not a url"})
    assert bad.status_code == 422
    assert bad.json() == {"message": "Invalid url given"}
    created = server.root("POST", base, json={"url": receiver.url + _path()})
    assert created.status_code == 201
    hook_id = created.json()["id"]
    empty = server.root("PUT", f"{base}/{hook_id}", json={})
    assert empty.status_code == 400
    assert empty.json() == {"error": "No parameters provided"}
    regex = server.root(
        "PUT",
        f"{base}/{hook_id}",
        json={"branch_filter_strategy": "regex", "push_events_branch_filter": "(["},
    )
    assert regex.status_code == 422
    assert regex.json() == {"message": "Invalid branch filter given"}
    assert server.root("GET", f"{base}/999999999").status_code == 404
    assert server.root("GET", f"{base}/999999999").json() == {"message": "404 Hook Not Found"}
    assert server.root("DELETE", f"{base}/{hook_id}").status_code == 204
    assert server.root("DELETE", f"{base}/{hook_id}").status_code == 404


def test_only_maintainers_manage_project_hooks_and_owners_group_hooks(
    server: LiveServer, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    project = factory.project()
    group = factory.group()
    developer, dev_token = factory.user_with_token()
    maintainer, maint_token = factory.user_with_token()
    _outsider, outsider_token = factory.user_with_token()
    factory.member("projects", project["id"], developer["id"], 30)
    factory.member("projects", project["id"], maintainer["id"], 40)
    factory.member("groups", group["id"], maintainer["id"], 40)
    body = {"url": receiver.url + _path()}
    assert server.request("GET", f"/projects/{project['id']}/hooks", token=dev_token).status_code == 403
    assert (
        server.request("POST", f"/projects/{project['id']}/hooks", token=dev_token, json=body).status_code
        == 403
    )
    made = server.request("POST", f"/projects/{project['id']}/hooks", token=maint_token, json=body)
    assert made.status_code == 201
    # Group hooks need the Owner role.
    assert (
        server.request("POST", f"/groups/{group['id']}/hooks", token=maint_token, json=body).status_code
        == 403
    )
    # A private project the caller cannot see is a 404, and system hooks are for admins.
    assert server.request("GET", f"/projects/{project['id']}/hooks", token=outsider_token).status_code == 404
    assert server.request("GET", "/hooks", token=maint_token).status_code == 403


# -- local network -----------------------------------------------------------------------------
def test_local_urls_are_refused_at_save_unless_allowed(server: LiveServer, factory: Factory) -> None:
    _settings(server, **{LOCAL: False})
    project = factory.project()
    base = f"/projects/{project['id']}/hooks"
    for url in (
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "http://0.0.0.0/x",
        "ftp://example.com/x",
        "file:///etc/passwd",
    ):
        refused = server.root("POST", base, json={"url": url})
        assert refused.status_code == 422, url
        assert refused.json() == {"message": "Invalid url given"}
    assert server.root("GET", base).json() == []
    # System hooks may reach the local network by default (allow_local_requests_from_system_hooks).
    system = server.root("POST", "/hooks", json={"url": "http://127.0.0.1:9/system"})
    assert system.status_code == 201
    assert server.root("DELETE", f"/hooks/{system.json()['id']}").status_code == 204
    _settings(server, **{LOCAL_SYSTEM: False})
    try:
        assert server.root("POST", "/hooks", json={"url": "http://127.0.0.1:9/system"}).status_code == 422
    finally:
        _settings(server, **{LOCAL_SYSTEM: True})


def test_a_name_that_resolves_to_loopback_is_blocked_at_delivery(
    server: LiveServer, factory: Factory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name resolved to a public address when saved, to 127.0.0.1 when sent."""
    answers = {"rebind.example": ["93.184.216.34"]}
    monkeypatch.setattr(urls, "resolve", lambda host, port: answers[host])
    _settings(server, **{LOCAL: False})
    project = factory.project(initialize_with_readme=True)
    path = _path()
    made = server.root(
        "POST",
        f"/projects/{project['id']}/hooks",
        json={"url": f"http://rebind.example:{receiver.port}{path}"},
    )
    assert made.status_code == 201, made.text
    hook_id = made.json()["id"]
    answers["rebind.example"] = ["127.0.0.1"]
    tested = server.root("POST", f"/projects/{project['id']}/hooks/{hook_id}/test/push_events")
    assert tested.status_code == 422
    assert tested.json() == {"message": "Requests to localhost are not allowed"}
    assert receiver.received(path) == []
    log = server.root("GET", f"/projects/{project['id']}/hooks/{hook_id}/events").json()
    assert log[0]["response_status"] == "internal error"
    assert log[0]["internal_error_message"] == "Requests to localhost are not allowed"

    # Allowed, the request goes to the address that was checked, named as the URL names it.
    _settings(server, **{LOCAL: True})
    try:
        ok = server.root("POST", f"/projects/{project['id']}/hooks/{hook_id}/test/push_events")
        assert ok.status_code == 201, ok.text
        (request,) = receiver.wait_for(1, path)
        assert request.header("Host") == f"rebind.example:{receiver.port}"
    finally:
        _settings(server, **{LOCAL: False})


# -- test endpoints and delivery headers -------------------------------------------------------
def test_hook_test_sends_a_push_with_gitlab_headers(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    project = gl.projects.get(factory.project(initialize_with_readme=True)["id"])
    path = _path()
    hook = project.hooks.create({"url": receiver.url + path, "token": "line\nbreak-secret"})
    hook.test("push_events")
    (request,) = receiver.wait_for(1, path)
    assert request.header("Content-Type") == "application/json"
    assert (request.header("User-Agent") or "").startswith("GitLab/")
    assert request.header("X-Gitlab-Event") == "Push Hook"
    assert request.header("X-Gitlab-Token") == "linebreak-secret"
    assert request.header("X-Gitlab-Instance") == server.url
    for name in ("Idempotency-Key", "X-Gitlab-Webhook-UUID", "X-Gitlab-Event-UUID"):
        assert len(request.header(name) or "") == 36, name
    payload = request.json()
    assert payload["object_kind"] == "push"
    assert payload["ref"] == "refs/heads/main"
    assert payload["project_id"] == project.id
    assert payload["project"]["path_with_namespace"] == project.path_with_namespace
    assert payload["total_commits_count"] >= 1
    assert payload["commits"][-1]["id"] == payload["after"]
    assert payload["user_username"] == "root"

    # A receiver that fails: 422 with the status, and the hook stays executable after a test.
    receiver.status = 500
    try:
        with pytest.raises(gitlab.GitlabHookTestError) as failed:
            hook.test("push_events")
        assert failed.value.response_code == 422
    finally:
        receiver.status = 200
    assert project.hooks.get(hook.id).alert_status == "executable"
    bad = server.root("POST", f"/projects/{project.id}/hooks/{hook.id}/test/nothing_events")
    assert bad.status_code == 400
    assert server.root("POST", f"/projects/{project.id}/hooks/{hook.id}/test/note_events").status_code == 201


def test_push_test_needs_a_commit_and_tests_are_rate_limited(
    server: LiveServer, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    project = factory.project()
    base = f"/projects/{project['id']}/hooks"
    hook_id = server.root("POST", base, json={"url": receiver.url + _path()}).json()["id"]
    empty = server.root("POST", f"{base}/{hook_id}/test/push_events")
    assert empty.status_code == 422
    assert empty.json() == {"message": "Ensure the project has at least one commit."}
    codes = [server.root("POST", f"{base}/{hook_id}/test/issues_events").status_code for _ in range(5)]
    assert 429 in codes  # the push test above counted: the fifth issues test is the sixth in a minute
    assert codes[:4] == [201, 201, 201, 201]


def test_system_hook_test_sends_gitlab_sample(
    server: LiveServer, gl: gitlab.Gitlab, receiver: Receiver, local_allowed: None
) -> None:
    path = _path()
    hook = gl.hooks.create({"url": receiver.url + path})
    try:
        answer = server.root("POST", f"/hooks/{hook.id}")
        assert answer.status_code == 201
        sample = {
            "event_name": "project_create",
            "name": "Ruby",
            "path": "ruby",
            "project_id": 1,
            "owner_name": "Someone",
            "owner_email": "example@gitlabhq.com",
        }
        assert answer.json() == sample
        (request,) = receiver.wait_for(1, path)
        assert request.header("X-Gitlab-Event") == "System Hook"
        assert request.json() == sample
    finally:
        hook.delete()


# -- events -> deliveries -----------------------------------------------------------------------
def _wait_match(receiver: Receiver, path: str, **wanted: Any) -> Any:
    """The first request to ``path`` whose JSON body has every ``wanted`` value."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for request in receiver.received(path):
            body = request.json()
            if all(body.get(key) == value for key, value in wanted.items()):
                return request
        time.sleep(0.05)
    raise AssertionError(f"no request to {path} with {wanted}")


def _wait_event(receiver: Receiver, path: str, event_name: str, user_id: int) -> Any:
    return _wait_match(receiver, path, event_name=event_name, user_id=user_id)


def test_member_added_fires_member_hook_and_system_hook(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    group = factory.group()
    group_path, system_path = _path(), _path()
    group_hook = gl.groups.get(group["id"]).hooks.create(
        {"url": receiver.url + group_path, "member_events": True, "push_events": False, "token": "g-secret"}
    )
    system_hook = gl.hooks.create({"url": receiver.url + system_path})
    try:
        user = factory.user()
        factory.member("groups", group["id"], user["id"], 30)
        (member,) = receiver.wait_for(1, group_path)
        system = _wait_event(receiver, system_path, "user_add_to_group", user["id"])
        created = _wait_event(receiver, system_path, "user_create", user["id"])
    finally:
        gl.hooks.delete(system_hook.id)
    assert member.header("X-Gitlab-Event") == "Member Hook"
    assert member.header("X-Gitlab-Token") == "g-secret"
    body = member.json()
    assert body["event_name"] == "user_add_to_group"
    assert body["group_id"] == group["id"]
    assert body["group_path"] == group["path"]
    assert body["user_id"] == user["id"]
    assert body["user_username"] == user["username"]
    assert body["group_access"] == "Developer"
    assert body["expires_at"] is None
    assert "group_plan" in body
    assert body["created_at"].endswith("Z")
    assert system.header("X-Gitlab-Event") == "System Hook"
    assert "X-Gitlab-Token" not in {k.title() for k in system.headers}
    assert system.json()["group_access"] == "Developer"
    # One originating request: the same event UUID on every hook it fired.
    assert system.header("X-Gitlab-Event-UUID") == member.header("X-Gitlab-Event-UUID")
    assert system.header("Idempotency-Key") != member.header("Idempotency-Key")
    assert created.json() == {
        "created_at": created.json()["created_at"],
        "updated_at": created.json()["updated_at"],
        "event_name": "user_create",
        "name": user["name"],
        "email": user["email"],
        "user_id": user["id"],
        "username": user["username"],
    }
    assert group_hook.id > 0


def test_project_member_and_project_create_reach_system_hooks(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    path = _path()
    group = factory.group()
    group_path = _path()
    gl.groups.get(group["id"]).hooks.create(
        {"url": receiver.url + group_path, "project_events": True, "push_events": False}
    )
    system_hook = gl.hooks.create({"url": receiver.url + path})
    try:
        project = factory.project(namespace_id=group["id"])
        user = factory.user()
        factory.member("projects", project["id"], user["id"], 40)
        added = _wait_event(receiver, path, "user_add_to_team", user["id"])
        create = _wait_match(receiver, path, event_name="project_create", project_id=project["id"]).json()
        (group_create,) = receiver.wait_for(1, group_path)
    finally:
        gl.hooks.delete(system_hook.id)
    body = added.json()
    assert body["access_level"] == "Maintainer"
    assert body["project_id"] == project["id"]
    assert body["project_path_with_namespace"] == project["path_with_namespace"]
    assert body["project_visibility"] == "private"
    assert create["path_with_namespace"] == project["path_with_namespace"]
    assert create["owners"] == [{"name": "Administrator", "email": "admin@example.com"}]
    assert group_create.header("X-Gitlab-Event") == "Project Hook"
    assert group_create.json()["event_name"] == "project_create"
    assert group_create.json()["project_namespace_id"] == group["id"]


# -- retries, auto-disabling, the log ----------------------------------------------------------
def _due(server: LiveServer, hook_id: int, attempts: int) -> tuple[dt.datetime, dt.datetime]:
    """When the hook's delivery failed for the ``attempts``-th time, and when it is due again."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with server.runtime.sessions() as db:
            row = db.scalar(select(WebHookDelivery).where(WebHookDelivery.hook_id == hook_id))
            log = db.scalar(select(func.max(WebHookLog.created_at)).where(WebHookLog.hook_id == hook_id))
            if row is not None and row.attempts == attempts and row.claimed_by is None and log is not None:
                return log, row.next_attempt_at
        time.sleep(0.05)
    raise AssertionError("the delivery did not fail as expected")


def test_failures_retry_with_backoff_then_disable_the_hook(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    group = factory.group()
    path = _path()
    hook = gl.groups.get(group["id"]).hooks.create(
        {"url": receiver.url + path, "member_events": True, "push_events": False}
    )
    receiver.status = 503
    try:
        factory.member("groups", group["id"], factory.user()["id"], 10)
        requests = receiver.wait_for(1, path)
        # Retries 1, 2 and 4 minutes after each failure: each needs the clock moved past it.
        for attempt in (2, 3, 4):
            failed_at, due = _due(server, hook.id, attempt - 1)
            assert abs(due - failed_at - dt.timedelta(minutes=2 ** (attempt - 2))) < dt.timedelta(seconds=1)
            server.clock.travel_to(due + dt.timedelta(seconds=1))
            requests = receiver.wait_for(attempt, path)
        assert len({r.header("Idempotency-Key") for r in requests}) == 1
        _due(server, hook.id, 4)
        row = _hook_row(server, hook.id)
        assert row.recent_failures == 4
        got = server.root("GET", f"/groups/{group['id']}/hooks/{hook.id}").json()
        assert got["alert_status"] == "temporarily_disabled"
        assert got["disabled_until"] is not None
        # Four attempts, and the delivery is given up: no fifth request even much later.
        server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
        time.sleep(2)
        log = server.root("GET", f"/groups/{group['id']}/hooks/{hook.id}/events").json()
        assert [entry["response_status"] for entry in log] == ["503"] * 4
        # A successful test re-enables it at once.
        receiver.status = 200
        assert (
            server.root("POST", f"/groups/{group['id']}/hooks/{hook.id}/test/push_events").status_code == 201
        )
        again = server.root("GET", f"/groups/{group['id']}/hooks/{hook.id}").json()
        assert again["alert_status"] == "executable"
        assert _hook_row(server, hook.id).recent_failures == 0
        assert len(receiver.received(path)) == 5
    finally:
        receiver.status = 200


def test_delivery_log_and_resend(
    server: LiveServer, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    project = factory.project(initialize_with_readme=True)
    path = _path()
    base = f"/projects/{project['id']}/hooks"
    hook_id = server.root("POST", base, json={"url": receiver.url + path, "token": "log-secret"}).json()["id"]
    assert server.root("POST", f"{base}/{hook_id}/test/push_events").status_code == 201
    receiver.wait_for(1, path)
    log = server.root("GET", f"{base}/{hook_id}/events")
    assert log.status_code == 200
    assert log.headers["X-Total"] == "1"
    (entry,) = log.json()
    assert entry["trigger"] == "push_hooks"
    assert entry["url"] == receiver.url + path
    assert entry["response_status"] == "200"
    assert entry["response_body"] == '{"ok": true}'
    assert entry["request_headers"]["X-Gitlab-Token"] == "[REDACTED]"
    assert entry["request_headers"]["X-Gitlab-Event"] == "Push Hook"
    assert entry["execution_duration"] > 0
    assert '"object_kind": "push"' in entry["request_data"]
    assert "log-secret" not in log.text
    resent = server.root("POST", f"{base}/{hook_id}/events/{entry['id']}/resend")
    assert resent.status_code == 201
    first, second = receiver.wait_for(2, path)
    assert first.json() == second.json()
    assert server.root("GET", f"{base}/{hook_id}/events?status=server_failure").json() == []
    assert len(server.root("GET", f"{base}/{hook_id}/events?status=successful").json()) == 2


def test_expiring_resource_token_fires_the_access_token_hook(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    project = factory.project()
    made = server.root(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        json={
            "name": "deployer",
            "scopes": ["api"],
            "expires_at": (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7)).isoformat(),
        },
    )
    assert made.status_code == 201, made.text
    token = made.json()
    path, quiet = _path(), _path()
    gl.projects.get(project["id"]).hooks.create(
        {"url": receiver.url + path, "resource_access_token_events": True, "push_events": False}
    )
    gl.projects.get(project["id"]).hooks.create({"url": receiver.url + quiet})
    runtime = server.runtime
    with runtime.sessions() as db, db.begin():
        ctx = runtime.ctx(db, Actor.system())
        row = db.get(PersonalAccessToken, token["id"])
        target = db.scalar(select(Project).where(Project.id == project["id"]))
        assert row is not None
        assert target is not None
        assert fire_expiring(ctx, row, target) == 1
    (request,) = receiver.wait_for(1, path)
    assert request.header("X-Gitlab-Event") == "Resource Access Token Hook"
    body = request.json()
    assert body["object_kind"] == "access_token"
    assert body["event_name"] == "expiring_access_token"
    assert body["project"]["id"] == project["id"]
    attrs = body["object_attributes"]
    assert attrs["id"] == token["id"]
    assert attrs["name"] == "deployer"
    assert attrs["user_id"] == token["user_id"]
    assert attrs["expires_at"] == token["expires_at"]
    assert attrs["created_at"].endswith(" UTC")
    assert token["token"] not in request.body.decode()
    assert receiver.received(quiet) == []


def test_a_git_push_fires_push_and_tag_push_hooks(
    server: LiveServer,
    gl: gitlab.Gitlab,
    factory: Factory,
    receiver: Receiver,
    local_allowed: None,
    tmp_path: Path,
) -> None:
    user, token = factory.user_with_token(["write_repository"])
    project = factory.project(initialize_with_readme=True)
    factory.member("projects", project["id"], user["id"], 40)
    branches, tags = _path(), _path()
    hooks = gl.projects.get(project["id"]).hooks
    hooks.create({"url": receiver.url + branches, "push_events_branch_filter": "ma*", "token": "push-secret"})
    hooks.create({"url": receiver.url + tags, "push_events": False, "tag_push_events": True})
    git = Git(tmp_path)
    clone, _ = git.clone(repo_url(server, project["path_with_namespace"], "u", token))
    before = git.run("rev-parse", "HEAD", cwd=clone).stdout.strip()
    git.commit(clone, "a.txt")
    after = git.commit(clone, "b.txt")
    git.run("branch", "side", cwd=clone)
    git.run("tag", "v1.0", cwd=clone)
    assert git.push(clone, "origin", "main", "side", "v1.0").returncode == 0
    (push,) = receiver.wait_for(1, branches)
    (tag,) = receiver.wait_for(1, tags)
    assert push.header("X-Gitlab-Event") == "Push Hook"
    assert push.header("X-Gitlab-Token") == "push-secret"
    body = push.json()
    assert body["object_kind"] == "push"
    assert body["ref"] == "refs/heads/main"
    assert body["before"] == before
    assert body["after"] == after
    assert body["checkout_sha"] == after
    assert body["user_username"] == user["username"]
    assert body["total_commits_count"] == 2
    assert [c["title"] for c in body["commits"]] == ["change a.txt", "change b.txt"]
    assert body["commits"][-1]["url"].endswith(f"/{project['path_with_namespace']}/-/commit/{after}")
    assert body["repository"]["git_http_url"] == f"{server.url}/{project['path_with_namespace']}.git"
    assert tag.header("X-Gitlab-Event") == "Tag Push Hook"
    assert tag.json()["object_kind"] == "tag_push"
    assert tag.json()["ref"] == "refs/tags/v1.0"
    # The branch filter kept "side" out; both deliveries came from one push.
    time.sleep(0.5)
    assert len(receiver.received(branches)) == 1
    assert push.header("X-Gitlab-Event-UUID") == tag.header("X-Gitlab-Event-UUID")


def test_url_variables_and_custom_headers_are_sent_but_never_shown(
    server: LiveServer, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    project = factory.project(initialize_with_readme=True)
    base = f"/projects/{project['id']}/hooks"
    first, second = uid("v"), uid("v")
    made = server.root(
        "POST",
        base,
        json={
            "url": receiver.url + "/{target}",
            "url_variables": [{"key": "target", "value": first}],
            "custom_headers": [{"key": "X-Custom", "value": "custom-secret"}],
        },
    )
    assert made.status_code == 201, made.text
    hook = made.json()
    assert hook["url_variables"] == [{"key": "target"}]
    assert hook["custom_headers"] == [{"key": "X-Custom"}]
    assert "custom-secret" not in made.text
    assert first not in made.text
    assert server.root("POST", f"{base}/{hook['id']}/test/push_events").status_code == 201
    (request,) = receiver.wait_for(1, "/" + first)
    assert request.header("X-Custom") == "custom-secret"
    (entry,) = server.root("GET", f"{base}/{hook['id']}/events").json()
    assert entry["url"] == receiver.url + "/{target}"
    assert entry["request_headers"]["X-Custom"] == "[REDACTED]"

    entries = f"{base}/{hook['id']}"
    assert server.root("PUT", f"{entries}/url_variables/target", json={"value": second}).status_code == 204
    assert server.root("DELETE", f"{entries}/custom_headers/X-Custom").status_code == 204
    assert server.root("DELETE", f"{entries}/custom_headers/X-Custom").status_code == 404
    assert server.root("POST", f"{base}/{hook['id']}/test/push_events").status_code == 201
    (moved,) = receiver.wait_for(1, "/" + second)
    assert moved.header("X-Custom") is None
    got = server.root("GET", f"{base}/{hook['id']}").json()
    assert got["custom_headers"] == []
    # A variable the URL needs cannot be removed.
    removed = server.root("DELETE", f"{entries}/url_variables/target")
    assert removed.status_code == 422
    assert removed.json() == {"message": "Invalid url given"}


def test_member_changes_and_removal_reach_group_hooks(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    group = factory.group()
    path = _path()
    gl.groups.get(group["id"]).hooks.create(
        {"url": receiver.url + path, "member_events": True, "push_events": False}
    )
    user = factory.user()
    factory.member("groups", group["id"], user["id"], 20)
    members = gl.groups.get(group["id"]).members
    member = members.get(user["id"])
    member.access_level = 40
    member.save()
    members.delete(user["id"])
    added, updated, removed = receiver.wait_for(3, path)
    assert [r.json()["event_name"] for r in (added, updated, removed)] == [
        "user_add_to_group",
        "user_update_for_group",
        "user_remove_from_group",
    ]
    assert added.json()["group_access"] == "Reporter"
    assert updated.json()["group_access"] == "Maintainer"
    assert removed.json()["group_access"] == "Maintainer"
    assert {r.header("X-Gitlab-Event") for r in (added, updated, removed)} == {"Member Hook"}


def test_two_workers_never_send_one_delivery_twice(
    server: LiveServer, factory: Factory, receiver: Receiver, local_allowed: None
) -> None:
    """Extra workers on the same database (as other nodes would be) race the server's own: each
    delivery is claimed by one of them and sent once."""
    group = factory.group()
    path = _path()
    made = server.root("POST", f"/groups/{group['id']}/hooks", json={"url": receiver.url + path})
    runtime = server.runtime
    others = [DeliveryWorker(runtime.sessions, runtime.instance, runtime.clock) for _ in range(2)]
    count = 30
    with runtime.sessions() as db, db.begin():
        ctx = runtime.ctx(db, Actor.system())
        hook = db.get(WebHook, made.json()["id"])
        assert hook is not None
        for n in range(count):
            queue(ctx, hook, "member_hooks", {"n": n})
    threads = [threading.Thread(target=worker.drain_once) for worker in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requests = receiver.wait_for(count, path)
    time.sleep(1)
    assert len(receiver.received(path)) == count
    assert sorted(r.json()["n"] for r in requests) == list(range(count))
    assert len({r.header("Idempotency-Key") for r in requests}) == count
    # One transaction queued them: one event UUID.
    assert len({r.header("X-Gitlab-Event-UUID") for r in requests}) == 1
