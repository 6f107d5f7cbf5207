"""/api/v4 routes: instance, group and project audit events (read-only)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Select, select

from keycrew.access.lookup import find_group, find_project
from keycrew.access.policy import effective_group_level, effective_project_level
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities.audit import audit_event
from keycrew.api.pagination import fetch, respond
from keycrew.audit import queries
from keycrew.audit.models import AuditEvent
from keycrew.context import Ctx
from keycrew.errors import BadParameter, MissingParameter
from keycrew.identity.models import User

router = APIRouter()


def _event_id(value: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise BadParameter("id is invalid")
    return int(value)


def _impersonators(ctx: Ctx, events: Iterable[AuditEvent]) -> Mapping[int, str]:
    ids = {e.impersonated_by_id for e in events if e.impersonated_by_id is not None}
    if not ids:
        return {}
    rows = ctx.db.execute(select(User.id, User.username).where(User.id.in_(ids))).all()
    return {int(uid): str(name) for uid, name in rows}


def _render(ctx: Ctx, event: AuditEvent) -> dict[str, Any]:
    return audit_event(event, _impersonators(ctx, [event]))


def _page(request: Request, ctx: Ctx, params: Params, query: Select[Any]) -> Response:
    found = fetch(ctx.db, params, query)
    names = _impersonators(ctx, found.rows)
    return respond(request, [audit_event(r, names) for r in found.rows], found)


def _dates(params: Params) -> queries.EventFilter:
    return queries.EventFilter(
        created_after=params.datetime("created_after"), created_before=params.datetime("created_before")
    )


@router.get("/audit_events")
def list_instance_events(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    entity_type = params.choice("entity_type", queries.ENTITY_TYPES)
    entity_id = params.integer("entity_id")
    if entity_id is not None and entity_type is None:
        raise MissingParameter("entity_type is missing")
    dates = _dates(params)
    flt = queries.EventFilter(dates.created_after, dates.created_before, entity_type, entity_id)
    return _page(request, ctx, params, queries.instance_events(ctx, flt))


@router.get("/audit_events/{event_id}")
def get_instance_event(event_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return _render(ctx, queries.instance_event(ctx, _event_id(event_id)))


@router.get("/groups/{group_id}/audit_events")
def list_group_events(
    group_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    group = find_group(ctx, group_id)
    level = effective_group_level(ctx.reads, ctx.actor, group, ctx.today())
    return _page(request, ctx, params, queries.group_events(ctx, group.id, level, _dates(params)))


@router.get("/groups/{group_id}/audit_events/{event_id}")
def get_group_event(group_id: str, event_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    group = find_group(ctx, group_id)
    level = effective_group_level(ctx.reads, ctx.actor, group, ctx.today())
    return _render(ctx, queries.group_event(ctx, group.id, level, _event_id(event_id)))


@router.get("/projects/{project_id}/audit_events")
def list_project_events(
    project_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    project = find_project(ctx, project_id)
    level = effective_project_level(ctx.reads, ctx.actor, project, ctx.today())
    return _page(request, ctx, params, queries.project_events(ctx, project.id, level, _dates(params)))


@router.get("/projects/{project_id}/audit_events/{event_id}")
def get_project_event(project_id: str, event_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    project = find_project(ctx, project_id)
    level = effective_project_level(ctx.reads, ctx.actor, project, ctx.today())
    return _render(ctx, queries.project_event(ctx, project.id, level, _event_id(event_id)))
