"""Web UI: a top-level group's Members > Placeholders page, where its Owners reassign imported
contributions one source user at a time (GitLab's Placeholders tab of the group members page).

The page reads through ``keycrew.imports.views`` (its two tabs, counts, search and pages) and each
form calls one use case of ``keycrew.imports.reassignment`` (``reassign``, which checks the chosen
user and e-mails them; ``keep_as_placeholder``; ``cancel_reassignment``). Only Owners of a
top-level group reach it; anyone else gets 404, as GitLab shows them no tab.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Response

from keycrew.access.lookup import find_group
from keycrew.access.policy import effective_group_level
from keycrew.errors import BadParameter, KeycrewError, NotFound, Unprocessable
from keycrew.imports import reassignment, views
from keycrew.imports.models import SourceUserStatus
from keycrew.namespaces.models import Namespace
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of

router = APIRouter()

TEMPLATE = "imports/placeholders.html"
PREFIX = "/groups/{full_path:path}/-/group_members/placeholders"
TAB_LABELS = {views.Tab.AWAITING: "Awaiting reassignment", views.Tab.REASSIGNED: "Reassigned"}

# The use cases' refusals in the words of this page.
WORDS = {
    reassignment.NOT_ALLOWED_USER: (
        "Choose an active person: not a bot, an internal user, a service account, "
        "or a blocked or deactivated account."
    ),
    reassignment.INVALID_STATUS: (
        "This placeholder's reassignment has changed since the page was shown: reload it and try again."
    ),
}
NO_USERNAME = "Enter the username of the person to reassign to."


def _group(page: Page, full_path: str) -> Namespace:
    """The group whose placeholders the signed-in Owner manages (404 for anyone else)."""
    page.require_user()
    path = full_path.strip("/")
    if not path or "/-/" in f"/{path}/":
        raise NotFound("Group")
    return views.require_manager(page.ctx, find_group(page.ctx, path))


def base_url(group: Namespace) -> str:
    return f"/groups/{group.full_path}/-/group_members/placeholders"


def _tab(value: str | None) -> views.Tab:
    return views.Tab.REASSIGNED if value == views.Tab.REASSIGNED.value else views.Tab.AWAITING


def _number(value: str | None) -> int:
    if not value or not value.isascii() or not value.isdigit() or len(value) > 6:
        return 1
    return max(1, int(value))


def _id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise NotFound("Import source user")
    return int(raw)


def _link(group: Namespace, tab: views.Tab, search: str, number: int = 1) -> str:
    query: dict[str, str] = {}
    if tab is not views.Tab.AWAITING:
        query["tab"] = tab.value
    if search:
        query["search"] = search
    if number > 1:
        query["page"] = str(number)
    return base_url(group) + (f"?{urlencode(query)}" if query else "")


def _show(
    page: Page,
    group: Namespace,
    tab: views.Tab,
    search: str,
    number: int,
    *,
    status: int = 200,
    error: str | None = None,
    row_error: tuple[int, str] | None = None,
    typed: tuple[int, str] | None = None,
) -> Response:
    ctx = page.ctx
    listed = views.listing(ctx, group, tab, search or None, number)
    pager = {
        "total": listed.total,
        "number": listed.number,
        "pages": listed.pages,
        "first": listed.first,
        "last": listed.last,
        "previous": _link(group, tab, search, listed.number - 1) if listed.number > 1 else None,
        "next": _link(group, tab, search, listed.number + 1) if listed.number < listed.pages else None,
    }
    return page.render(
        TEMPLATE,
        status=status,
        title=f"Placeholders · {group.name}",
        obj=group,
        level=effective_group_level(ctx.reads, ctx.actor, group, ctx.today()),
        base_url=base_url(group),
        members_url=f"/groups/{group.full_path}/-/group_members",
        listing=listed,
        pager=pager,
        tab=tab.value,
        tabs=[
            (key.value, label, listed.counts[key], _link(group, key, search))
            for key, label in TAB_LABELS.items()
        ],
        search=search,
        number=listed.number,
        error=error,
        row_errors=dict([row_error]) if row_error else {},
        typed=dict([typed]) if typed else {},
    )


@router.get(PREFIX, name="web_group_placeholders")
def show(
    full_path: str,
    tab: str | None = None,
    search: str | None = None,
    page: Page = page_dep(),
) -> Response:
    group = _group(page, full_path)
    # "page" is the query's name for the page number (the parameter name is the request's Page).
    number = _number(page.request.query_params.get("page"))
    return _show(page, group, _tab(tab), (search or "").strip()[: views.SEARCH_MAX], number)


def _back(form: FormData) -> tuple[views.Tab, str, int]:
    """Where the form was sent from (its tab, search and page), to show it again."""
    return _tab(form.text("tab")), form.text("search")[: views.SEARCH_MAX], _number(form.text("page"))


def _words(exc: KeycrewError, username: str = "") -> str:
    if isinstance(exc, NotFound) and exc.thing == "User":
        return f"No user is called @{username}." if username else NO_USERNAME
    if isinstance(exc, Unprocessable) and exc.message == reassignment.ALREADY_ASSIGNED:
        return f"@{username} is already chosen for another placeholder of this group."
    return WORDS.get(exc.message, describe(exc))


def _done(page: Page, group: Namespace, form: FormData, message: str) -> Response:
    tab, search, number = _back(form)
    return page.notice(_link(group, tab, search, number), message)


@router.post(PREFIX + "/{source_user_id}/reassign", name="web_reassign_placeholder")
def reassign(
    full_path: str, source_user_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    group = _group(page, full_path)
    ctx = page.ctx
    found = views.source_user_of(ctx, group, _id(source_user_id))
    username = form.text("username").removeprefix("@").strip()
    try:
        with page.savepoint():
            if not username:
                raise BadParameter(NO_USERNAME)
            user = views.user_to_choose(ctx, username)
            username = user.username
            done = reassignment.reassign(ctx, found.id, user)
    except KeycrewError as exc:
        tab, search, number = _back(form)
        message = NO_USERNAME if isinstance(exc, BadParameter) else _words(exc, username)
        return _show(
            page,
            group,
            tab,
            search,
            number,
            status=422 if isinstance(exc, BadParameter | NotFound) else status_of(exc),
            error=message,
            row_error=(found.id, message),
            typed=(found.id, form.text("username")),
        )
    who = found.source_name or found.source_username or "this source user"
    if done.status == SourceUserStatus.REASSIGNMENT_IN_PROGRESS.value:
        # An admin with the instance's bypass setting: no approval is asked for.
        return _done(
            page, group, form, f"{who}'s contributions and memberships are being moved to @{username}."
        )
    return _done(
        page, group, form, f"Reassignment of {who} requested: @{username} is asked by e-mail to approve it."
    )


def _simple(page: Page, full_path: str, raw_id: str, form: FormData, keep: bool) -> Response:
    group = _group(page, full_path)
    ctx = page.ctx
    found = views.source_user_of(ctx, group, _id(raw_id))
    who = found.source_name or found.source_username or "this source user"
    try:
        with page.savepoint():
            if keep:
                reassignment.keep_as_placeholder(ctx, found.id)
            else:
                reassignment.cancel_reassignment(ctx, found.id)
    except KeycrewError as exc:
        tab, search, number = _back(form)
        return _show(page, group, tab, search, number, status=status_of(exc), error=_words(exc))
    if keep:
        return _done(page, group, form, f"{who} is kept as a placeholder: their contributions stay with it.")
    return _done(page, group, form, f"Reassignment of {who} canceled.")


@router.post(PREFIX + "/{source_user_id}/keep", name="web_keep_placeholder")
def keep(
    full_path: str, source_user_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _simple(page, full_path, source_user_id, form, keep=True)


@router.post(PREFIX + "/{source_user_id}/cancel", name="web_cancel_placeholder_reassignment")
def cancel(
    full_path: str, source_user_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _simple(page, full_path, source_user_id, form, keep=False)


__all__ = ["base_url", "router"]
