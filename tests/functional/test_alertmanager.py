"""Alert Bot end to end with the real Prometheus Alertmanager (Debian's `prometheus-alertmanager`,
installed by the Makefile): a project's Prometheus integration (made through the REST API) is the
webhook receiver of a private alertmanager, which sends with the integration token as
`Authorization: Bearer` (its `http_config.authorization`). An alert fired through alertmanager's API
becomes an alert in keycrew and an incident authored by Alert Bot; resolving it through
alertmanager resolves the alert, and Alert Bot closes the incident with a note. With a wrong token
alertmanager is answered 401 (its own failure counter says so) and nothing is created.

Alertmanager groups and waits before it sends: its timings are short (tests/support/alertmanager.py)
and every check polls, within a bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.support.alertmanager import Alertmanager, running_alertmanager
from tests.support.live import Factory, LiveServer, uid

T = TypeVar("T")
WAIT = 45.0  # seconds: alertmanager sends within about one group interval (1 s)


def _until(what: str, probe: Callable[[], T | None], timeout: float = WAIT) -> T:
    """The first truthy value of ``probe()``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.25)


def _prometheus_project(server: LiveServer, factory: Factory) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A project with a Prometheus integration and incidents on: (project, owner's token, integration)."""
    _owner, token = factory.user_with_token()
    project = factory.project(token=token)
    pid = project["id"]
    made = server.request(
        "POST",
        f"/projects/{pid}/alert_management/http_integrations",
        token=token,
        json={"name": "Alertmanager", "type": "prometheus"},
    )
    assert made.status_code == 201, made.text
    integration = made.json()
    assert (
        integration["url"] == f"{server.url}/{project['path_with_namespace']}/prometheus/alerts/notify.json"
    )
    settings = server.request(
        "PUT",
        f"/projects/{pid}/incident_management_setting",
        token=token,
        json={"create_issue": True, "auto_close_incident": True},
    )
    assert settings.status_code == 200, settings.text
    assert settings.json()["create_issue"] is True
    return project, token, integration


def _alerts(server: LiveServer, pid: int, token: str) -> list[dict[str, Any]]:
    answer = server.request("GET", f"/projects/{pid}/alert_management/alerts", token=token)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()
    return result


def _sent(am: Alertmanager) -> float:
    return am.metric("alertmanager_notifications_total", integration="webhook")


def _failed(am: Alertmanager) -> float:
    return am.metric("alertmanager_notifications_failed_total", integration="webhook")


def test_alertmanager_opens_and_closes_an_incident_by_alert_bot(
    server: LiveServer, factory: Factory, tmp_path: Path
) -> None:
    project, token, integration = _prometheus_project(server, factory)
    pid = project["id"]
    gl = server.gl(token)
    name = uid("HighLatency")
    annotations = {"summary": f"{name}: p99 over 2 s", "description": "The API answers slowly."}

    with running_alertmanager(tmp_path / "am", integration["url"], integration["token"]) as am:
        am.fire(name, annotations, severity="critical", instance="api-1:9100")

        (alert,) = _until("the alert in keycrew", lambda: _alerts(server, pid, token))
        assert alert["title"] == f"{name}: p99 over 2 s"
        assert alert["description"] == "The API answers slowly."
        assert alert["status"] == "triggered"
        assert alert["severity"] == "critical"
        assert alert["events"] == 1
        assert alert["ended_at"] is None
        assert alert["payload"]["labels"]["instance"] == "api-1:9100"

        (incident,) = _until(
            "the incident", lambda: gl.projects.get(pid).issues.list(issue_type="incident", get_all=True)
        )
        assert incident.iid == alert["issue_iid"]
        assert incident.issue_type == "incident"
        assert incident.title == alert["title"]
        assert incident.author["username"] == "alert-bot"
        assert incident.state == "opened"
        # An ordinary issue list filtered to issues does not show it.
        assert gl.projects.get(pid).issues.list(issue_type="issue", get_all=True) == []

        am.resolve(name, annotations, severity="critical", instance="api-1:9100")

        (resolved,) = _until(
            "the alert resolved",
            lambda: [a for a in _alerts(server, pid, token) if a["status"] == "resolved"] or None,
        )
        assert resolved["iid"] == alert["iid"]
        assert resolved["ended_at"] is not None
        closed = _until(
            "the incident closed",
            lambda: (issue := gl.projects.get(pid).issues.get(incident.iid)).state == "closed" and issue,
        )
        assert closed.attributes["closed_by"]["username"] == "alert-bot"  # (closed_by() is a method)
        notes = closed.notes.list(get_all=True)
        by_bot = [n for n in notes if n.author["username"] == "alert-bot"]
        assert by_bot, [n.body for n in notes]
        assert any("closed" in n.body for n in by_bot)

        # Alertmanager saw both deliveries succeed, and none fail.
        assert _sent(am) >= 2
        assert _failed(am) == 0
    # Still one alert, one incident: the resolved notification added nothing.
    assert len(_alerts(server, pid, token)) == 1
    assert len(gl.projects.get(pid).issues.list(issue_type="incident", get_all=True)) == 1


def test_alertmanager_with_a_wrong_token_is_refused(
    server: LiveServer, factory: Factory, tmp_path: Path
) -> None:
    project, token, integration = _prometheus_project(server, factory)
    pid = project["id"]
    wrong = integration["token"][::-1]
    assert wrong != integration["token"]

    with running_alertmanager(tmp_path / "am", integration["url"], wrong) as am:
        am.fire(uid("DiskFull"), {"summary": "Disk full"}, severity="warning")
        am.wait_metric("alertmanager_notifications_failed_total", 1, timeout=WAIT, integration="webhook")
        assert "unexpected status code 401" in _until(
            "the 401 in alertmanager's log", lambda: "401" in am.output() and am.output()
        )
        assert _sent(am) >= 1

    assert _alerts(server, pid, token) == []
    assert server.gl(token).projects.get(pid).issues.list(get_all=True) == []


def test_alertmanager_to_a_deactivated_integration_creates_nothing(
    server: LiveServer, factory: Factory, tmp_path: Path
) -> None:
    project, token, integration = _prometheus_project(server, factory)
    pid = project["id"]
    off = server.request(
        "PUT",
        f"/projects/{pid}/alert_management/http_integrations/{integration['id']}",
        token=token,
        json={"active": False},
    )
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False

    with running_alertmanager(tmp_path / "am", integration["url"], integration["token"]) as am:
        am.fire(uid("CpuHot"), {"summary": "CPU hot"})
        am.wait_metric("alertmanager_notifications_failed_total", 1, timeout=WAIT, integration="webhook")
        assert "unexpected status code 403" in _until(
            "the 403 in alertmanager's log", lambda: "403" in am.output() and am.output()
        )
    assert _alerts(server, pid, token) == []
