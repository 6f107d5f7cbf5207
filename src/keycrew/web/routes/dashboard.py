"""Web UI: the dashboard, the groups and projects the person can see."""

from __future__ import annotations

from fastapi import APIRouter, Response

from keycrew.access.groups import groups_query
from keycrew.access.policy import effective_group_level, effective_project_level
from keycrew.access.projects import projects_query
from keycrew.web.deps import Page, page_dep

router = APIRouter()

LISTED = 100  # the dashboard lists this many of each; search narrows


@router.get("/")
def dashboard(search: str | None = None, page: Page = page_dep()) -> Response:
    page.require_user()
    ctx = page.ctx
    term = (search or "").strip() or None
    groups = list(ctx.db.scalars(groups_query(ctx, search=term).limit(LISTED)))
    projects = list(
        ctx.db.scalars(projects_query(ctx, search=term, order_by="name", sort="asc").limit(LISTED))
    )
    today = ctx.today()
    return page.render(
        "dashboard.html",
        title="Dashboard",
        search=term or "",
        groups=[(g, effective_group_level(ctx.reads, ctx.actor, g, today)) for g in groups],
        projects=[(p, effective_project_level(ctx.reads, ctx.actor, p, today)) for p in projects],
    )
