"""/api/v4 routes: namespaces."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select

from keycrew.access.namespaces import find_namespace, namespaces_query
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.namespaces import namespace as namespace_entity
from keycrew.api.routes.projects import paginate_rows
from keycrew.context import Ctx
from keycrew.namespaces.models import Namespace, Project

router = APIRouter()


def _project_counts(ctx: Ctx, namespaces: list[Namespace]) -> Counter[int]:
    ids = [ns.id for ns in namespaces]
    if not ids:
        return Counter()
    rows = ctx.db.execute(
        select(Project.namespace_id, func.count())
        .where(Project.namespace_id.in_(ids))
        .group_by(Project.namespace_id)
    ).all()
    return Counter({int(ns_id): int(count) for ns_id, count in rows})


@router.get("/namespaces")
def list_namespaces(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    query = namespaces_query(
        ctx, search=params.text("search", blank_is_absent=True), owned_only=params.flag("owned_only")
    )
    base = base_url(request)

    def render_page(rows: list[Namespace]) -> list[dict[str, Any]]:
        counts = _project_counts(ctx, rows)
        return [namespace_entity(ns, base, projects_count=counts[ns.id]) for ns in rows]

    return paginate_rows(request, ctx, params, query, render_page)


@router.get("/namespaces/{namespace_id}")
def get_namespace(namespace_id: str, request: Request, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    ns = find_namespace(ctx, namespace_id)
    return namespace_entity(ns, base_url(request), projects_count=_project_counts(ctx, [ns])[ns.id])
