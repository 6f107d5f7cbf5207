"""Web UI: a project's Monitor > Alerts (the alerts with status tabs, an alert's page with its
details, activity and status buttons) and Settings > Monitor (the alert integrations: add, token
shown once, reset token, activate or deactivate, delete; and the incident settings).

Every button calls the use case of keycrew.alerts.service that the REST API calls: Developers and
above see and update alerts, Maintainers and above manage the integrations and incident settings
(the use cases refuse the others; the UI shows its 403 page).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fastapi import APIRouter, Response

from keycrew.access.lookup import find_project
from keycrew.access.resources import Resource
from keycrew.alerts import service
from keycrew.alerts.models import Alert, AlertIntegration
from keycrew.errors import KeycrewError, NotFound
from keycrew.namespaces.models import Project
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of
from keycrew.web.security import Flash

router = APIRouter()

ALERTS = "/-/alert_management"
SETTINGS = "/-/settings/operations"

# The tabs of the alert list: key, label, the statuses it shows (None: every one).
TABS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    ("open", "Open", ("triggered", "acknowledged")),
    ("triggered", "Triggered", ("triggered",)),
    ("acknowledged", "Acknowledged", ("acknowledged",)),
    ("resolved", "Resolved", ("resolved",)),
    ("ignored", "Ignored", ("ignored",)),
    ("all", "All", None),
)
# The status buttons of an alert's page: the status each sets, its label.
TRANSITIONS = (
    ("acknowledged", "Acknowledge"),
    ("resolved", "Resolve"),
    ("ignored", "Ignore"),
    ("triggered", "Reopen"),
)
TYPE_LABELS = {"http": "HTTP endpoint", "prometheus": "Prometheus"}
PAYLOAD_SHOWN = 20_000  # characters of the last payload shown on an alert's page


@dataclass(frozen=True)
class _IntegrationRow:
    integration: AlertIntegration
    url: str


def _project(page: Page, full_path: str) -> Project:
    page.require_user()
    return find_project(page.ctx, full_path.strip("/"))


def _number(raw: str, thing: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise NotFound(thing)
    return int(raw)


def _level(page: Page, project: Project) -> int:
    return Resource(project).level_of(page.ctx)


# -- Monitor > Alerts -------------------------------------------------------------------------


def _alerts_url(project: Project) -> str:
    return f"/{project.full_path}{ALERTS}"


def _index(page: Page, project: Project) -> Response:
    alerts = service.list_alerts(page.ctx, project)
    tab = page.request.query_params.get("status", "open")
    if tab not in {key for key, _label, _statuses in TABS}:
        tab = "open"
    base = _alerts_url(project)
    tabs = []
    shown: list[Alert] = []
    label_of_tab = "Open"
    for key, label, statuses in TABS:
        matching = [a for a in alerts if statuses is None or a.status in statuses]
        tabs.append((key, label, len(matching), base if key == "open" else f"{base}?status={key}"))
        if key == tab:
            shown, label_of_tab = matching, label
    incidents = service.alert_issues(page.ctx, shown)
    return page.render(
        "alerts/index.html",
        title=f"Alerts · {project.name}",
        project=project,
        level=_level(page, project),
        base=base,
        tabs=tabs,
        tab=tab,
        tab_label=label_of_tab,
        alerts=shown,
        incidents=incidents,
        can_configure=service.can_admin_integrations(page.ctx, project),
        settings_url=f"/{project.full_path}{SETTINGS}",
    )


def _show(page: Page, project: Project, raw_iid: str) -> Response:
    alert = service.find_alert(page.ctx, project, _number(raw_iid, "Alert"))
    incident = service.alert_issue(page.ctx, alert)
    integration = (
        page.ctx.db.get(AlertIntegration, alert.integration_id) if alert.integration_id is not None else None
    )
    payload_text = json.dumps(alert.payload or {}, indent=2, sort_keys=True, default=str)
    if len(payload_text) > PAYLOAD_SHOWN:
        payload_text = payload_text[:PAYLOAD_SHOWN] + "\n…"
    return page.render(
        "alerts/show.html",
        title=f"Alert #{alert.iid} · {project.name}",
        project=project,
        level=_level(page, project),
        base=_alerts_url(project),
        alert=alert,
        incident=incident,
        integration_name=integration.name if integration is not None else None,
        activity=service.alert_activity(page.ctx, alert, incident),
        payload_text=payload_text,
        can_update=service.can_update_alerts(page.ctx, project),
        transitions=TRANSITIONS,
    )


def _set_status(page: Page, project: Project, raw_iid: str, form: FormData) -> Response:
    alert = service.find_alert(page.ctx, project, _number(raw_iid, "Alert"))
    status = form.text("status")
    here = f"{_alerts_url(project)}/{alert.iid}/details"
    try:
        with page.savepoint():
            service.update_alert_status(page.ctx, project, alert, status)
    except KeycrewError as exc:
        if status_of(exc) in (403, 404):
            raise
        return page.redirect(here, Flash("alert", describe(exc)))
    label = {"triggered": "Triggered"}.get(status, status.capitalize())
    return page.notice(here, f"The alert's status is now {label}.")


@router.get("/{full_path:webpath}" + ALERTS)
def project_alerts(full_path: str, page: Page = page_dep()) -> Response:
    return _index(page, _project(page, full_path))


@router.get("/{full_path:webpath}" + ALERTS + "/{iid}/details")
def project_alert(full_path: str, iid: str, page: Page = page_dep()) -> Response:
    return _show(page, _project(page, full_path), iid)


@router.post("/{full_path:webpath}" + ALERTS + "/{iid}/status")
def set_alert_status(
    full_path: str, iid: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _set_status(page, _project(page, full_path), iid, form)


# -- Settings > Monitor -----------------------------------------------------------------------


def _settings_url(project: Project) -> str:
    return f"/{project.full_path}{SETTINGS}"


def _render_settings(
    page: Page,
    project: Project,
    *,
    error: str | None = None,
    draft_name: str = "",
    draft_type: str = "prometheus",
    status: int = 200,
) -> Response:
    ctx = page.ctx
    integrations = service.list_integrations(ctx, project)  # Forbidden below Maintainer
    base = ctx.instance.external_url.rstrip("/")
    return page.render(
        "alerts/settings.html",
        status=status,
        title=f"Monitor settings · {project.name}",
        project=project,
        level=_level(page, project),
        action=_settings_url(project),
        integrations=[_IntegrationRow(i, base + service.notify_path(project, i)) for i in integrations],
        types=list(TYPE_LABELS.items()),
        type_labels=TYPE_LABELS,
        settings=service.incident_settings(ctx, project),
        error=error,
        draft_name=draft_name,
        draft_type=draft_type if draft_type in TYPE_LABELS else "prometheus",
    )


def _create_integration(page: Page, project: Project, form: FormData) -> Response:
    name, kind = form.text("name"), form.text("type")
    try:
        with page.savepoint():
            issued = service.create_integration(page.ctx, project, name=name, integration_type=kind)
    except KeycrewError as exc:
        if status_of(exc) in (403, 404):
            raise
        return _render_settings(
            page, project, error=describe(exc), draft_name=name, draft_type=kind, status=status_of(exc)
        )
    return page.redirect(
        _settings_url(project),
        Flash(
            "notice",
            f"The alert integration {issued.integration.name} was added.",
            secret=issued.token,
        ),
    )


def _integration(page: Page, project: Project, raw_id: str) -> AlertIntegration:
    return service.find_integration(page.ctx, project, _number(raw_id, "Integration"))


def _reset_token(page: Page, project: Project, raw_id: str) -> Response:
    issued = service.reset_integration_token(page.ctx, project, _integration(page, project, raw_id))
    return page.redirect(
        _settings_url(project),
        Flash(
            "notice",
            f"The token of {issued.integration.name} was reset: the old one no longer works.",
            secret=issued.token,
        ),
    )


def _set_active(page: Page, project: Project, raw_id: str, form: FormData) -> Response:
    integration = _integration(page, project, raw_id)
    active = form.flag("active")
    service.update_integration(page.ctx, project, integration, active=active)
    state = "activated" if active else "deactivated"
    return page.notice(_settings_url(project), f"The alert integration {integration.name} was {state}.")


def _delete(page: Page, project: Project, raw_id: str) -> Response:
    integration = _integration(page, project, raw_id)
    name = integration.name
    service.delete_integration(page.ctx, project, integration)
    return page.notice(_settings_url(project), f"The alert integration {name} was deleted.")


def _save_incidents(page: Page, project: Project, form: FormData) -> Response:
    service.update_incident_settings(
        page.ctx,
        project,
        create_issue=form.flag("create_issue"),
        send_email=form.flag("send_email"),
        auto_close_incident=form.flag("auto_close_incident"),
    )
    return page.notice(_settings_url(project), "The incident settings were saved.")


@router.get("/{full_path:webpath}" + SETTINGS)
def project_operations(full_path: str, page: Page = page_dep()) -> Response:
    return _render_settings(page, _project(page, full_path))


@router.post("/{full_path:webpath}" + SETTINGS + "/integrations")
def create_integration(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    return _create_integration(page, _project(page, full_path), form)


@router.post("/{full_path:webpath}" + SETTINGS + "/integrations/{integration_id}/reset_token")
def reset_integration_token(full_path: str, integration_id: str, page: Page = form_dep()) -> Response:
    return _reset_token(page, _project(page, full_path), integration_id)


@router.post("/{full_path:webpath}" + SETTINGS + "/integrations/{integration_id}/active")
def set_integration_active(
    full_path: str, integration_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _set_active(page, _project(page, full_path), integration_id, form)


@router.post("/{full_path:webpath}" + SETTINGS + "/integrations/{integration_id}/delete")
def delete_integration(full_path: str, integration_id: str, page: Page = form_dep()) -> Response:
    return _delete(page, _project(page, full_path), integration_id)


@router.post("/{full_path:webpath}" + SETTINGS + "/incidents")
def save_incident_settings(
    full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _save_incidents(page, _project(page, full_path), form)
