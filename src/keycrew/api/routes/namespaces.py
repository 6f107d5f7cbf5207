"""/api/v4 routes: namespaces."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import bindparam, func, select

from keycrew.access.namespaces import find_namespace, namespaces_query, path_exists
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.namespaces import namespace as namespace_entity
from keycrew.api.pagination import fetch_rows, respond
from keycrew.context import Ctx
from keycrew.db.reads import prepared
from keycrew.namespaces.models import Project
from keycrew.namespaces.views import NamespaceView, namespace_rows

router = APIRouter()


_PROJECT_COUNTS = prepared(
    select(Project.namespace_id, func.count())
    .where(Project.namespace_id.in_(bindparam("ids", expanding=True)))
    .group_by(Project.namespace_id)
)


def _project_counts(ctx: Ctx, namespaces: list[NamespaceView]) -> Counter[int]:
    ids = [ns.id for ns in namespaces]
    if not ids:
        return Counter()
    rows = ctx.reads.rows(_PROJECT_COUNTS, {"ids": ids})
    return Counter({int(ns_id): int(count) for ns_id, count in rows})


@router.get("/namespaces")
def list_namespaces(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    query = namespaces_query(
        ctx, search=params.text("search", blank_is_absent=True), owned_only=params.flag("owned_only")
    )
    base = base_url(request)
    found = fetch_rows(ctx.reads, params, namespace_rows(query), counted=query)
    namespaces = [NamespaceView(*row) for row in found.rows]
    counts = _project_counts(ctx, namespaces)
    return respond(
        request, [namespace_entity(ns, base, projects_count=counts[ns.id]) for ns in namespaces], found
    )


@router.get("/namespaces/{namespace_id}")
def get_namespace(namespace_id: str, request: Request, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    ns = find_namespace(ctx, namespace_id)
    return namespace_entity(ns, base_url(request), projects_count=_project_counts(ctx, [ns])[ns.id])


@router.get("/namespaces/{namespace}/exists")
def namespace_exists(namespace: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> dict[str, Any]:
    """Whether a namespace under ``parent_id`` (else at the top level) has the path ``namespace``
    (GitLab's ``:namespace``: a path to try, not an id), and a free path to suggest if so; any
    signed-in user may ask, as in GitLab."""
    exists, suggests = path_exists(ctx, namespace, params.integer("parent_id"))
    return {"exists": exists, "suggests": suggests}
