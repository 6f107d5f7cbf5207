"""Reading notification payloads: GitLab's generic alert format and Alertmanager's webhook format.

Lenient as GitLab's: unknown fields are kept (in ``payload``), wrong types fall back to defaults,
long values are truncated to the columns' sizes. Only a payload that is not a JSON object is
refused (Invalid), or, for Alertmanager, one without an ``alerts`` list (Unprocessable).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from keycrew.errors import Invalid, Unprocessable

DEFAULT_TITLE = "New: Alert"
SEVERITIES = ("critical", "high", "medium", "low", "info", "unknown")
TITLE_MAX = 200
DESCRIPTION_MAX = 1000
SERVICE_MAX = 100
TOOL_MAX = 100
HOSTS_MAX = 255
ENVIRONMENT_MAX = 255
# Alertmanager's severity labels, as GitLab maps them.
PROMETHEUS_SEVERITIES = {
    **dict.fromkeys(("critical", "s1", "p1", "emergency", "fatal"), "critical"),
    **dict.fromkeys(("high", "s2", "p2", "major", "page"), "high"),
    **dict.fromkeys(("medium", "s3", "p3", "error", "alert"), "medium"),
    **dict.fromkeys(("low", "s4", "p4", "warn", "warning", "minor"), "low"),
    **dict.fromkeys(("info", "s5", "p5", "debug", "information", "notice"), "info"),
}
_MIN = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MAX = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ParsedAlert:
    title: str
    # Whether the title is the default one (the incident is then "New: Incident <iid>").
    default_title: bool
    description: str | None
    service: str | None
    monitoring_tool: str | None
    hosts: list[str]
    severity: str
    # The plain fingerprint (hashed by the caller), None when there is none.
    fingerprint: str | None
    environment_name: str | None
    started_at: dt.datetime
    ended_at: dt.datetime | None
    resolved: bool
    payload: dict[str, Any]


def _clean(value: str) -> str:
    # PostgreSQL text cannot hold NUL: dropped on every backend alike.
    return value.replace("\x00", "")


def _text(value: Any, limit: int) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    text = _clean(str(value)).strip()
    return text[:limit] if text else None


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    raw = value.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        try:
            parsed = dt.datetime.combine(dt.date.fromisoformat(raw), dt.time())
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    parsed = parsed.astimezone(dt.UTC)
    if not _MIN <= parsed < _MAX:
        return None
    return parsed


def _hosts(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    hosts = [h for item in items if (h := _text(item, HOSTS_MAX)) is not None]
    # GitLab keeps the hosts while their joined length fits.
    kept: list[str] = []
    total = 0
    for host in hosts:
        total += len(host)
        if total > HOSTS_MAX:
            break
        kept.append(host)
    return kept


def _fingerprint(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict):
        return None
    if isinstance(value, list):
        flat = "".join(_clean(str(v)) for v in value if not isinstance(v, dict | list))
        return flat or None
    text = _clean(str(value))
    return text or None


def _severity(value: Any, mapping: dict[str, str] | None = None) -> str:
    if not isinstance(value, str):
        return "critical"
    key = value.strip().lower()
    if mapping is not None:
        return mapping.get(key, "critical")
    return key if key in SEVERITIES else "critical"


def parse(payload: Any, now: dt.datetime, *, prometheus: bool = False) -> list[ParsedAlert]:
    """The alerts a payload carries: one for a generic payload, one per ``alerts[]`` item of an
    Alertmanager payload (recognised on any endpoint)."""
    if not isinstance(payload, dict):
        if prometheus:
            raise Unprocessable("The payload is not an Alertmanager notification")
        raise Invalid("The payload is not a JSON object")
    alerts = payload.get("alerts")
    shaped = isinstance(alerts, list) and any(isinstance(a, dict) and "startsAt" in a for a in alerts)
    if isinstance(alerts, list) and (prometheus or shaped):
        return [p for item in alerts if isinstance(item, dict) and (p := _prometheus(item, now)) is not None]
    if prometheus:
        raise Unprocessable("The payload is not an Alertmanager notification")
    return [_generic(payload, now)]


def _generic(payload: dict[str, Any], now: dt.datetime) -> ParsedAlert:
    title = _text(payload.get("title"), TITLE_MAX)
    ended_at = _time(payload.get("end_time"))
    return ParsedAlert(
        title=title or DEFAULT_TITLE,
        default_title=title is None,
        description=_text(payload.get("description"), DESCRIPTION_MAX),
        service=_text(payload.get("service"), SERVICE_MAX),
        monitoring_tool=_text(payload.get("monitoring_tool"), TOOL_MAX),
        hosts=_hosts(payload.get("hosts")),
        severity=_severity(payload.get("severity")),
        fingerprint=_fingerprint(payload.get("fingerprint")),
        environment_name=_text(payload.get("gitlab_environment_name"), ENVIRONMENT_MAX),
        started_at=_time(payload.get("start_time")) or now,
        ended_at=ended_at,
        resolved=ended_at is not None,
        payload=payload,
    )


def _query(generator_url: Any) -> str:
    if not isinstance(generator_url, str):
        return ""
    try:
        values = parse_qs(urlsplit(generator_url).query).get("g0.expr")
    except ValueError:
        return ""
    return values[0] if values else ""


def _prometheus(item: dict[str, Any], now: dt.datetime) -> ParsedAlert | None:
    labels: dict[str, Any] = item["labels"] if isinstance(item.get("labels"), dict) else {}
    annotations: dict[str, Any] = item["annotations"] if isinstance(item.get("annotations"), dict) else {}
    starts_raw = item.get("startsAt")
    started_at = _time(starts_raw)
    if started_at is None or not isinstance(starts_raw, str):
        # GitLab needs startsAt to accept an Alertmanager alert.
        return None
    title = (
        _text(annotations.get("title"), TITLE_MAX)
        or _text(annotations.get("summary"), TITLE_MAX)
        or _text(labels.get("alertname"), TITLE_MAX)
    )
    resolved = item.get("status") == "resolved"
    ended_at = _time(item.get("endsAt")) if resolved else None
    shown_title = title or DEFAULT_TITLE
    return ParsedAlert(
        title=shown_title,
        default_title=title is None,
        description=_text(annotations.get("description"), DESCRIPTION_MAX),
        service=None,
        monitoring_tool="Prometheus",
        hosts=[],
        severity=_severity(labels.get("severity"), PROMETHEUS_SEVERITIES),
        fingerprint=f"{starts_raw}/{shown_title}/{_query(item.get('generatorURL'))}",
        environment_name=_text(labels.get("gitlab_environment_name"), ENVIRONMENT_MAX),
        started_at=started_at,
        ended_at=(ended_at or now) if resolved else None,
        resolved=resolved,
        payload=item,
    )
