"""Alert management use cases: HTTP integrations, alerts, incident settings, and the notify
endpoints' processing (the Alert Bot's work).

Stable signatures (the web UI builds on them):

- ``list_integrations(ctx, project)``, ``create_integration(ctx, project, *, name, active=True,
  integration_type="http") -> IssuedIntegration``, ``find_integration(ctx, project, integration_id)``,
  ``update_integration(ctx, project, integration, *, name=None, active=None)``,
  ``reset_integration_token(ctx, project, integration) -> IssuedIntegration``,
  ``delete_integration(ctx, project, integration)``; ``can_admin_integrations(ctx, project)``.
- ``list_alerts(ctx, project, status=None)``, ``find_alert(ctx, project, iid)``,
  ``update_alert_status(ctx, project, alert, status)``; ``can_read_alerts``/``can_update_alerts``.
- ``incident_settings(ctx, project)`` (never writes), ``update_incident_settings(ctx, project, *,
  create_issue=None, send_email=None, auto_close_incident=None)``.
- ``process_notification(ctx, project_path, *, token, payload, endpoint_identifier=None,
  prometheus=False) -> list[Alert]``: what ``POST .../alerts/notify/<name>/<id>.json`` (or
  ``.../prometheus/alerts/notify.json`` with ``prometheus=True``) does; ``ctx.actor`` is the
  anonymous caller, the changes are made as the Alert Bot.
- ``on_audit_event``: the audit listener that resolves an incident's alerts when it is closed.

Project arguments are found with ``find_project`` by the caller (read access checked); each use
case checks the level it needs (Forbidden). Token values exist only in ``IssuedIntegration``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import get_project
from keycrew.access.models import Member
from keycrew.access.policy import effective_project_level
from keycrew.alerts import payloads
from keycrew.alerts.models import Alert, AlertIntegration, IncidentSettings
from keycrew.audit.events import Event
from keycrew.audit.models import AuditEvent
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Actor, Ctx
from keycrew.crypto import digest
from keycrew.db.base import MAX_ID
from keycrew.errors import BadParameter, Forbidden, Invalid, NotFound, Unauthenticated
from keycrew.identity.internal import internal_user
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Project
from keycrew.outbox.service import enqueue
from keycrew.records.issues import IssueChanges, create_issue, update_issue
from keycrew.records.models import Issue, Note

# The audit target type of an alert (GitLab's class name).
ALERT_TARGET = "AlertManagement::Alert"

INTEGRATION_TYPES = ("http", "prometheus")
STATUSES = ("triggered", "acknowledged", "resolved", "ignored")
# GitLab's status integers (the REST entity shows the name; the web UI may want the number).
STATUS_VALUES = {"triggered": 0, "acknowledged": 1, "resolved": 2, "ignored": 3}
OPEN_STATUSES = ("triggered", "acknowledged", "ignored")
NAME_MAX = 255
AUTO_CLOSE_NOTE = "automatically closed this incident because the alert resolved."


@dataclass(frozen=True)
class IssuedIntegration:
    """An integration with its token, the only time the token exists in clear."""

    integration: AlertIntegration
    token: str


def _entity(project: Project) -> Entity:
    return Entity("Project", project.id, project.full_path)


def _level(ctx: Ctx, project: Project) -> int:
    return effective_project_level(ctx.reads, ctx.actor, project, ctx.today())


def can_admin_integrations(ctx: Ctx, project: Project) -> bool:
    """Maintainers and above, admins (GitLab's ``admin_operations``)."""
    return _level(ctx, project) >= AccessLevel.MAINTAINER


def can_read_alerts(ctx: Ctx, project: Project) -> bool:
    """Developers and above, admins (GitLab's ``read_alert_management_alert``)."""
    return _level(ctx, project) >= AccessLevel.DEVELOPER


def can_update_alerts(ctx: Ctx, project: Project) -> bool:
    """Developers and above, admins (GitLab's ``update_alert_management_alert``)."""
    return _level(ctx, project) >= AccessLevel.DEVELOPER


def _require(allowed: bool) -> None:
    if not allowed:
        raise Forbidden()


def _check_text(name: str, value: str | None) -> None:
    if value is not None and "\x00" in value:
        raise BadParameter(f"{name} is invalid")


# --- integrations ------------------------------------------------------------------------------


def integration_target(integration: AlertIntegration) -> Target:
    return Target("AlertManagement::HttpIntegration", integration.id, integration.name)


def name_slug(integration: AlertIntegration) -> str:
    """The ``<name>`` segment of the integration's URL (GitLab's slugified name)."""
    slug = "".join(c if c.isascii() and c.isalnum() else "-" for c in integration.name.lower())
    slug = "-".join(part for part in slug.split("-") if part)
    return slug or "http-endpoint"


def notify_path(project: Project, integration: AlertIntegration) -> str:
    """The path (without host) that accepts this integration's alerts."""
    if integration.integration_type == "prometheus":
        return f"/{project.full_path}/prometheus/alerts/notify.json"
    identifier = integration.endpoint_identifier
    return f"/{project.full_path}/alerts/notify/{name_slug(integration)}/{identifier}.json"


def list_integrations(ctx: Ctx, project: Project) -> list[AlertIntegration]:
    _require(can_admin_integrations(ctx, project))
    return list(
        ctx.db.scalars(
            select(AlertIntegration)
            .where(AlertIntegration.project_id == project.id)
            .order_by(AlertIntegration.id)
        )
    )


def find_integration(ctx: Ctx, project: Project, integration_id: int) -> AlertIntegration:
    _require(can_admin_integrations(ctx, project))
    integration = ctx.db.get(AlertIntegration, integration_id) if 0 < integration_id <= MAX_ID else None
    if integration is None or integration.project_id != project.id:
        raise NotFound("Integration")
    return integration


def _name_errors(name: str) -> list[str]:
    if not name.strip():
        return ["can't be blank"]
    if len(name) > NAME_MAX:
        return [f"is too long (maximum is {NAME_MAX} characters)"]
    return []


def _new_token(ctx: Ctx) -> tuple[str, str]:
    token = secrets.token_hex(16)
    return token, digest(ctx.instance.secret_key, token)


def create_integration(
    ctx: Ctx, project: Project, *, name: str, active: bool = True, integration_type: str = "http"
) -> IssuedIntegration:
    """A new integration with a fresh token (shown once). Maintainers+ and admins.

    One Prometheus integration per project (GitLab's). Raises Forbidden, Invalid."""
    _require(can_admin_integrations(ctx, project))
    _check_text("name", name)
    if e := _name_errors(name):
        raise Invalid("", {"name": e})
    if integration_type not in INTEGRATION_TYPES:
        raise BadParameter("type does not have a valid value")
    if integration_type == "prometheus" and ctx.db.scalar(
        select(AlertIntegration.id).where(
            AlertIntegration.project_id == project.id, AlertIntegration.integration_type == "prometheus"
        )
    ):
        raise Invalid("", {"type": ["has already been taken"]})
    token, token_digest = _new_token(ctx)
    now = ctx.now()
    integration = AlertIntegration(
        project_id=project.id,
        name=name,
        active=active,
        integration_type=integration_type,
        endpoint_identifier=secrets.token_hex(8),
        token_digest=token_digest,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(integration)
    ctx.db.flush()
    record(
        ctx,
        Event.ALERT_INTEGRATION_CREATED,
        _entity(project),
        target=integration_target(integration),
        custom_message=f"Created alert integration {name}",
        integration_type=integration_type,
        active=active,
    )
    return IssuedIntegration(integration, token)


def update_integration(
    ctx: Ctx,
    project: Project,
    integration: AlertIntegration,
    *,
    name: str | None = None,
    active: bool | None = None,
) -> AlertIntegration:
    """Rename, activate or deactivate. Nothing written when nothing changes."""
    _require(can_admin_integrations(ctx, project))
    _check_text("name", name)
    if name is not None and (e := _name_errors(name)):
        raise Invalid("", {"name": e})
    changes: dict[str, list[Any]] = {}
    if name is not None and name != integration.name:
        changes["name"] = [integration.name, name]
        integration.name = name
    if active is not None and active != integration.active:
        changes["active"] = [integration.active, active]
        integration.active = active
    if not changes:
        return integration
    integration.updated_at = ctx.now()
    ctx.db.flush()
    record(
        ctx,
        Event.ALERT_INTEGRATION_UPDATED,
        _entity(project),
        target=integration_target(integration),
        changes=changes,
    )
    return integration


def reset_integration_token(ctx: Ctx, project: Project, integration: AlertIntegration) -> IssuedIntegration:
    """A new token ("Reset key"); the old one stops working with this transaction."""
    _require(can_admin_integrations(ctx, project))
    token, token_digest = _new_token(ctx)
    integration.token_digest = token_digest
    integration.updated_at = ctx.now()
    ctx.db.flush()
    record(
        ctx,
        Event.ALERT_INTEGRATION_TOKEN_RESET,
        _entity(project),
        target=integration_target(integration),
        custom_message=f"Reset the token of alert integration {integration.name}",
    )
    return IssuedIntegration(integration, token)


def delete_integration(ctx: Ctx, project: Project, integration: AlertIntegration) -> None:
    """Delete the integration (its alerts stay, unlinked)."""
    _require(can_admin_integrations(ctx, project))
    target = integration_target(integration)
    ctx.db.delete(integration)
    ctx.db.flush()
    record(
        ctx,
        Event.ALERT_INTEGRATION_DELETED,
        _entity(project),
        target=target,
        custom_message=f"Deleted alert integration {target.details}",
    )


# --- alerts ------------------------------------------------------------------------------------


def alert_target(project: Project, alert: Alert) -> Target:
    return Target(ALERT_TARGET, alert.id, f"{project.full_path}^alert#{alert.iid}")


def list_alerts(ctx: Ctx, project: Project, status: str | None = None) -> list[Alert]:
    """The project's alerts, newest first; ``status`` one of STATUSES (BadParameter otherwise)."""
    _require(can_read_alerts(ctx, project))
    query = select(Alert).where(Alert.project_id == project.id)
    if status is not None:
        if status not in STATUSES:
            raise BadParameter("status does not have a valid value")
        query = query.where(Alert.status == status)
    return list(ctx.db.scalars(query.order_by(Alert.iid.desc())))


def find_alert(ctx: Ctx, project: Project, iid: int) -> Alert:
    _require(can_read_alerts(ctx, project))
    alert = (
        ctx.db.scalars(select(Alert).where(Alert.project_id == project.id, Alert.iid == iid)).first()
        if 0 < iid <= MAX_ID
        else None
    )
    if alert is None:
        raise NotFound("Alert")
    return alert


def update_alert_status(ctx: Ctx, project: Project, alert: Alert, status: str) -> Alert:
    """Acknowledge, resolve, ignore or re-trigger (Developers+). Resolving sets ``ended_at``."""
    _require(can_update_alerts(ctx, project))
    if status not in STATUSES:
        raise BadParameter("status does not have a valid value")
    if status == alert.status:
        return alert
    old = alert.status
    now = ctx.now()
    alert.status = status
    alert.ended_at = now if status == "resolved" else None
    alert.updated_at = now
    ctx.db.flush()
    record(
        ctx,
        Event.ALERT_STATUS_CHANGED,
        _entity(project),
        target=alert_target(project, alert),
        custom_message=f"Changed the status of alert #{alert.iid} to {status}",
        **{"from": old, "to": status},
    )
    return alert


def alert_issue(ctx: Ctx, alert: Alert) -> Issue | None:
    return None if alert.issue_id is None else ctx.db.get(Issue, alert.issue_id)


def alert_issues(ctx: Ctx, alerts: list[Alert]) -> dict[int, Issue]:
    """The incidents of these alerts, by issue id, in one query."""
    ids = {a.issue_id for a in alerts if a.issue_id is not None}
    if not ids:
        return {}
    return {i.id: i for i in ctx.db.scalars(select(Issue).where(Issue.id.in_(ids)))}


@dataclass(frozen=True)
class AlertActivity:
    at: dt.datetime
    who: str
    text: str


def alert_activity(ctx: Ctx, alert: Alert, incident: Issue | None) -> list[AlertActivity]:
    """What happened to the alert, oldest first: its audit events (created, each repeat, status
    changes) and its incident opened and closed."""
    db = ctx.db
    items = []
    for event in db.scalars(
        select(AuditEvent)
        .where(AuditEvent.target_type == ALERT_TARGET, AuditEvent.target_id == alert.id)
        .order_by(AuditEvent.id)
    ):
        details = event.details or {}
        if "custom_message" in details:
            text = str(details["custom_message"])
        elif "events" in details:
            text = f"Received the alert again ({details['events']} events in all)"
        else:
            text = event.event_name.replace(".", " ").replace("_", " ").capitalize()
        items.append(AlertActivity(event.created_at, event.author_name, text))
    if incident is not None:
        author = db.get(User, incident.author_id)
        opened_by = author.username if author else "A deleted user"
        items.append(AlertActivity(incident.created_at, opened_by, f"Opened incident #{incident.iid}"))
        if incident.state == "closed" and incident.closed_at is not None:
            closer = db.get(User, incident.closed_by_id) if incident.closed_by_id else None
            closed_by = closer.username if closer else "A deleted user"
            items.append(AlertActivity(incident.closed_at, closed_by, f"Closed incident #{incident.iid}"))
    return sorted(items, key=lambda item: item.at)


# --- incident settings -------------------------------------------------------------------------


def _settings_row(ctx: Ctx, project: Project) -> IncidentSettings | None:
    return ctx.db.get(IncidentSettings, project.id)


def incident_settings(ctx: Ctx, project: Project) -> IncidentSettings:
    """The project's settings (GitLab's defaults when never saved: an unsaved row). Maintainers+."""
    _require(can_admin_integrations(ctx, project))
    row = _settings_row(ctx, project)
    if row is not None:
        return row
    return IncidentSettings(
        project_id=project.id,
        create_issue=False,
        send_email=False,
        auto_close_incident=True,
        last_alert_iid=0,
    )


def _ensure_settings(ctx: Ctx, project: Project) -> IncidentSettings:
    row = _settings_row(ctx, project)
    if row is not None:
        return row
    try:
        with ctx.db.begin_nested():
            row = IncidentSettings(
                project_id=project.id,
                create_issue=False,
                send_email=False,
                auto_close_incident=True,
                last_alert_iid=0,
            )
            ctx.db.add(row)
            ctx.db.flush()
        return row
    except IntegrityError:
        # A concurrent first use made it.
        found = _settings_row(ctx, project)
        assert found is not None
        return found


def update_incident_settings(
    ctx: Ctx,
    project: Project,
    *,
    create_issue: bool | None = None,
    send_email: bool | None = None,
    auto_close_incident: bool | None = None,
) -> IncidentSettings:
    """Change the settings (Maintainers+); nothing written when nothing changes."""
    _require(can_admin_integrations(ctx, project))
    current = incident_settings(ctx, project)
    wanted = {
        "create_issue": create_issue,
        "send_email": send_email,
        "auto_close_incident": auto_close_incident,
    }
    changes = {
        name: [getattr(current, name), value]
        for name, value in wanted.items()
        if value is not None and value != getattr(current, name)
    }
    if not changes:
        return current
    row = _ensure_settings(ctx, project)
    for name, (_old, new) in changes.items():
        setattr(row, name, new)
    row.updated_at = ctx.now()
    ctx.db.flush()
    record(
        ctx,
        Event.INCIDENT_SETTINGS_UPDATED,
        _entity(project),
        target=Target("IncidentManagement::ProjectIncidentManagementSetting", project.id, project.full_path),
        changes=changes,
    )
    return row


# --- notifications (the Alert Bot's work) ------------------------------------------------------


def _token_matches(ctx: Ctx, integration: AlertIntegration, token: str | None) -> bool:
    if not token:
        return False
    return hmac.compare_digest(integration.token_digest, digest(ctx.instance.secret_key, token))


def _notify_project(ctx: Ctx, project_path: str) -> Project:
    project = get_project(ctx, project_path) if project_path and not project_path.isdigit() else None
    if project is None:
        raise NotFound("Project")
    return project


def process_notification(
    ctx: Ctx,
    project_path: str,
    *,
    token: str | None,
    payload: Any,
    endpoint_identifier: str | None = None,
    prometheus: bool = False,
) -> list[Alert]:
    """Accept one notification for the project at ``project_path`` (its full path).

    The integration is the project's HTTP integration ``endpoint_identifier``, or its Prometheus
    integration (``prometheus``). Raises NotFound("Project") for an unknown project or integration
    alike, Forbidden for an inactive integration, Unauthenticated for a missing or wrong token
    (GitLab's order), Invalid for a payload that is not an object (or an Alertmanager payload
    without alerts). Returns the alerts created or updated; the work is done as the Alert Bot.
    """
    project = _notify_project(ctx, project_path)
    query = select(AlertIntegration).where(AlertIntegration.project_id == project.id)
    if prometheus:
        query = query.where(AlertIntegration.integration_type == "prometheus")
    else:
        if not endpoint_identifier:
            raise NotFound("Project")
        query = query.where(
            AlertIntegration.endpoint_identifier == endpoint_identifier,
            AlertIntegration.integration_type == "http",
        )
    integration = ctx.db.scalars(query.order_by(AlertIntegration.id)).first()
    if integration is None:
        raise NotFound("Project")
    if not integration.active:
        raise Forbidden()
    if not _token_matches(ctx, integration, token):
        raise Unauthenticated()
    parsed = payloads.parse(payload, ctx.now(), prometheus=prometheus)
    bot = internal_user(ctx, UserType.ALERT_BOT)
    bot_ctx = ctx.as_actor(Actor(user=bot, ip=ctx.actor.ip, via="system"))
    settings = _lock_settings(bot_ctx, project)
    return [
        alert
        for item in parsed
        if (alert := _process_one(bot_ctx, project, integration, settings, item)) is not None
    ]


def _lock_settings(ctx: Ctx, project: Project) -> IncidentSettings:
    """The settings row, row-locked for the rest of the transaction: one project's notifications
    are processed one at a time (so a fingerprint opens one alert, whatever the concurrency)."""
    _ensure_settings(ctx, project)
    ctx.db.execute(
        update(IncidentSettings)
        .where(IncidentSettings.project_id == project.id)
        .values(last_alert_iid=IncidentSettings.last_alert_iid)
        .execution_options(synchronize_session=False)
    )
    row = _settings_row(ctx, project)
    assert row is not None
    ctx.db.refresh(row)
    return row


def _next_alert_iid(ctx: Ctx, project: Project) -> int:
    value = ctx.db.execute(
        update(IncidentSettings)
        .where(IncidentSettings.project_id == project.id)
        .values(last_alert_iid=IncidentSettings.last_alert_iid + 1)
        .returning(IncidentSettings.last_alert_iid)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    # Also past any alert numbered before the counter existed (never, but cheap to be sure).
    highest = ctx.db.scalar(select(func.max(Alert.iid)).where(Alert.project_id == project.id)) or 0
    return max(int(value), int(highest) + 1)


def _fingerprint_hash(plain: str | None) -> str | None:
    return None if not plain else hashlib.sha1(plain.encode(), usedforsecurity=False).hexdigest()


def _process_one(
    ctx: Ctx,
    project: Project,
    integration: AlertIntegration,
    settings: IncidentSettings,
    item: payloads.ParsedAlert,
) -> Alert | None:
    fingerprint = _fingerprint_hash(item.fingerprint)
    existing = None
    if fingerprint is not None:
        existing = ctx.db.scalars(
            select(Alert)
            .where(
                Alert.project_id == project.id,
                Alert.fingerprint == fingerprint,
                Alert.status.in_(OPEN_STATUSES),
            )
            .order_by(Alert.id.desc())
        ).first()
    if existing is not None:
        if item.resolved:
            _resolve(ctx, project, settings, existing, item.ended_at)
        else:
            _register_event(ctx, project, existing)
        return existing
    if item.resolved:
        # A recovery for an alert that is not open: nothing to do (GitLab's).
        return None
    return _create_alert(ctx, project, integration, settings, item, fingerprint)


def _register_event(ctx: Ctx, project: Project, alert: Alert) -> None:
    alert.events = Alert.events + 1
    alert.updated_at = ctx.now()
    ctx.db.flush()
    ctx.db.refresh(alert, ["events"])
    record(
        ctx,
        Event.ALERT_EVENT_REGISTERED,
        _entity(project),
        target=alert_target(project, alert),
        events=alert.events,
    )


def _resolve(
    ctx: Ctx, project: Project, settings: IncidentSettings, alert: Alert, ended_at: dt.datetime | None
) -> None:
    old = alert.status
    now = ctx.now()
    alert.status = "resolved"
    alert.ended_at = ended_at or now
    alert.updated_at = now
    ctx.db.flush()
    record(
        ctx,
        Event.ALERT_STATUS_CHANGED,
        _entity(project),
        target=alert_target(project, alert),
        custom_message=f"Resolved alert #{alert.iid} on a recovery notification",
        **{"from": old, "to": "resolved"},
    )
    if settings.auto_close_incident:
        issue = alert_issue(ctx, alert)
        if issue is not None and issue.state == "opened" and not project.archived:
            _close_incident(ctx, project, issue)


def _close_incident(ctx: Ctx, project: Project, issue: Issue) -> None:
    assert ctx.actor.user is not None
    now = ctx.now()
    note = Note(
        project_id=project.id,
        issue_id=issue.id,
        author_id=ctx.actor.user.id,
        body=AUTO_CLOSE_NOTE,
        system=True,
        confidential=False,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(note)
    ctx.db.flush()
    record(
        ctx,
        Event.NOTE_CREATED,
        _entity(project),
        target=Target("Note", note.id, f"{project.full_path}#{issue.iid} note {note.id}"),
        custom_message=f"Commented on issue {project.full_path}#{issue.iid}",
        issue_iid=issue.iid,
        internal=False,
        system=True,
    )
    update_issue(ctx, project, issue, IssueChanges(state_event="close"))


def _create_alert(
    ctx: Ctx,
    project: Project,
    integration: AlertIntegration,
    settings: IncidentSettings,
    item: payloads.ParsedAlert,
    fingerprint: str | None,
) -> Alert:
    now = ctx.now()
    alert = Alert(
        project_id=project.id,
        iid=_next_alert_iid(ctx, project),
        integration_id=integration.id,
        title=item.title,
        description=item.description,
        service=item.service,
        monitoring_tool=item.monitoring_tool,
        hosts=item.hosts,
        severity=item.severity,
        status="triggered",
        events=1,
        fingerprint=fingerprint,
        environment_name=item.environment_name,
        started_at=item.started_at,
        ended_at=None,
        payload=item.payload,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(alert)
    ctx.db.flush()
    record(
        ctx,
        Event.ALERT_CREATED,
        _entity(project),
        target=alert_target(project, alert),
        custom_message=f"Alert created via {item.monitoring_tool or integration.name}",
        severity=alert.severity,
        integration_id=integration.id,
    )
    if settings.create_issue and not project.archived:
        _open_incident(ctx, project, alert, item.default_title)
    if settings.send_email:
        _email_alert(ctx, project, alert)
    return alert


def alert_url(ctx: Ctx, project: Project, alert: Alert) -> str:
    """The alert's page in the web UI (GitLab's ``/-/alert_management/<iid>/details``)."""
    base = ctx.instance.external_url.rstrip("/")
    return f"{base}/{project.full_path}/-/alert_management/{alert.iid}/details"


def alert_summary(ctx: Ctx, project: Project, alert: Alert) -> str:
    """The Markdown summary an incident's description carries (GitLab's alert summary)."""
    lines = [f"**Start time:** {alert.started_at.isoformat()}", f"**Severity:** {alert.severity}"]
    if alert.environment_name:
        lines.append(f"**GitLab alert:** {alert.environment_name}")
    if alert.service:
        lines.append(f"**Service:** {alert.service}")
    if alert.monitoring_tool:
        lines.append(f"**Monitoring tool:** {alert.monitoring_tool}")
    if alert.hosts:
        lines.append(f"**Hosts:** {', '.join(str(h) for h in alert.hosts)}")
    if alert.description:
        lines.append(f"**Description:** {alert.description}")
    body = "  \n".join(lines)
    return f"{body}\n\n[View alert details]({alert_url(ctx, project, alert)})"


def _open_incident(ctx: Ctx, project: Project, alert: Alert, default_title: bool) -> None:
    title = f"New: Incident {alert.iid}" if default_title else alert.title
    issue = create_issue(
        ctx,
        project,
        title=title[:255],
        description=alert_summary(ctx, project, alert),
        issue_type="incident",
    )
    alert.issue_id = issue.id
    ctx.db.flush()


def _recipients(ctx: Ctx, project: Project) -> list[User]:
    """GitLab's ``owners_and_maintainers_without_invites``: the project's direct Maintainers and
    Owners, else (none) its group's; only people who can receive e-mail."""
    today = ctx.today()

    def members(source_type: str, source_id: int) -> list[User]:
        ids = select(Member.user_id).where(
            Member.source_type == source_type,
            Member.source_id == source_id,
            Member.access_level >= int(AccessLevel.MAINTAINER),
            (Member.expires_at.is_(None)) | (Member.expires_at > today),
        )
        return list(ctx.db.scalars(select(User).where(User.id.in_(ids)).order_by(User.id)))

    users = members(SourceType.PROJECT.value, project.id)
    namespace = project.namespace
    if not users and namespace.is_group:
        users = members(SourceType.NAMESPACE.value, namespace.id)
    if not namespace.is_group and namespace.owner_id is not None:
        owner = ctx.db.get(User, namespace.owner_id)
        if owner is not None and all(u.id != owner.id for u in users):
            users.append(owner)
    people = {UserType.HUMAN, UserType.SERVICE_USER, UserType.SERVICE_ACCOUNT}
    return [u for u in users if u.is_active and u.type in people]


def _email_alert(ctx: Ctx, project: Project, alert: Alert) -> None:
    subject = f"{project.name} | Alert: {alert.title}"
    for user in _recipients(ctx, project):
        enqueue(
            ctx,
            to_address=user.email,
            to_user_id=user.id,
            subject=subject[:255],
            template="alert_fired",
            context={
                "name": user.name,
                "project_name": project.name,
                "project_path": project.full_path,
                "alert_iid": alert.iid,
                "alert_title": alert.title,
                "alert_severity": alert.severity,
                "alert_started_at": alert.started_at.isoformat(),
                "alert_description": alert.description or "",
                "alert_url": alert_url(ctx, project, alert),
            },
        )


def on_audit_event(ctx: Ctx, event: AuditEvent) -> None:
    """Closing an incident resolves its open alerts (GitLab's), in the same transaction, as the
    user who closed it (installed by ``bootstrap`` with ``audit.service.subscribe``)."""
    if (
        event.event_name != Event.ISSUE_UPDATED.value
        or event.target_type != "Issue"
        or event.target_id is None
        or event.details.get("change") != "state"
        or event.details.get("to") != "closed"
    ):
        return
    alerts = ctx.db.scalars(
        select(Alert).where(Alert.issue_id == event.target_id, Alert.status.in_(OPEN_STATUSES))
    ).all()
    if not alerts:
        return
    project = ctx.db.get(Project, alerts[0].project_id)
    if project is None:
        return
    now = ctx.now()
    for alert in alerts:
        old = alert.status
        alert.status, alert.ended_at, alert.updated_at = "resolved", now, now
        ctx.db.flush()
        record(
            ctx,
            Event.ALERT_STATUS_CHANGED,
            _entity(project),
            target=alert_target(project, alert),
            custom_message=f"Resolved alert #{alert.iid} by closing its incident",
            **{"from": old, "to": "resolved"},
        )
