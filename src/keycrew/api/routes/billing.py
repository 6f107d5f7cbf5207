"""/api/v4 routes: the billable members of a top-level group (GitLab EE's billable members API)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from keycrew.access import billing
from keycrew.access.lookup import find_group, read_group
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.members import billable_member, billable_membership
from keycrew.api.pagination import fetch_listing, respond
from keycrew.api.params import path_id
from keycrew.context import Ctx

router = APIRouter()


@router.get("/groups/{group_id}/billable_members")
def list_billable_members(
    group_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    search = params.text("search", blank_is_absent=True)
    sort = params.choice("sort", billing.BILLABLE_SORTS)
    group = read_group(ctx, group_id)
    found = fetch_listing(
        ctx.reads, params, billing.billable_members_listing(ctx, group, search=search, sort=sort)
    )
    base = base_url(request)
    last_owner = billing.last_owner_id(ctx, group)
    admin = ctx.actor.is_admin
    items = [
        billable_member(billing.billable_member(row), base, show_email=admin, last_owner_id=last_owner)
        for row in found.rows
    ]
    return respond(request, items, found)


@router.get("/groups/{group_id}/billable_members/{user_id}/memberships")
def list_billable_member_memberships(
    group_id: str, user_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    uid = path_id(user_id, "user_id")
    group = read_group(ctx, group_id)
    found = fetch_listing(ctx.reads, params, billing.billable_memberships(ctx, group, uid))
    base = base_url(request)
    items = [billable_membership(billing.BillableMembership(*row), base) for row in found.rows]
    return respond(request, items, found)


@router.delete("/groups/{group_id}/billable_members/{user_id}", status_code=204, responses={400: {}, 404: {}})
def remove_billable_member(group_id: str, user_id: str, ctx: Ctx = api_ctx()) -> Response:
    uid = path_id(user_id, "user_id")
    billing.remove_billable_member(ctx, find_group(ctx, group_id), uid)
    return Response(status_code=204)
