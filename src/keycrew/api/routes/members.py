"""/api/v4 routes: members of groups and projects (the same endpoints under both)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from keycrew.access import members as cases
from keycrew.access.lookup import find_group, find_project, read_group, read_project
from keycrew.access.members import MemberListing, Membership, MembershipView, membership_view
from keycrew.access.resources import Holder, Resource
from keycrew.access.seats import namespaces_and_seats
from keycrew.api import errors as api_errors
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.api.entities import base_url
from keycrew.api.entities.members import member as member_entity
from keycrew.api.pagination import Page, fetch_prepared, respond
from keycrew.api.params import path_id
from keycrew.context import Ctx
from keycrew.db.base import record_id
from keycrew.errors import BadParameter, MissingParameter, NotFound
from keycrew.identity.models import User
from keycrew.identity.views import user_briefs

router = APIRouter()


def _user_id(value: str) -> int:
    return path_id(value, "user_id")


def _render(
    request: Request,
    ctx: Ctx,
    found: Sequence[Membership | MembershipView],
    *,
    with_source: bool = False,
    seat_info: bool = False,
) -> list[Any]:
    """Members with who added them (one look-up for the page's creators), and with
    ``show_seat_info`` whether each takes a seat (one more for the page)."""
    base = base_url(request)
    creators = user_briefs(ctx.reads, {m.member.created_by_id for m in found if m.member.created_by_id})
    seats = namespaces_and_seats(ctx, {m.user.id for m in found})[1] if seat_info else None
    admin = ctx.actor.is_admin
    return [
        member_entity(
            m,
            base,
            creators=creators,
            show_email=admin,
            with_source=with_source,
            using_seat=None if seats is None else m.user.id in seats,
        )
        for m in found
    ]


def _one(
    request: Request,
    ctx: Ctx,
    found: Membership | MembershipView,
    *,
    with_source: bool = False,
    seat_info: bool = False,
) -> dict[str, Any]:
    return dict(_render(request, ctx, [found], with_source=with_source, seat_info=seat_info)[0])


def _fetch(ctx: Ctx, params: Params, listing: MemberListing) -> Page:
    return fetch_prepared(ctx.reads, params, listing.page, listing.count, listing.values)


def _find_user(ctx: Ctx, params: Params) -> tuple[User | None, list[int] | None]:
    """The single user named by ``user_id`` or ``username``, or the ids of a comma-separated list."""
    raw_id = params.raw("user_id")
    raw_name = params.raw("username")
    has_id = raw_id is not None and raw_id != ""
    has_name = raw_name is not None and raw_name != ""
    if has_id and has_name:
        raise BadParameter("user_id, username are mutually exclusive")
    if not (has_id or has_name):
        raise MissingParameter("user_id, username are missing, exactly one parameter must be provided")
    if has_name:
        name = params.text("username")
        assert name is not None
        user = ctx.db.scalars(select(User).where(User.username_lower == name.lower())).first()
        if user is None:
            raise NotFound("User")
        return user, None
    if isinstance(raw_id, bool) or not isinstance(raw_id, int | str):
        raise BadParameter("user_id is invalid")
    text = str(raw_id).strip()
    if "," in text:
        parts = (part.strip() for part in text.split(","))
        return None, [record_id(int(p)) for p in parts if p.isascii() and p.isdigit()]
    number = record_id(int(text)) if text.isascii() and text.isdigit() else None
    user = ctx.db.get(User, number) if number is not None else None
    if user is None:
        raise NotFound("User")
    return user, None


def _register(kind: str, finder: Callable[[Ctx, str], Holder], reader: Callable[[Ctx, str], Holder]) -> None:
    """The member routes under ``/{kind}/:id``: reads find the source with ``reader`` (a read
    view), changes with ``finder`` (the ORM object)."""
    prefix = f"/{kind}/{{source_id}}/members"

    def source_of(ctx: Ctx, source_id: str) -> Resource:
        return Resource(finder(ctx, source_id))

    def read_source(ctx: Ctx, source_id: str) -> Resource:
        return Resource(reader(ctx, source_id))

    @router.get(prefix, name=f"list_{kind}_members")
    def list_members(
        source_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> Response:
        source = read_source(ctx, source_id)
        search, user_ids = params.text("query", blank_is_absent=True), params.ids("user_ids")
        seat_info = params.flag("show_seat_info")
        found = _fetch(ctx, params, cases.member_listing(ctx, source, search=search, user_ids=user_ids))
        items = _render(request, ctx, [membership_view(r) for r in found.rows], seat_info=seat_info)
        return respond(request, items, found)

    @router.get(f"{prefix}/all", name=f"list_all_{kind}_members")
    def list_all_members(
        source_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> Response:
        source = read_source(ctx, source_id)
        search, user_ids = params.text("query", blank_is_absent=True), params.ids("user_ids")
        seat_info = params.flag("show_seat_info")
        listing = cases.member_listing(ctx, source, inherited=True, search=search, user_ids=user_ids)
        found = _fetch(ctx, params, listing)
        rows = [membership_view(r) for r in found.rows]
        items = _render(request, ctx, rows, with_source=True, seat_info=seat_info)
        return respond(request, items, found)

    @router.get(f"{prefix}/all/{{user_id}}", name=f"get_any_{kind}_member")
    def get_any_member(
        source_id: str, user_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> dict[str, Any]:
        uid = _user_id(user_id)
        seat_info = params.flag("show_seat_info")
        source = read_source(ctx, source_id)
        found = cases.read_any_member(ctx, source, uid)
        return _one(request, ctx, found, with_source=True, seat_info=seat_info)

    @router.get(f"{prefix}/{{user_id}}", name=f"get_{kind}_member")
    def get_member(
        source_id: str, user_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> dict[str, Any]:
        uid = _user_id(user_id)
        seat_info = params.flag("show_seat_info")
        source = read_source(ctx, source_id)
        return _one(request, ctx, cases.read_member(ctx, source, uid), seat_info=seat_info)

    @router.post(prefix, status_code=201, name=f"add_{kind}_member")
    def add_member(
        source_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> dict[str, Any]:
        level = params.req_integer("access_level")
        expires_at = params.date("expires_at")
        source = source_of(ctx, source_id)
        user, many = _find_user(ctx, params)
        if many is not None:
            return cases.add_members(ctx, source, many, access_level=level, expires_at=expires_at).as_json(
                api_errors.reason
            )
        assert user is not None
        found = cases.add_member(ctx, source, user, access_level=level, expires_at=expires_at)
        return _one(request, ctx, found)

    @router.put(f"{prefix}/{{user_id}}", name=f"update_{kind}_member")
    def update_member(
        source_id: str, user_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> dict[str, Any]:
        uid = _user_id(user_id)
        level = params.req_integer("access_level")
        changes: dict[str, Any] = {}
        if "expires_at" in params.keys():  # noqa: SIM118 (Params is not a mapping)
            changes["expires_at"] = params.date("expires_at")
        source = source_of(ctx, source_id)
        found = cases.update_member(ctx, source, uid, access_level=level, **changes)
        return _one(request, ctx, found)

    @router.delete(f"{prefix}/{{user_id}}", status_code=204, name=f"remove_{kind}_member")
    def remove_member(
        source_id: str, user_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
    ) -> Response:
        uid = _user_id(user_id)
        skip = params.flag("skip_subresources")
        cases.remove_member(ctx, source_of(ctx, source_id), uid, skip_subresources=skip)
        return Response(status_code=204)


_register("groups", find_group, read_group)
_register("projects", find_project, read_project)
