"""/api/v4 routes of alert management, keycrew's own (GitLab manages these through GraphQL):
HTTP integrations, alerts (read, change status) and the project's incident settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from keycrew.access.lookup import find_project
from keycrew.alerts import service
from keycrew.alerts.models import Alert, AlertIntegration, IncidentSettings
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import iso
from keycrew.api.pagination import paginate_list
from keycrew.api.params import path_id
from keycrew.context import Ctx
from keycrew.errors import MissingParameter
from keycrew.namespaces.models import Project

router = APIRouter()

INTEGRATIONS = "/projects/{project_id}/alert_management/http_integrations"
INTEGRATION = INTEGRATIONS + "/{integration_id}"
ALERTS = "/projects/{project_id}/alert_management/alerts"
ALERT = ALERTS + "/{alert_iid}"
SETTINGS = "/projects/{project_id}/incident_management_setting"


def _base(ctx: Ctx) -> str:
    return ctx.instance.external_url.rstrip("/")


def integration_entity(ctx: Ctx, project: Project, row: AlertIntegration, token: str | None = None) -> Any:
    data: dict[str, Any] = {
        "id": row.id,
        "name": row.name,
        "active": row.active,
        "type": row.integration_type,
        "endpoint_identifier": row.endpoint_identifier,
        "url": _base(ctx) + service.notify_path(project, row),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    if token is not None:
        data["token"] = token
    return data


def alert_entity(ctx: Ctx, project: Project, row: Alert) -> dict[str, Any]:
    issue = service.alert_issue(ctx, row)
    return {
        "id": row.id,
        "iid": row.iid,
        "project_id": row.project_id,
        "title": row.title,
        "description": row.description,
        "status": row.status,
        "severity": row.severity,
        "service": row.service,
        "monitoring_tool": row.monitoring_tool,
        "hosts": row.hosts,
        "events": row.events,
        "fingerprint": row.fingerprint,
        "environment_name": row.environment_name,
        "started_at": iso(row.started_at),
        "ended_at": iso(row.ended_at),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "issue_iid": None if issue is None else issue.iid,
        "payload": row.payload,
        "web_url": service.alert_url(ctx, project, row),
    }


def settings_entity(row: IncidentSettings) -> dict[str, Any]:
    return {
        "create_issue": bool(row.create_issue),
        "send_email": bool(row.send_email),
        "auto_close_incident": bool(row.auto_close_incident),
    }


# -- integrations --------------------------------------------------------------------------------


@router.get(INTEGRATIONS)
def list_integrations(
    project_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    project = find_project(ctx, project_id)
    rows = service.list_integrations(ctx, project)
    return paginate_list(request, params, rows, lambda r: integration_entity(ctx, project, r))


@router.post(INTEGRATIONS, status_code=201)
def create_integration(project_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Any:
    project = find_project(ctx, project_id)
    name = params.text("name")
    if name is None:
        raise MissingParameter("name is missing")
    issued = service.create_integration(
        ctx,
        project,
        name=name,
        active=params.boolean("active", True) is not False,
        integration_type=params.choice("type", service.INTEGRATION_TYPES, default="http") or "http",
    )
    return JSONResponse(integration_entity(ctx, project, issued.integration, issued.token), status_code=201)


@router.get(INTEGRATION)
def get_integration(project_id: str, integration_id: str, ctx: Ctx = api_ctx()) -> Any:
    project = find_project(ctx, project_id)
    row = service.find_integration(ctx, project, path_id(integration_id, "integration_id"))
    return integration_entity(ctx, project, row)


@router.put(INTEGRATION)
def update_integration(
    project_id: str, integration_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Any:
    project = find_project(ctx, project_id)
    row = service.find_integration(ctx, project, path_id(integration_id, "integration_id"))
    row = service.update_integration(
        ctx, project, row, name=params.text("name"), active=params.boolean("active")
    )
    return integration_entity(ctx, project, row)


@router.post(INTEGRATION + "/reset_token", status_code=201)
def reset_integration_token(project_id: str, integration_id: str, ctx: Ctx = api_ctx()) -> Any:
    project = find_project(ctx, project_id)
    row = service.find_integration(ctx, project, path_id(integration_id, "integration_id"))
    issued = service.reset_integration_token(ctx, project, row)
    return JSONResponse(integration_entity(ctx, project, issued.integration, issued.token), status_code=201)


@router.delete(INTEGRATION, status_code=204)
def delete_integration(project_id: str, integration_id: str, ctx: Ctx = api_ctx()) -> Response:
    project = find_project(ctx, project_id)
    row = service.find_integration(ctx, project, path_id(integration_id, "integration_id"))
    service.delete_integration(ctx, project, row)
    return Response(status_code=204)


# -- alerts --------------------------------------------------------------------------------------


@router.get(ALERTS)
def list_alerts(
    project_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    project = find_project(ctx, project_id)
    status = params.choice("status", service.STATUSES)
    rows = service.list_alerts(ctx, project, status=status)
    return paginate_list(request, params, rows, lambda r: alert_entity(ctx, project, r))


@router.get(ALERT)
def get_alert(project_id: str, alert_iid: str, ctx: Ctx = api_ctx()) -> Any:
    project = find_project(ctx, project_id)
    return alert_entity(ctx, project, service.find_alert(ctx, project, path_id(alert_iid, "alert_iid")))


@router.put(ALERT)
def update_alert(project_id: str, alert_iid: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Any:
    project = find_project(ctx, project_id)
    alert = service.find_alert(ctx, project, path_id(alert_iid, "alert_iid"))
    status = params.choice("status", service.STATUSES, required=True)
    assert status is not None
    return alert_entity(ctx, project, service.update_alert_status(ctx, project, alert, status))


# -- incident settings ---------------------------------------------------------------------------


@router.get(SETTINGS)
def get_incident_settings(project_id: str, ctx: Ctx = api_ctx()) -> Any:
    project = find_project(ctx, project_id)
    return settings_entity(service.incident_settings(ctx, project))


@router.put(SETTINGS)
def put_incident_settings(project_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Any:
    project = find_project(ctx, project_id)
    row = service.update_incident_settings(
        ctx,
        project,
        create_issue=params.boolean("create_issue"),
        send_email=params.boolean("send_email"),
        auto_close_incident=params.boolean("auto_close_incident"),
    )
    return settings_entity(row)
