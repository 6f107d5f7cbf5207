"""Web UI: a group's and a project's overview pages.

Their paths are a full path and nothing more, so they match whatever no other page matched: this
router is mounted last. Public groups and projects (internal ones too, for signed-in people) can be
seen without signing in, as in GitLab; anything else sends an anonymous visitor to sign in, so that
the answer does not tell whether a private project exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Response

from keycrew.access.groups import groups_query
from keycrew.access.lookup import find_group, find_project
from keycrew.access.policy import effective_group_level, effective_project_level
from keycrew.access.projects import projects_query
from keycrew.errors import NotFound
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace
from keycrew.web.deps import Page, page_dep

router = APIRouter()
T = TypeVar("T")


def _plain(full_path: str, thing: str) -> str:
    """A full path as it appears in a URL. Sub-pages (``/-/``) nobody matched, and repository paths
    that are not git's smart protocol (``.git/...``, dumb HTTP), are not found."""
    path = full_path.strip("/")
    if not path or "/-/" in f"/{path}/" or ".git/" in f"{path}/":
        raise NotFound(thing)
    return path


def _found(page: Page, find: Callable[[], T]) -> T:
    """What ``find`` looks up; an anonymous visitor who may not see it is asked to sign in."""
    try:
        return find()
    except NotFound:
        page.require_user()
        raise


def _namespace_href(namespace: Namespace) -> str:
    """Where a project's namespace is shown: its group's page, or its owner's activity."""
    if namespace.kind == "user":
        return f"/users/{namespace.full_path}/activity"
    return f"/groups/{namespace.full_path}"


@router.get("/groups/{full_path:path}")
def group_overview(full_path: str, page: Page = page_dep()) -> Response:
    ctx = page.ctx
    path = _plain(full_path, "Group")
    group = _found(page, lambda: find_group(ctx, path))
    return page.render(
        "groups/show.html",
        title=group.full_name,
        group=group,
        visibility=Visibility.from_level(group.visibility_level).value,
        level=effective_group_level(ctx.reads, ctx.actor, group, ctx.today()),
        subgroups=list(ctx.db.scalars(groups_query(ctx, parent=group))),
        projects=list(ctx.db.scalars(projects_query(ctx, namespace=group, order_by="name", sort="asc"))),
    )


@router.get("/{full_path:webpath}")
def project_overview(full_path: str, page: Page = page_dep()) -> Response:
    ctx = page.ctx
    path = _plain(full_path, "Project")
    project = _found(page, lambda: find_project(ctx, path))
    return page.render(
        "projects/show.html",
        title=project.name,
        project=project,
        visibility=Visibility.from_level(project.visibility_level).value,
        level=effective_project_level(ctx.reads, ctx.actor, project, ctx.today()),
        namespace=project.namespace,
        namespace_href=_namespace_href(project.namespace),
        http_url=f"{ctx.instance.external_url}/{project.full_path}.git",
    )
