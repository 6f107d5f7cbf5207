"""Alert Bot: HTTP integrations through the REST API, the notify endpoints posted to like curl
(httpx, Bearer token), alerts, fingerprint de-duplication, incidents by Alert Bot, e-mail to the
project's Maintainers and Owners, audit events under Alert Bot, and the issues API's issue_type."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gitlab
import httpx
import pytest
from sqlalchemy import select

from keycrew.alerts.models import AlertIntegration
from keycrew.audit.models import AuditEvent
from keycrew.infra.ratelimit import FailedAuthThrottle
from tests.support.live import Factory, LiveServer, uid
from tests.support.mail import MailSink

INTEGRATIONS = "/projects/{pid}/alert_management/http_integrations"


@pytest.fixture(autouse=True)
def _fresh_throttle(server: LiveServer) -> Iterator[None]:
    """Failed notifications here must not ban 127.0.0.1 for the tests that follow."""
    server.runtime.auth_throttle.reset()
    yield
    server.runtime.auth_throttle.reset()


def _integration(server: LiveServer, token: str, pid: int, **body: Any) -> dict[str, Any]:
    made = server.request(
        "POST", INTEGRATIONS.format(pid=pid), token=token, json={"name": "Generic HTTP"} | body
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def _project(server: LiveServer, factory: Factory) -> tuple[dict[str, Any], str, dict[str, Any]]:
    _owner, token = factory.user_with_token()
    project = factory.project(token=token)
    return project, token, _integration(server, token, project["id"])


def _notify(url: str, token: str | None, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(url, headers=headers, timeout=30, **kwargs)


def _alerts(server: LiveServer, token: str, pid: int, **params: Any) -> list[dict[str, Any]]:
    answer = server.request("GET", f"/projects/{pid}/alert_management/alerts", token=token, params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def _alert_bot_events(server: LiveServer, pid: int) -> list[AuditEvent]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent).where(
                    AuditEvent.entity_type == "Project",
                    AuditEvent.entity_id == pid,
                    AuditEvent.author_name == "alert-bot",
                )
            )
        )


def test_integrations_crud_shows_the_token_once_and_keeps_only_a_digest(
    server: LiveServer, factory: Factory
) -> None:
    _owner, token = factory.user_with_token()
    project = factory.project(token=token)
    pid = project["id"]
    made = _integration(server, token, pid, name="Checks")
    secret = made["token"]
    assert len(secret) == 32
    assert made["type"] == "http"
    assert made["active"] is True
    assert made["url"] == (
        f"{server.url}/{project['path_with_namespace']}/alerts/notify/checks/{made['endpoint_identifier']}.json"
    )
    listed = server.request("GET", INTEGRATIONS.format(pid=pid), token=token)
    assert listed.status_code == 200
    (shown,) = listed.json()
    assert "token" not in shown
    assert shown["id"] == made["id"]
    with server.runtime.sessions() as db:
        row = db.get(AlertIntegration, made["id"])
        assert row is not None
        assert secret not in row.token_digest
        assert len(row.token_digest) == 64
    # Rename, deactivate.
    path = INTEGRATIONS.format(pid=pid) + f"/{made['id']}"
    changed = server.request("PUT", path, token=token, json={"name": "Renamed", "active": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Renamed"
    assert changed.json()["active"] is False
    assert "token" not in changed.json()
    assert _notify(made["url"], secret, json={"title": "x"}).status_code == 403
    server.request("PUT", path, token=token, json={"active": True})
    # Reset: the old token stops working, the new one works.
    reset = server.request("POST", path + "/reset_token", token=token)
    assert reset.status_code == 201, reset.text
    fresh = reset.json()["token"]
    assert fresh != secret
    assert _notify(made["url"], secret, json={"title": "x"}).status_code == 401
    assert _notify(made["url"], fresh, json={"title": "x"}).status_code == 200
    # A Developer may not manage integrations; a stranger does not see the project.
    developer, dev_token = factory.user_with_token()
    factory.member("projects", pid, developer["id"], 30)
    assert server.request("GET", INTEGRATIONS.format(pid=pid), token=dev_token).status_code == 403
    _stranger, other = factory.user_with_token()
    assert server.request("GET", INTEGRATIONS.format(pid=pid), token=other).status_code == 404
    bad = server.request(
        "POST", INTEGRATIONS.format(pid=pid), token=token, json={"name": "x", "type": "pager"}
    )
    assert bad.status_code == 400
    assert bad.json() == {"error": "type does not have a valid value"}
    prometheus = _integration(server, token, pid, name="Prometheus", type="prometheus")
    assert prometheus["url"] == f"{server.url}/{project['path_with_namespace']}/prometheus/alerts/notify.json"
    second = server.request(
        "POST", INTEGRATIONS.format(pid=pid), token=token, json={"name": "Again", "type": "prometheus"}
    )
    assert second.status_code == 400
    assert second.json() == {"message": {"type": ["has already been taken"]}}
    # Delete: its endpoint is gone.
    assert server.request("DELETE", path, token=token).status_code == 204
    assert _notify(made["url"], fresh, json={"title": "x"}).status_code == 404
    assert server.request("GET", path, token=token).status_code == 404
    with server.runtime.sessions() as db:
        names = set(
            db.scalars(
                select(AuditEvent.event_name).where(
                    AuditEvent.entity_type == "Project", AuditEvent.entity_id == pid
                )
            )
        )
    assert {
        "alert_integration.created",
        "alert_integration.updated",
        "alert_integration.token_reset",
        "alert_integration.deleted",
    } <= names


def test_generic_notify_with_a_title_only_and_with_every_field(server: LiveServer, factory: Factory) -> None:
    project, token, integration = _project(server, factory)
    pid = project["id"]
    title_only = _notify(integration["url"], integration["token"], json={"title": "Disk full"})
    assert title_only.status_code == 200, title_only.text
    assert title_only.json() == [{"iid": 1, "title": "Disk full"}]
    full = {
        "title": "API down",
        "description": "Every request fails",
        "start_time": "2026-11-30T10:00:00Z",
        "service": "api",
        "monitoring_tool": "Nagios",
        "hosts": ["api-1", "api-2"],
        "severity": "HIGH",
        "fingerprint": "api-down",
        "gitlab_environment_name": "production",
        "extra": {"nested": [1, 2]},
    }
    answer = _notify(integration["url"], integration["token"], json=full)
    assert answer.status_code == 200, answer.text
    assert answer.json() == [{"iid": 2, "title": "API down"}]
    one = server.request("GET", f"/projects/{pid}/alert_management/alerts/2", token=token).json()
    assert one["description"] == "Every request fails"
    assert one["started_at"] == "2026-11-30T10:00:00.000Z"
    assert one["service"] == "api"
    assert one["monitoring_tool"] == "Nagios"
    assert one["hosts"] == ["api-1", "api-2"]
    assert one["severity"] == "high"
    assert one["environment_name"] == "production"
    assert one["status"] == "triggered"
    assert one["events"] == 1
    assert one["payload"]["extra"] == {"nested": [1, 2]}
    first = _alerts(server, token, pid)[-1]
    assert first["title"] == "Disk full"
    assert first["severity"] == "critical"
    # An empty object is an alert with GitLab's default title.
    assert _notify(integration["url"], integration["token"], json={}).json() == [
        {"iid": 3, "title": "New: Alert"}
    ]
    # The status filter, and status changes by a Developer (audited under that user).
    developer, dev_token = factory.user_with_token()
    factory.member("projects", pid, developer["id"], 30)
    acked = server.request(
        "PUT", f"/projects/{pid}/alert_management/alerts/2", token=dev_token, json={"status": "acknowledged"}
    )
    assert acked.status_code == 200, acked.text
    assert acked.json()["status"] == "acknowledged"
    assert [a["iid"] for a in _alerts(server, token, pid, status="acknowledged")] == [2]
    assert [a["iid"] for a in _alerts(server, token, pid, status="triggered")] == [3, 1]
    invalid = server.request(
        "GET", f"/projects/{pid}/alert_management/alerts", token=token, params={"status": "x"}
    )
    assert invalid.status_code == 400
    reporter, rep_token = factory.user_with_token()
    factory.member("projects", pid, reporter["id"], 20)
    refused = server.request(
        "PUT", f"/projects/{pid}/alert_management/alerts/2", token=rep_token, json={"status": "resolved"}
    )
    assert refused.status_code == 403
    assert (
        server.request("GET", f"/projects/{pid}/alert_management/alerts/99", token=token).status_code == 404
    )
    with server.runtime.sessions() as db:
        changed = db.scalars(
            select(AuditEvent).where(
                AuditEvent.event_name == "alert.status_changed", AuditEvent.entity_id == pid
            )
        ).one()
    assert changed.author_id == developer["id"]
    assert changed.details["to"] == "acknowledged"
    created = [e for e in _alert_bot_events(server, pid) if e.event_name == "alert.created"]
    assert len(created) == 3


def test_wrong_missing_and_revoked_tokens_are_refused_and_throttled(
    server: LiveServer, factory: Factory
) -> None:
    project, token, integration = _project(server, factory)
    url = integration["url"]
    missing = _notify(url, None, json={"title": "x"})
    assert missing.status_code == 401
    assert missing.content == b""
    wrong = _notify(url, "0" * 32, json={"title": "x"})
    assert wrong.status_code == 401
    # Basic with the token as password works, as GitLab's.
    basic = httpx.post(url, auth=("", integration["token"]), json={"title": "basic"}, timeout=30)
    assert basic.status_code == 200, basic.text
    # Unknown project and unknown integration answer alike.
    unknown_project = url.replace(project["path_with_namespace"], f"nobody-{uid()}/nothing")
    unknown_integration = url.replace(integration["endpoint_identifier"], "0123456789abcdef")
    for other in (unknown_project, unknown_integration):
        answer = _notify(other, integration["token"], json={"title": "x"})
        assert answer.status_code == 404
        assert answer.content == b""
    original = server.runtime.auth_throttle
    server.runtime.auth_throttle = FailedAuthThrottle(limit=3, window=60, ban=60)
    try:
        statuses = [_notify(url, f"wrong-{n}", json={"title": "x"}).status_code for n in range(3)]
        assert statuses == [401, 401, 401]
        banned = _notify(url, integration["token"], json={"title": "x"})
        assert banned.status_code == 429
        assert int(banned.headers["retry-after"]) > 0
    finally:
        server.runtime.auth_throttle = original
    # Revoked by a reset: the old token is refused.
    path = INTEGRATIONS.format(pid=project["id"]) + f"/{integration['id']}/reset_token"
    assert server.request("POST", path, token=token).status_code == 201
    assert _notify(url, integration["token"], json={"title": "x"}).status_code == 401
    assert [a["title"] for a in _alerts(server, token, project["id"])] == ["basic"]


def test_oversized_and_invalid_payloads_are_refused(server: LiveServer, factory: Factory) -> None:
    project, token, integration = _project(server, factory)
    url, secret = integration["url"], integration["token"]
    big = _notify(url, secret, json={"title": "big", "description": "x" * 1_100_000})
    assert big.status_code == 400
    bad_json = _notify(url, secret, content=b'{"title": ', headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400
    not_object = _notify(url, secret, json=["title"])
    assert not_object.status_code == 400
    deep: Any = "x"
    for _ in range(30):
        deep = {"a": deep}
    assert _notify(url, secret, json={"title": "deep", "d": deep}).status_code == 400
    # Long values are cut to size, NUL bytes dropped.
    long = _notify(url, secret, json={"title": "t\x00" * 300, "service": "s" * 500})
    assert long.status_code == 200, long.text
    (alert,) = _alerts(server, token, project["id"])
    assert alert["title"] == "t" * 200
    assert alert["service"] == "s" * 100


def test_identical_fingerprints_make_one_alert_and_end_time_resolves_it(
    server: LiveServer, factory: Factory
) -> None:
    project, token, integration = _project(server, factory)
    pid = project["id"]
    payload = {"title": "Flood", "fingerprint": "flood-1"}
    with httpx.Client(headers={"Authorization": f"Bearer {integration['token']}"}, timeout=30) as client:
        for _ in range(100):
            answer = client.post(integration["url"], json=payload)
            assert answer.status_code == 200, answer.text
        (alert,) = _alerts(server, token, pid)
        assert alert["events"] == 100
        assert alert["iid"] == 1
        resolved = client.post(integration["url"], json=payload | {"end_time": "2026-12-01T00:00:00Z"})
        assert resolved.status_code == 200
        (alert,) = _alerts(server, token, pid)
        assert alert["status"] == "resolved"
        assert alert["ended_at"] == "2026-12-01T00:00:00.000Z"
        # The same fingerprint once resolved opens a new alert.
        again = client.post(integration["url"], json=payload)
        assert again.json() == [{"iid": 2, "title": "Flood"}]
        # A recovery for nothing open creates nothing.
        orphan = client.post(
            integration["url"], json={"title": "x", "fingerprint": "n", "end_time": "2026-12-01"}
        )
        assert orphan.json() == []
    assert [a["iid"] for a in _alerts(server, token, pid)] == [2, 1]


def test_concurrent_identical_alerts_open_one_alert(server: LiveServer, factory: Factory) -> None:
    project, token, integration = _project(server, factory)
    payload = {"title": "Burst", "fingerprint": "burst"}

    def post(_n: int) -> int:
        return _notify(integration["url"], integration["token"], json=payload).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, range(24)))
    assert statuses == [200] * 24
    (alert,) = _alerts(server, token, project["id"])
    assert alert["events"] == 24


def test_incident_by_alert_bot_mail_to_maintainers_and_close_on_recovery(
    server: LiveServer, factory: Factory, smtp_sink: MailSink
) -> None:
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    project = factory.project(token=token, namespace_id=group["id"])
    pid = project["id"]
    maintainer = factory.user()
    factory.member("projects", pid, maintainer["id"], 40)
    developer = factory.user()
    factory.member("projects", pid, developer["id"], 30)
    integration = _integration(server, token, pid)
    settings = f"/projects/{pid}/incident_management_setting"
    assert server.request("GET", settings, token=token).json() == {
        "create_issue": False,
        "send_email": False,
        "auto_close_incident": True,
    }
    put = server.request("PUT", settings, token=token, json={"create_issue": True, "send_email": True})
    assert put.status_code == 200, put.text
    assert put.json() == {"create_issue": True, "send_email": True, "auto_close_incident": True}
    payload = {
        "title": "Checkout failing",
        "fingerprint": "checkout",
        "severity": "medium",
        "service": "shop",
    }
    answer = _notify(integration["url"], integration["token"], json=payload)
    assert answer.status_code == 200, answer.text

    gl = server.gl(token)
    (incident,) = gl.projects.get(pid).issues.list(issue_type="incident", get_all=True)
    assert incident.issue_type == "incident"
    assert incident.author["username"] == "alert-bot"
    assert incident.title == "Checkout failing"
    assert "**Severity:** medium" in incident.description
    assert "/-/alert_management/1/details" in incident.description
    assert gl.projects.get(pid).issues.list(issue_type="issue", get_all=True) == []
    (alert,) = _alerts(server, token, pid)
    assert alert["issue_iid"] == incident.iid

    # Mail to the Maintainer (and the group Owner, a direct member), not to the Developer.
    (mail,) = smtp_sink.wait_for(maintainer["email"])
    assert "Checkout failing" in mail.subject
    assert "/-/alert_management/1/details" in mail.body()
    assert smtp_sink.messages(developer["email"]) == []

    # A repeat adds an event, no incident, no mail; the recovery closes the incident.
    _notify(integration["url"], integration["token"], json=payload)
    recovered = _notify(
        integration["url"], integration["token"], json=payload | {"end_time": "2026-12-07T10:00:00Z"}
    )
    assert recovered.status_code == 200
    closed = gl.projects.get(pid).issues.get(incident.iid)
    assert closed.state == "closed"
    assert closed.attributes["closed_by"]["username"] == "alert-bot"
    notes = closed.notes.list(get_all=True)
    assert [n.body for n in notes if n.author["username"] == "alert-bot"] == [
        "automatically closed this incident because the alert resolved."
    ]
    assert len(gl.projects.get(pid).issues.list(issue_type="incident", get_all=True)) == 1
    assert len(smtp_sink.messages(maintainer["email"])) == 1
    names = [e.event_name for e in _alert_bot_events(server, pid)]
    for expected in ("alert.created", "issue.created", "alert.event_registered", "alert.status_changed"):
        assert expected in names, names
    assert owner["id"] not in {e.author_id for e in _alert_bot_events(server, pid)}


def test_auto_close_off_keeps_the_incident_open(server: LiveServer, factory: Factory) -> None:
    project, token, integration = _project(server, factory)
    pid = project["id"]
    settings = f"/projects/{pid}/incident_management_setting"
    server.request("PUT", settings, token=token, json={"create_issue": True, "auto_close_incident": False})
    payload = {"title": "Queue stuck", "fingerprint": "queue"}
    _notify(integration["url"], integration["token"], json=payload)
    _notify(integration["url"], integration["token"], json=payload | {"end_time": "2026-12-07T10:00:00Z"})
    (alert,) = _alerts(server, token, pid)
    assert alert["status"] == "resolved"
    incident = server.gl(token).projects.get(pid).issues.get(alert["issue_iid"])
    assert incident.state == "opened"
    # Only Maintainers may read or change the settings.
    developer, dev_token = factory.user_with_token()
    factory.member("projects", pid, developer["id"], 30)
    assert server.request("PUT", settings, token=dev_token, json={"create_issue": False}).status_code == 403


def test_closing_the_incident_resolves_its_alert(server: LiveServer, factory: Factory) -> None:
    project, token, integration = _project(server, factory)
    pid = project["id"]
    server.request(
        "PUT", f"/projects/{pid}/incident_management_setting", token=token, json={"create_issue": True}
    )
    _notify(integration["url"], integration["token"], json={"title": "Cache cold", "fingerprint": "cache"})
    (alert,) = _alerts(server, token, pid)
    incident = server.gl(token).projects.get(pid).issues.get(alert["issue_iid"])
    incident.state_event = "close"
    incident.save()
    (alert,) = _alerts(server, token, pid)
    assert alert["status"] == "resolved"
    assert alert["ended_at"] is not None
    # The next notification with that fingerprint opens a new alert (and incident).
    again = _notify(
        integration["url"], integration["token"], json={"title": "Cache cold", "fingerprint": "cache"}
    )
    assert again.json() == [{"iid": 2, "title": "Cache cold"}]


def test_issue_type_filter_and_incident_creation_through_the_issues_api(
    server: LiveServer, factory: Factory
) -> None:
    _owner, token = factory.user_with_token()
    project = factory.project(token=token)
    gl = server.gl(token)
    glp = gl.projects.get(project["id"])
    incident = glp.issues.create({"title": "Outage", "issue_type": "incident"})
    assert incident.issue_type == "incident"
    glp.issues.create({"title": "Plain"})
    assert [i.title for i in glp.issues.list(issue_type="incident", get_all=True)] == ["Outage"]
    assert [i.title for i in glp.issues.list(issue_type="issue", get_all=True)] == ["Plain"]
    with pytest.raises(gitlab.GitlabListError) as refused:
        glp.issues.list(issue_type="bogus", get_all=True)
    assert refused.value.response_code == 400
    answer = server.request(
        "GET", f"/projects/{project['id']}/issues", token=token, params={"issue_type": "x"}
    )
    assert answer.json() == {"error": "issue_type does not have a valid value"}


def test_issue_type_filter_on_instance_and_group_issues(server: LiveServer, factory: Factory) -> None:
    _owner, token = factory.user_with_token()
    group = factory.group(token=token)
    subgroup = factory.group(token=token, parent_id=group["id"])
    first = factory.project(token=token, namespace_id=group["id"])
    second = factory.project(token=token, namespace_id=subgroup["id"])
    gl = server.gl(token)
    gl.projects.get(first["id"]).issues.create({"title": "Outage A", "issue_type": "incident"})
    gl.projects.get(second["id"]).issues.create({"title": "Outage B", "issue_type": "incident"})
    gl.projects.get(second["id"]).issues.create({"title": "Chore"})
    secret = gl.projects.get(second["id"]).issues.create({"title": "Secret", "confidential": True})
    glg = gl.groups.get(group["id"])
    assert sorted(i.title for i in glg.issues.list(issue_type="incident", get_all=True)) == [
        "Outage A",
        "Outage B",
    ]
    assert [i.title for i in glg.issues.list(issue_type="issue", get_all=True)] == ["Secret", "Chore"]
    mine = gl.issues.list(issue_type="incident", get_all=True)
    assert sorted(i.title for i in mine) == ["Outage A", "Outage B"]
    assert {i.project_id for i in mine} == {first["id"], second["id"]}
    for path in ("/issues", f"/groups/{group['id']}/issues"):
        answer = server.request("GET", path, token=token, params={"issue_type": "bogus"})
        assert answer.status_code == 400
        assert answer.json() == {"error": "issue_type does not have a valid value"}
    # /issues defaults to the caller's own issues; another user sees none of these by default,
    # and with scope=all only what they may read (the projects are private: nothing).
    _other, other_token = factory.user_with_token()
    assert server.gl(other_token).issues.list(get_all=True) == []
    everything = server.request("GET", "/issues", token=other_token, params={"scope": "all"}).json()
    # (Other tests' public projects share the server: only these private ones must stay hidden.)
    assert [i for i in everything if i["project_id"] in (first["id"], second["id"])] == []
    assert server.request("GET", f"/groups/{group['id']}/issues", token=other_token).status_code == 404
    # A Guest of the group sees its issues but not the confidential one.
    reader, reader_token = factory.user_with_token()
    factory.member("groups", group["id"], reader["id"], 10)
    seen = server.request("GET", f"/groups/{group['id']}/issues", token=reader_token).json()
    assert secret.iid not in {i["iid"] for i in seen if i["project_id"] == second["id"]}
    assert len(seen) == 3
    # Anonymous callers need scope=all on /issues.
    assert server.request("GET", "/issues").status_code == 401
    assert server.request("GET", "/issues", params={"scope": "all"}).status_code == 200
