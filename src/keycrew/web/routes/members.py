"""Web UI: a project's and a group's Members pages (direct, inherited and invited-group members,
their controls, and the groups the project or group is shared with).

What each row offers comes from the domain (``members.member_controls``, ``grantable_levels``);
each form calls one use case (``add_member``, ``update_member``, ``remove_member``, and
``shares.share_project`` / ``share_group`` / ``unshare_project`` / ``unshare_group``, as the
API's ``POST /projects/:id/share`` and ``DELETE .../share/:group_id`` do).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Response

from keycrew.access import members as cases
from keycrew.access import shares
from keycrew.access.groups import groups_query
from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import find_group, find_project, get_group
from keycrew.access.members import MemberControls, Membership
from keycrew.access.models import Member
from keycrew.access.resources import Resource
from keycrew.automation.bots import bot_tokens
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.errors import BadParameter, Forbidden, Invalid, KeycrewError, NotFound
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.imports import views as import_views
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


# The page suggests at most this many groups to invite (typing a full path reaches any other).
GROUP_CHOICES = 100
# A bot's token expiring within this many days gets an "Expires soon" badge.
EXPIRES_SOON_DAYS = 7


@dataclass(frozen=True)
class Row:
    """One listed member: who, at which level until when, what the viewer may do to it, and where
    it comes from (the source itself, a group above it, or a group it is shared with)."""

    user: User
    level: int
    expires_at: dt.date | None
    created_at: dt.datetime
    controls: MemberControls
    member: Member | None = None  # the source's or an ancestor's membership row
    inherited_from: Namespace | None = None
    invited: shares.InvitedMember | None = None

    @classmethod
    def of(cls, found: Membership, controls: MemberControls, inherited_from: Namespace | None) -> Row:
        member = found.member
        return cls(
            found.user,
            member.access_level,
            member.expires_at,
            member.created_at,
            controls,
            member,
            inherited_from,
        )

    @classmethod
    def of_invited(cls, found: shares.InvitedMember) -> Row:
        return cls(
            found.user,
            found.access_level,
            found.expires_at,
            found.created_at,
            MemberControls(),
            invited=found,
        )


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


def _links_url(source: Resource) -> str:
    """Where the sharing forms post (GitLab's project_group_links and group_links)."""
    if isinstance(source.obj, Project):
        return f"/{source.obj.full_path}/-/project_group_links"
    return f"/groups/{source.obj.full_path}/-/group_links"


def _shared_ids(source: Resource, groups: list[Namespace]) -> list[int]:
    """The groups whose shares reach ``source``: a group and those above it; a project's group
    and those above it (``groups``: the groups its members inherit from, nearest first)."""
    return [g.id for g in groups] if source.is_project else [source.id, *(g.id for g in groups)]


def _rows(ctx: Ctx, source: Resource, groups: list[Namespace], search: str | None) -> list[Row]:
    """Direct and inherited members with their controls, and the members of the groups the source
    is shared with at their capped level; one row per user, the highest level winning (as GET
    .../members/all and GitLab's members page choose), by user id."""
    by_id = {group.id: group for group in groups}
    rows = {
        found.user.id: Row.of(
            found,
            cases.member_controls(ctx, source, found),
            None if cases.is_direct(source, found) else by_id.get(found.source_id),
        )
        for found in cases.all_members(ctx, source, search=search)
    }
    kind = "project" if source.is_project else "group"
    for invited in shares.invited_members(ctx, kind, source.id, _shared_ids(source, groups), search=search):
        listed = rows.get(invited.user.id)
        if listed is None or invited.access_level > listed.level:
            rows[invited.user.id] = Row.of_invited(invited)
    return [rows[user_id] for user_id in sorted(rows)]


def _group_choices(
    ctx: Ctx, source: Resource, groups: list[Namespace], shared: list[shares.SharedWith]
) -> list[Namespace]:
    """Groups to suggest inviting: those the actor belongs to (admins: the newest groups), never
    the source's own groups or those already invited. Any other group the actor may invite (for a
    group, any group they can see) can be typed in: the use case decides."""
    if ctx.actor.is_admin:
        query = groups_query(ctx, all_available=True, order_by="id", sort="desc")
    else:
        query = groups_query(ctx, min_access_level=AccessLevel.GUEST, order_by="path")
    skip = [*_shared_ids(source, groups), *(link.group_id for link in shared)]
    if skip:
        query = query.where(Namespace.id.not_in(skip))
    return list(ctx.db.scalars(query.limit(GROUP_CHOICES)))


def _placeholders_tab(ctx: Ctx, source: Resource) -> tuple[str, int] | None:
    """The Placeholders tab (its URL, the placeholders awaiting reassignment): on a top-level
    group's page, for its Owners only (GitLab shows the tab to no one else)."""
    obj = source.obj
    if not isinstance(obj, Namespace) or not import_views.may_manage(ctx, obj):
        return None
    return f"/groups/{obj.full_path}/-/group_members/placeholders", import_views.awaiting_count(ctx, obj)


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
    groups = source.inherited_from()
    rows = _rows(ctx, source, groups, search)
    level = cases.actor_level(ctx, source)
    kind = "project" if source.is_project else "group"
    shared = shares.shared_with_groups(ctx.reads, kind, [source.id], today)[source.id]
    can_share = level >= source.admin_level
    grantable = cases.grantable_levels(ctx, source)
    default = AccessLevel.GUEST if AccessLevel.GUEST in grantable else next(iter(grantable), None)
    form = {"username": "", "access_level": "" if default is None else str(int(default)), "expires_at": ""}
    share_form = {"group_path": "", "group_access": str(int(AccessLevel.GUEST)), "expires_at": ""}
    obj = source.obj
    bots = bot_tokens(ctx, [row.user.id for row in rows if row.user.user_type == int(UserType.PROJECT_BOT)])
    return page.render(
        TEMPLATE,
        status=status,
        title=f"Members · {obj.name}",
        kind="project" if source.is_project else "group",
        obj=obj,
        base_url=_base_url(source),
        links_url=_links_url(source),
        level=level,
        rows=rows,
        bots=bots,
        today=today,
        expires_soon_days=EXPIRES_SOON_DAYS,
        grantable=[(int(level), level.label) for level in grantable],
        form=form | (values or {} if error_in != "share" else {}),
        shared=shared,
        can_share=can_share,
        share_levels=[(int(lv), lv.label) for lv in sorted(shares.LINK_LEVELS) if lv <= level and can_share],
        group_choices=_group_choices(ctx, source, groups, shared) if can_share else [],
        share_form=share_form | (values or {} if error_in == "share" else {}),
        search=search or "",
        error=error,
        error_in=error_in,
        placeholders_tab=_placeholders_tab(ctx, source),
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


def _share_message(exc: KeycrewError) -> str:
    """A refused share as a sentence: an unknown group and one the actor may not invite read
    alike (GitLab's "Not Found"), so that the form tells nobody which groups exist."""
    if isinstance(exc, NotFound) and exc.thing in ("", "Group"):
        return "Group not found."
    return describe(exc)


def _may_administer(page: Page, source: Resource) -> None:
    """A project's sharing is for its Maintainers (the API's ``admin_project`` check, before the
    use case); a group's use cases check its Owners themselves."""
    if source.is_project and cases.actor_level(page.ctx, source) < AccessLevel.MAINTAINER:
        raise Forbidden()


def _register_links(kind: str, prefix: str) -> None:
    base = prefix + ("/-/project_group_links" if kind == "project" else "/-/group_links")

    @router.post(base, name=f"web_share_{kind}")
    def share(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
        source = _source(page, kind, full_path)
        values = {
            "group_path": form.text("group_path"),
            "group_access": form.text("group_access"),
            "expires_at": form.text("expires_at"),
        }
        try:
            with page.savepoint():
                _may_administer(page, source)
                text = values["group_access"]
                level = int(text) if text.isascii() and text.isdigit() and len(text) <= 3 else -1
                if level not in shares.LINK_LEVELS:
                    raise BadParameter("group_access does not have a valid value")
                path = values["group_path"].strip().strip("/")
                invited = get_group(page.ctx, path) if path and not path.isdigit() else None
                if invited is None:
                    raise NotFound("" if kind == "project" else "Group")
                expires_at = parse_date(values["expires_at"])
                if isinstance(source.obj, Project):
                    shares.share_project(
                        page.ctx, source.obj, group_id=invited.id, group_access=level, expires_at=expires_at
                    )
                elif isinstance(source.obj, Namespace):
                    shares.share_group(
                        page.ctx, source.obj, group_id=invited.id, group_access=level, expires_at=expires_at
                    )
        except KeycrewError as exc:
            return _show(
                page,
                source,
                status=status_of(exc),
                error=_share_message(exc),
                values=values,
                error_in="share",
            )
        role = AccessLevel(level).label
        return page.notice(
            _base_url(source), f"{invited.full_path} was invited to {source.obj.name} as {role}."
        )

    @router.post(base + "/{group_id}/remove", name=f"web_unshare_{kind}")
    def unshare(full_path: str, group_id: str, page: Page = form_dep()) -> Response:
        source = _source(page, kind, full_path)
        try:
            with page.savepoint():
                _may_administer(page, source)
                if not (group_id.isascii() and group_id.isdigit()) or int(group_id) > MAX_ID:
                    raise NotFound("Group Link")
                links = shares.shared_with_groups(page.ctx.reads, kind, [source.id], page.ctx.today())[
                    source.id
                ]
                name = next((link.group_full_path for link in links if link.group_id == int(group_id)), "")
                if isinstance(source.obj, Project):
                    shares.unshare_project(page.ctx, source.obj, int(group_id))
                elif isinstance(source.obj, Namespace):
                    shares.unshare_group(page.ctx, source.obj, int(group_id))
        except KeycrewError as exc:
            return _show(page, source, status=status_of(exc), error=_share_message(exc), error_in="groups")
        return page.notice(_base_url(source), f"{name} was removed from {source.obj.name}.")


_register("project", "/{full_path:webpath}")
_register("group", "/groups/{full_path:path}")
_register_links("project", "/{full_path:webpath}")
_register_links("group", "/groups/{full_path:path}")


__all__ = ["router"]
