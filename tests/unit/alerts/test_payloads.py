"""Reading notification payloads: GitLab's generic format and Alertmanager's."""

from __future__ import annotations

import datetime as dt

import pytest

from keycrew.alerts.payloads import DEFAULT_TITLE, parse
from keycrew.errors import Invalid, Unprocessable

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def test_a_generic_payload_with_defaults() -> None:
    (alert,) = parse({}, NOW)
    assert alert.title == DEFAULT_TITLE
    assert alert.default_title
    assert alert.severity == "critical"
    assert alert.started_at == NOW
    assert alert.fingerprint is None
    assert not alert.resolved


def test_generic_fields_are_read_leniently() -> None:
    (alert,) = parse(
        {
            "title": "  Disk full ",
            "severity": "Low",
            "start_time": "2026-12-01T10:00:00+02:00",
            "hosts": "db-1",
            "fingerprint": ["a", 1],
            "end_time": "2026-12-01",
            "service": {"not": "text"},
        },
        NOW,
    )
    assert alert.title == "Disk full"
    assert alert.severity == "low"
    assert alert.started_at == dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.UTC)
    assert alert.hosts == ["db-1"]
    assert alert.fingerprint == "a1"
    assert alert.resolved
    assert alert.ended_at == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert alert.service is None


@pytest.mark.parametrize("value", ["nonsense", 5, None, "CRITICAL "])
def test_unknown_severities_are_critical(value: object) -> None:
    (alert,) = parse({"severity": value}, NOW)
    assert alert.severity == "critical"


def test_an_unparseable_start_time_is_now() -> None:
    (alert,) = parse({"start_time": "yesterday"}, NOW)
    assert alert.started_at == NOW


def test_non_objects_are_refused() -> None:
    with pytest.raises(Invalid):
        parse(["x"], NOW)
    with pytest.raises(Unprocessable):
        parse({"title": "x"}, NOW, prometheus=True)


def test_alertmanager_alerts() -> None:
    payload = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "HighLatency",
                    "severity": "warning",
                    "gitlab_environment_name": "prod",
                },
                "annotations": {"summary": "p99 over 2 s", "description": "slow"},
                "startsAt": "2026-12-07T11:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prom:9090/graph?g0.expr=latency+%3E+2&g0.tab=1",
            },
            {
                "status": "resolved",
                "labels": {"alertname": "DiskFull", "severity": "s1"},
                "annotations": {},
                "startsAt": "2026-12-07T10:00:00Z",
                "endsAt": "2026-12-07T11:30:00Z",
            },
            {"status": "firing", "labels": {"alertname": "NoStart"}},
            "not an alert",
        ],
    }
    firing, resolved = parse(payload, NOW)
    assert firing.title == "p99 over 2 s"
    assert firing.description == "slow"
    assert firing.severity == "low"
    assert firing.environment_name == "prod"
    assert firing.monitoring_tool == "Prometheus"
    assert firing.fingerprint == "2026-12-07T11:00:00Z/p99 over 2 s/latency > 2"
    assert not firing.resolved
    assert firing.ended_at is None
    assert resolved.title == "DiskFull"
    assert resolved.severity == "critical"
    assert resolved.resolved
    assert resolved.ended_at == dt.datetime(2026, 12, 7, 11, 30, tzinfo=dt.UTC)
    # The same shape posted to a generic endpoint is read as Alertmanager's too.
    assert len(parse(payload, NOW)) == 2
