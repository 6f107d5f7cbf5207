"""/api/v4 routes: project issues and their notes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Select, select

from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import find_group, find_project
from keycrew.access.projects import projects_query
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities import issues as entities
from keycrew.api.pagination import fetch, respond
from keycrew.context import Ctx
from keycrew.errors import BadParameter, MissingParameter, Unauthenticated
from keycrew.namespaces.models import Project
from keycrew.records import issues as issues_uc
from keycrew.records import notes as notes_uc
from keycrew.records.models import Issue, Note

router = APIRouter()

ISSUE = "/projects/{project_id}/issues/{issue_iid}"
NOTE = ISSUE + "/notes/{note_id}"
SCOPES = ("created_by_me", "created-by-me", "assigned_to_me", "assigned-to-me", "all")
SEARCH_IN = ("title", "description")
# Grape's at_least_one_of for PUT (GitLab CE's list; those keycrew does not store are accepted).
UPDATE_KEYS = (
    "assignee_id",
    "assignee_ids",
    "confidential",
    "created_at",
    "description",
    "discussion_locked",
    "due_date",
    "labels",
    "add_labels",
    "remove_labels",
    "milestone_id",
    "state_event",
    "title",
    "issue_type",
)


def _int_path(name: str, value: str) -> int:
    """Path ids are Integer in Grape: anything else is a 400, not a 404."""
    if not (value.isascii() and value.isdigit()):
        raise BadParameter(f"{name} is invalid")
    return int(value)


def _render_issues(
    request: Request, ctx: Ctx, project: Project, issues: list[Issue], *, include_subscribed: bool
) -> list[dict[str, Any]]:
    users = issues_uc.users_by_id(ctx, [i.author_id for i in issues] + [i.closed_by_id for i in issues])
    counts = issues_uc.user_notes_counts(ctx, [i.id for i in issues])
    base = base_url(request)
    return [
        entities.issue(
            i,
            project,
            users,
            counts.get(i.id, 0),
            base,
            viewer_id=ctx.actor.user_id,
            include_subscribed=include_subscribed,
        )
        for i in issues
    ]


def _render_issue(request: Request, ctx: Ctx, project: Project, issue: Issue) -> dict[str, Any]:
    return _render_issues(request, ctx, project, [issue], include_subscribed=True)[0]


def _issue_filter(ctx: Ctx, params: Params) -> issues_uc.IssueFilter:
    state = params.choice("state", ("opened", "closed", "all"), default="all")
    scope = params.choice("scope", SCOPES, default="all") or "all"
    search_in = tuple(params.strings("in") or SEARCH_IN)
    if any(field not in SEARCH_IN for field in search_in):
        raise BadParameter("in does not have a valid value")
    iids = params.integers("iids")
    return issues_uc.IssueFilter(
        state=None if state == "all" else state,
        author_id=params.integer("author_id"),
        author_username=params.text("author_username"),
        search=params.text("search") or None,
        search_in=search_in,
        confidential=params.boolean("confidential"),
        issue_type=params.choice("issue_type", issues_uc.ISSUE_TYPES),
        iids=None if iids is None else tuple(iids),
        created_after=params.datetime("created_after"),
        created_before=params.datetime("created_before"),
        updated_after=params.datetime("updated_after"),
        updated_before=params.datetime("updated_before"),
        created_by_me=scope.replace("-", "_") == "created_by_me" and ctx.actor.user_id is not None,
        assigned_to_me=scope.replace("-", "_") == "assigned_to_me",
        order_by=params.choice("order_by", issues_uc.ORDER_BY, default="created_at") or "created_at",
        sort=params.choice("sort", ("asc", "desc"), default="desc") or "desc",
    )


def _list_across(
    request: Request, ctx: Ctx, params: Params, projects: Select[Any], *, mine_by_default: bool
) -> Response:
    """Issues of several projects (``/issues``, ``/groups/:id/issues``); each with its project."""
    flt = _issue_filter(ctx, params)
    if mine_by_default and not params.has("scope"):
        # GET /issues lists the caller's own issues unless asked for another scope.
        flt = replace(flt, created_by_me=ctx.actor.user_id is not None)
    project_ids = projects.with_only_columns(Project.id).order_by(None)
    triaged = None
    if ctx.actor.user_id is not None and not ctx.actor.is_admin:
        # The caller's Planner+ projects, read first: their query shares the listing's CTE names.
        planner = projects_query(ctx, min_access_level=AccessLevel.PLANNER)
        triaged = list(ctx.db.scalars(planner.with_only_columns(Project.id).order_by(None)))
    query = issues_uc.issues_in_projects_query(ctx, project_ids, triaged, flt)
    found = fetch(ctx.db, params, query)
    rows: list[Issue] = list(found.rows)
    wanted = {i.project_id for i in rows}
    by_id = {p.id: p for p in ctx.db.scalars(select(Project).where(Project.id.in_(wanted)))} if wanted else {}
    users = issues_uc.users_by_id(ctx, [i.author_id for i in rows] + [i.closed_by_id for i in rows])
    counts = issues_uc.user_notes_counts(ctx, [i.id for i in rows])
    base = base_url(request)
    items = [
        entities.issue(
            i,
            by_id[i.project_id],
            users,
            counts.get(i.id, 0),
            base,
            viewer_id=ctx.actor.user_id,
            include_subscribed=False,
        )
        for i in rows
    ]
    return respond(request, items, found)


@router.get("/issues")
def list_all_issues(
    request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    scope = params.choice("scope", SCOPES)
    if ctx.actor.is_anonymous and scope != "all":
        raise Unauthenticated()
    return _list_across(request, ctx, params, projects_query(ctx), mine_by_default=True)


@router.get("/groups/{group_id}/issues")
def list_group_issues(
    group_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    group = find_group(ctx, group_id)
    projects = projects_query(ctx, namespace=group, include_subgroups=True)
    return _list_across(request, ctx, params, projects, mine_by_default=False)


@router.get("/projects/{project_id}/issues")
def list_issues(
    project_id: str, request: Request, ctx: Ctx = api_ctx(auth=False), params: Params = params_dep()
) -> Response:
    project = find_project(ctx, project_id)
    query = issues_uc.issues_query(ctx, project, _issue_filter(ctx, params))
    found = fetch(ctx.db, params, query)
    items = _render_issues(request, ctx, project, found.rows, include_subscribed=False)
    return respond(request, items, found)


@router.post("/projects/{project_id}/issues", status_code=201)
def post_issue(
    project_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    project = find_project(ctx, project_id)
    title = params.text("title")
    if title is None:
        raise MissingParameter("title is missing")
    issue = issues_uc.create_issue(
        ctx,
        project,
        title=title,
        description=params.text("description"),
        confidential=params.boolean("confidential", False) is True,
        issue_type=params.choice("issue_type", issues_uc.ISSUE_TYPES),
        iid=params.integer("iid"),
        created_at=params.datetime("created_at"),
    )
    return _render_issue(request, ctx, project, issue)


@router.get(ISSUE)
def get_issue(
    project_id: str, issue_iid: str, request: Request, ctx: Ctx = api_ctx(auth=False)
) -> dict[str, Any]:
    project, issue = issues_uc.find_issue(ctx, project_id, _int_path("issue_iid", issue_iid))
    return _render_issue(request, ctx, project, issue)


@router.put(ISSUE)
def put_issue(
    project_id: str, issue_iid: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> dict[str, Any]:
    iid = _int_path("issue_iid", issue_iid)
    if not any(params.has(key) for key in UPDATE_KEYS):
        raise MissingParameter(
            f"{', '.join(UPDATE_KEYS)} are missing, at least one parameter must be provided"
        )
    changes = issues_uc.IssueChanges(
        title=params.text("title"),
        description=params.text("description"),
        confidential=params.boolean("confidential"),
        issue_type=params.choice("issue_type", issues_uc.ISSUE_TYPES),
        state_event=params.choice("state_event", issues_uc.STATE_EVENTS),
        updated_at=params.datetime("updated_at"),
    )
    project, issue = issues_uc.find_issue(ctx, project_id, iid)
    issue = issues_uc.update_issue(ctx, project, issue, changes)
    return _render_issue(request, ctx, project, issue)


@router.delete(ISSUE, status_code=204)
def delete_issue(project_id: str, issue_iid: str, ctx: Ctx = api_ctx()) -> Response:
    project, issue = issues_uc.find_issue(ctx, project_id, _int_path("issue_iid", issue_iid))
    issues_uc.delete_issue(ctx, project, issue)
    return Response(status_code=204)


# -- notes ------------------------------------------------------------------------------------


def _render_notes(request: Request, ctx: Ctx, issue: Issue, notes: list[Note]) -> list[dict[str, Any]]:
    users = issues_uc.users_by_id(ctx, [n.author_id for n in notes])
    base = base_url(request)
    return [entities.note(n, issue, users, base) for n in notes]


@router.get(ISSUE + "/notes")
def list_notes(
    project_id: str,
    issue_iid: str,
    request: Request,
    ctx: Ctx = api_ctx(),
    params: Params = params_dep(),
) -> Response:
    project, issue = issues_uc.find_issue(ctx, project_id, _int_path("noteable_id", issue_iid))
    query = notes_uc.notes_query(
        ctx,
        project,
        issue,
        order_by=params.choice("order_by", notes_uc.ORDER_BY, default="created_at") or "created_at",
        sort=params.choice("sort", ("asc", "desc"), default="desc") or "desc",
    )
    found = fetch(ctx.db, params, query)
    return respond(request, _render_notes(request, ctx, issue, found.rows), found)


@router.post(ISSUE + "/notes", status_code=201)
def post_note(
    project_id: str,
    issue_iid: str,
    request: Request,
    ctx: Ctx = api_ctx(),
    params: Params = params_dep(),
) -> dict[str, Any]:
    iid = _int_path("noteable_id", issue_iid)
    body = params.text("body")
    if body is None:
        raise MissingParameter("body is missing")
    internal = params.boolean("internal")
    confidential = params.boolean("confidential")
    project, issue = issues_uc.find_issue(ctx, project_id, iid)
    note = notes_uc.create_note(
        ctx,
        project,
        issue,
        body=body,
        internal=bool(internal or confidential),
        created_at=params.datetime("created_at"),
    )
    return _render_notes(request, ctx, issue, [note])[0]


@router.get(NOTE)
def get_note(
    project_id: str, issue_iid: str, note_id: str, request: Request, ctx: Ctx = api_ctx()
) -> dict[str, Any]:
    iid, nid = _int_path("noteable_id", issue_iid), _int_path("note_id", note_id)
    project, issue = issues_uc.find_issue(ctx, project_id, iid)
    note = notes_uc.find_note(ctx, project, issue, nid)
    return _render_notes(request, ctx, issue, [note])[0]


@router.put(NOTE)
def put_note(
    project_id: str,
    issue_iid: str,
    note_id: str,
    request: Request,
    ctx: Ctx = api_ctx(),
    params: Params = params_dep(),
) -> dict[str, Any]:
    iid, nid = _int_path("noteable_id", issue_iid), _int_path("note_id", note_id)
    body = params.text("body")
    if body is not None and not body.strip():
        raise BadParameter("body is empty")
    project, issue = issues_uc.find_issue(ctx, project_id, iid)
    note = notes_uc.find_note(ctx, project, issue, nid)
    note = notes_uc.update_note(ctx, project, issue, note, body=body)
    return _render_notes(request, ctx, issue, [note])[0]


@router.delete(NOTE, status_code=204)
def delete_note(project_id: str, issue_iid: str, note_id: str, ctx: Ctx = api_ctx()) -> Response:
    iid, nid = _int_path("noteable_id", issue_iid), _int_path("note_id", note_id)
    project, issue = issues_uc.find_issue(ctx, project_id, iid)
    note = notes_uc.find_note(ctx, project, issue, nid)
    notes_uc.delete_note(ctx, project, issue, note)
    return Response(status_code=204)
