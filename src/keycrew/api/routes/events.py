"""/api/v4 routes: contribution events (the caller's, a user's, a project's) and user activities."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from keycrew.access.lookup import read_project
from keycrew.activity.kinds import ACTIONS, TARGET_TYPES
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.events import event, user_activity
from keycrew.api.pagination import fetch_listing, respond
from keycrew.context import Ctx
from keycrew.db.listings import Listing
from keycrew.identity.views import user_briefs, user_view
from keycrew.records.events import (
    EVENT_SORTS,
    EventFilter,
    EventRow,
    own_events,
    project_events,
    user_activities,
    user_events,
)

router = APIRouter()

TARGET_TYPE_VALUES = tuple(TARGET_TYPES)


def _filter(params: Params) -> EventFilter:
    return EventFilter(
        action=params.choice("action", ACTIONS),
        target_type=params.choice("target_type", TARGET_TYPE_VALUES),
        before=params.date("before"),
        after=params.date("after"),
        sort=params.choice("sort", EVENT_SORTS, default="desc") or "desc",
    )


def _render(request: Request, ctx: Ctx, params: Params, listed: Listing) -> Response:
    """A page of events with their authors (and their notes' authors), read in one batch."""
    found = fetch_listing(ctx.reads, params, listed)
    rows = [EventRow(*row) for row in found.rows]
    authors = user_briefs(
        ctx.reads, {r.author_id for r in rows} | {r.note_author_id for r in rows if r.note_author_id}
    )
    base = base_url(request)
    return respond(request, [event(row, authors, base) for row in rows], found)


@router.api_route("/events", methods=["GET", "HEAD"])
def list_own_events(
    request: Request, ctx: Ctx = api_ctx(read_user=True), params: Params = params_dep()
) -> Response:
    """The caller's events; ``scope=all``: every event in the projects they belong to."""
    scope_all = params.text("scope") == "all"
    return _render(request, ctx, params, own_events(ctx, _filter(params), scope_all=scope_all))


@router.api_route("/users/{user_id}/events", methods=["GET", "HEAD"])
def list_user_events(
    user_id: str,
    request: Request,
    ctx: Ctx = api_ctx(auth=False, read_user=True),
    params: Params = params_dep(),
) -> Response:
    return _render(request, ctx, params, user_events(ctx, user_id, _filter(params)))


@router.api_route("/projects/{project_id}/events", methods=["GET", "HEAD"])
def list_project_events(
    project_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    flt = _filter(params)
    project = read_project(ctx, project_id)
    return _render(request, ctx, params, project_events(ctx, project, flt))


@router.api_route("/user/activities", methods=["GET", "HEAD"])
def list_user_activities(
    request: Request, ctx: Ctx = api_ctx(read_user=True), params: Params = params_dep()
) -> Response:
    """Users active since ``from`` (admins only)."""
    listed = user_activities(ctx, params.date("from"))
    found = fetch_listing(ctx.reads, params, listed)
    return respond(request, [user_activity(user_view(row)) for row in found.rows], found)
