"""Web UI: a project's and a group's Members pages (direct and inherited members, and their controls).

What each row offers comes from the domain (``members.member_controls``, ``grantable_levels``);
each form calls one use case (``add_member``, ``update_member``, ``remove_member``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Response

from keycrew.access import members as cases
from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import find_group, find_project
from keycrew.access.members import MemberControls, Membership
from keycrew.access.resources import Resource
from keycrew.db.base import MAX_ID
from keycrew.errors import Forbidden, Invalid, KeycrewError, NotFound
from keycrew.namespaces.models import Namespace, Project
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep, parse_date
from keycrew.web.errors import describe, status_of
from keycrew.web.templating import date

router = APIRouter()

TEMPLATE = "members/index.html"
# How the domain's field names read on this page's form.
FIELD_LABELS = {
    "access_level": "Role",
    "expires_at": "Expiration date",
    "user": "This user",
    "username": "Username or e-mail",
}


@dataclass(frozen=True)
class Row:
    """One listed member: the membership, what the viewer may do to it, and where it comes from."""

    found: Membership
    controls: MemberControls
    inherited_from: Namespace | None


def _source(page: Page, kind: str, full_path: str) -> Resource:
    page.require_user()
    path = full_path.strip("/")
    thing = "Project" if kind == "project" else "Group"
    if not path or "/-/" in f"/{path}/":
        raise NotFound(thing)
    return Resource(find_project(page.ctx, path) if kind == "project" else find_group(page.ctx, path))


def _base_url(source: Resource) -> str:
    if isinstance(source.obj, Project):
        return f"/{source.obj.full_path}/-/project_members"
    return f"/groups/{source.obj.full_path}/-/group_members"


def _level(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 3:
        raise Invalid.field("access_level", "is not included in the list")
    return int(value)


def _user_id(value: str) -> int:
    if not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
        raise NotFound("Member")
    return int(value)


def _message(exc: KeycrewError, who: str | None = None) -> str:
    """The domain's refusal as a sentence about this form's fields."""
    if not (isinstance(exc, Invalid) and exc.errors):
        return describe(exc)
    parts = []
    for field, messages in exc.errors.items():
        for text in messages:
            if field in ("base", "user_id"):
                sentence = text[:1].upper() + text[1:]
            elif field == "user" and who:
                sentence = f"{who} {text}"
            else:
                sentence = f"{FIELD_LABELS.get(field, field.replace('_', ' ').capitalize())} {text}"
            parts.append(sentence if sentence.endswith(".") else sentence + ".")
    return " ".join(parts)


def _show(
    page: Page,
    source: Resource,
    *,
    status: int = 200,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    search: str | None = None,
    error_in: str = "page",
) -> Response:
    ctx = page.ctx
    today = ctx.today()
    groups = {group.id: group for group in source.inherited_from()}
    rows = [
        Row(
            found,
            cases.member_controls(ctx, source, found),
            None if cases.is_direct(source, found) else groups.get(found.source_id),
        )
        for found in cases.all_members(ctx, source, search=search)
    ]
    grantable = cases.grantable_levels(ctx, source)
    default = AccessLevel.GUEST if AccessLevel.GUEST in grantable else next(iter(grantable), None)
    form = {"username": "", "access_level": "" if default is None else str(int(default)), "expires_at": ""}
    obj = source.obj
    return page.render(
        TEMPLATE,
        status=status,
        title=f"Members · {obj.name}",
        kind="project" if source.is_project else "group",
        obj=obj,
        base_url=_base_url(source),
        level=cases.actor_level(ctx, source),
        rows=rows,
        grantable=[(int(level), level.label) for level in grantable],
        form=form | (values or {}),
        search=search or "",
        error=error,
        error_in=error_in,
        min_date=(today + dt.timedelta(days=1)).isoformat(),
    )


def _refusal(page: Page, source: Resource, user_id: int, exc: KeycrewError) -> str:
    """A refused change, with the row's own reason when it has one (e.g. the last Owner)."""
    message = _message(exc)
    if isinstance(exc, Forbidden):
        try:
            note = cases.member_controls(
                page.ctx, source, cases.get_any_member(page.ctx, source, user_id)
            ).note
        except KeycrewError:
            note = None
        if note:
            message = f"{message} {note}."
    return message


def _register(kind: str, prefix: str) -> None:
    base = prefix + ("/-/project_members" if kind == "project" else "/-/group_members")

    @router.get(base, name=f"web_{kind}_members")
    def show(full_path: str, search: str | None = None, page: Page = page_dep()) -> Response:
        return _show(page, _source(page, kind, full_path), search=(search or "").strip() or None)

    @router.post(base, name=f"web_add_{kind}_member")
    def add(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
        source = _source(page, kind, full_path)
        values = {
            "username": form.text("username"),
            "access_level": form.text("access_level"),
            "expires_at": form.text("expires_at"),
        }
        who = None
        try:
            with page.savepoint():
                user = cases.find_invitee(page.ctx, source, values["username"])
                who = f"@{user.username}"
                found = cases.add_member(
                    page.ctx,
                    source,
                    user,
                    access_level=_level(values["access_level"]),
                    expires_at=parse_date(values["expires_at"]),
                )
        except KeycrewError as exc:
            return _show(
                page, source, status=status_of(exc), error=_message(exc, who), values=values, error_in="add"
            )
        role = AccessLevel(found.member.access_level).label
        return page.notice(_base_url(source), f"@{found.user.username} was added as {role}.")

    @router.post(base + "/{user_id}", name=f"web_update_{kind}_member")
    def update(
        full_path: str, user_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
    ) -> Response:
        source = _source(page, kind, full_path)
        uid = 0
        try:
            with page.savepoint():
                uid = _user_id(user_id)
                found = cases.update_member(
                    page.ctx,
                    source,
                    uid,
                    access_level=_level(form.text("access_level")),
                    expires_at=parse_date(form.optional("expires_at")),
                )
        except KeycrewError as exc:
            return _show(page, source, status=status_of(exc), error=_refusal(page, source, uid, exc))
        role = AccessLevel(found.member.access_level).label
        expiry = found.member.expires_at
        until = f", until {date(expiry)}" if expiry else ", with no expiration"
        return page.notice(_base_url(source), f"@{found.user.username} is now {role}{until}.")

    @router.post(base + "/{user_id}/remove", name=f"web_remove_{kind}_member")
    def remove(full_path: str, user_id: str, page: Page = form_dep()) -> Response:
        source = _source(page, kind, full_path)
        uid = 0
        try:
            with page.savepoint():
                uid = _user_id(user_id)
                username = cases.get_member(page.ctx, source, uid).user.username
                cases.remove_member(page.ctx, source, uid)
        except KeycrewError as exc:
            return _show(page, source, status=status_of(exc), error=_refusal(page, source, uid, exc))
        return page.notice(_base_url(source), f"@{username} was removed from {source.obj.name}.")


_register("project", "/{full_path:webpath}")
_register("group", "/groups/{full_path:path}")


__all__ = ["router"]
