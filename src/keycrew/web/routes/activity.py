"""Web UI: activity pages, GitLab's lists of contribution events.

``/<namespace>/<project>/activity`` lists a project's events, ``/users/<username>/activity`` a
person's, ``/dashboard/activity`` those of the projects the signed-in person belongs to. Each is
one of ``records.events``' listings (the ones GET /projects/:id/events, /users/:id/events and
/events?scope=all read), so a page shows exactly what the API would show the viewer: a page of
events, their count, their authors and their projects, in four statements whatever the page holds.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Response

from keycrew.access.lookup import find_project
from keycrew.access.policy import effective_project_level
from keycrew.activity.kinds import ISSUE, NOTE, Action, PushAction, RefType, action_name
from keycrew.db.listings import Listing
from keycrew.errors import NotFound
from keycrew.identity.views import UserBrief, user_briefs
from keycrew.records.events import (
    EventFilter,
    EventProject,
    EventRow,
    event_projects,
    own_events,
    project_events,
    user_events,
)
from keycrew.web.deps import Page, page_dep
from keycrew.web.routes import overview
from keycrew.web.templating import moment

router = APIRouter()
PAGE_PARAM = Query(None, alias="page")
FILTER_PARAM = Query(None, alias="filter")

TEMPLATE = "activity/index.html"
PER_PAGE = 20
COUNT_LIMIT = 10_000  # pages are counted this far (GitLab counts its events up to 10,001 rows)
EXCERPT = 140

# GitLab's activity tabs: (key, label, filter).
FILTERS: dict[str, tuple[str, EventFilter]] = {
    "all": ("All", EventFilter()),
    "push": ("Push events", EventFilter(action="pushed")),
    "issue": ("Issue events", EventFilter(target_type="issue")),
    "comments": ("Comments", EventFilter(target_type="note")),
    "team": ("Team", EventFilter(action="joined")),
}

_TARGETS = {
    "MergeRequest": "merge request",
    "Milestone": "milestone",
    "Snippet": "snippet",
    "WikiPage::Meta": "wiki page",
    "DesignManagement::Design": "design",
    "Project": "project",
    "User": "user",
}


@dataclass(frozen=True)
class Item:
    """One listed event as the page words it: "<author> <text> <target> "<title>" [at <project>]"."""

    id: int
    author: UserBrief | None
    text: str
    title: str | None
    detail: str | None
    project: EventProject | None
    ago: str
    at: str
    iso: str


def ago(then: dt.datetime, now: dt.datetime) -> str:
    """How long ago, as GitLab's timeago words it ("just now", "5 minutes ago", "2 days ago")."""
    seconds = int((now - then).total_seconds())
    if seconds < 60:
        return "just now"
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    count = seconds // 60
    return f"{count} minute{'s' if count != 1 else ''} ago"


def _excerpt(text: str | None) -> str | None:
    if not text:
        return None
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT else line[: EXCERPT - 1].rstrip() + "…"


def _wording(row: EventRow) -> tuple[str, str | None, str | None]:
    """(what the author did, the target's title, a detail line) for one event."""
    name = action_name(row.action, row.target_type, row.push_action)
    if row.action == Action.PUSHED:
        kind = "tag" if row.ref_type == RefType.TAG else "branch"
        count = row.ref_count or 0
        if count > 1:
            what = f"{name} {count} {'tags' if kind == 'tag' else 'branches'}"
        else:
            what = f"{name} {kind} {row.ref or ''}".rstrip()
        detail = None
        if row.push_action != PushAction.REMOVED and row.commit_title:
            commits = row.commit_count or 0
            detail = (f"{commits} commits: " if commits > 1 else "") + (_excerpt(row.commit_title) or "")
        return what, None, detail
    if row.target_type is None:
        return f"{name} project", None, None
    if row.target_type == ISSUE:
        return f"{name} issue #{row.target_iid}", row.target_title, None
    if row.target_type == NOTE:
        return f"{name} issue #{row.note_issue_iid}", row.target_title, _excerpt(row.note_body)
    target = _TARGETS.get(row.target_type, row.target_type.lower())
    return f"{name} {target}", row.target_title, None


def _page_number(value: str | None) -> int:
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 6:
        return 1
    return max(1, int(value))


def _tab(value: str | None) -> str:
    return value if value in FILTERS else "all"


def _render(
    page: Page,
    listed: Listing,
    *,
    base: str,
    tab: str,
    number: int,
    show_projects: bool,
    **values: Any,
) -> Response:
    """A page of ``listed``'s events, worded, with its pager and the filter tabs."""
    ctx = page.ctx
    total = int(ctx.reads.scalar(listed.count, {**listed.values, "count_limit": COUNT_LIMIT}) or 0)
    pages = max(1, math.ceil(total / PER_PAGE))
    number = min(number, pages)
    found = ctx.reads.rows(
        listed.page, {**listed.values, "limit": PER_PAGE, "offset": (number - 1) * PER_PAGE}
    )
    rows = [EventRow(*row) for row in found]
    authors = user_briefs(ctx.reads, {row.author_id for row in rows})
    projects = event_projects(ctx.reads, {row.project_id for row in rows}) if show_projects else {}
    now = ctx.now()
    items = []
    for row in rows:
        text, title, detail = _wording(row)
        items.append(
            Item(
                row.id,
                authors.get(row.author_id),
                text,
                title,
                detail,
                projects.get(row.project_id),
                ago(row.created_at, now),
                moment(row.created_at),
                row.created_at.astimezone(dt.UTC).isoformat(),
            )
        )

    def link(tab_key: str, to: int = 1) -> str:
        query = {}
        if tab_key != "all":
            query["filter"] = tab_key
        if to > 1:
            query["page"] = str(to)
        return f"{base}?{urlencode(query)}" if query else base

    pager = {
        "total": total,
        "number": number,
        "pages": pages,
        "first": (number - 1) * PER_PAGE + 1 if items else 0,
        "last": (number - 1) * PER_PAGE + len(items),
        "previous": link(tab, number - 1) if number > 1 else None,
        "next": link(tab, number + 1) if number < pages else None,
    }
    return page.render(
        TEMPLATE,
        items=items,
        pager=pager,
        tab=tab,
        tabs=[(key, label, link(key)) for key, (label, _flt) in FILTERS.items()],
        show_projects=show_projects,
        **values,
    )


@router.get("/dashboard/activity")
def dashboard_activity(
    event_filter: str | None = FILTER_PARAM, page_number: str | None = PAGE_PARAM, page: Page = page_dep()
) -> Response:
    """The events of the projects the signed-in person belongs to (GitLab's Dashboard > Activity)."""
    user = page.require_user()
    tab = _tab(event_filter)
    listed = own_events(page.ctx, FILTERS[tab][1], scope_all=True)
    return _render(
        page,
        listed,
        base="/dashboard/activity",
        tab=tab,
        number=_page_number(page_number),
        show_projects=True,
        title="Activity",
        heading="Activity",
        lead="What happened in the projects you are a member of.",
        kind="dashboard",
        username=user.username,
    )


@router.get("/users/{username}/activity")
def user_activity(
    username: str,
    event_filter: str | None = FILTER_PARAM,
    page_number: str | None = PAGE_PARAM,
    page: Page = page_dep(),
) -> Response:
    """A person's events that the viewer may see (none when their profile is private to them)."""
    ctx = page.ctx
    tab = _tab(event_filter)
    listed = user_events(ctx, username, FILTERS[tab][1])
    return _render(
        page,
        listed,
        base=f"/users/{username}/activity",
        tab=tab,
        number=_page_number(page_number),
        show_projects=True,
        title=f"Activity · @{username}",
        heading=f"Activity of @{username}",
        lead="What this person did in the projects you can see.",
        kind="user",
        username=username,
    )


@router.get("/{full_path:webpath}/activity")
def project_activity(
    full_path: str,
    event_filter: str | None = FILTER_PARAM,
    page_number: str | None = PAGE_PARAM,
    page: Page = page_dep(),
) -> Response:
    """A project's events. A path that names no project the viewer may see may still be a project
    called "activity" (``<namespace>/activity``): its overview answers then."""
    ctx = page.ctx
    path = full_path.strip("/")
    try:
        if not path or "/-/" in f"/{path}/" or ".git/" in f"{path}/":
            raise NotFound("Project")
        project = find_project(ctx, path)
    except NotFound:
        return overview.project_overview(f"{path}/activity", page)
    tab = _tab(event_filter)
    listed = project_events(ctx, project, FILTERS[tab][1])
    return _render(
        page,
        listed,
        base=f"/{project.full_path}/activity",
        tab=tab,
        number=_page_number(page_number),
        show_projects=False,
        title=f"Activity · {project.name}",
        heading="Activity",
        lead=f"What happened in {project.name}.",
        kind="project",
        project=project,
        level=effective_project_level(ctx.reads, ctx.actor, project, ctx.today()),
    )


__all__ = ["router"]
