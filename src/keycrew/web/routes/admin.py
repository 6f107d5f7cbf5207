"""Web UI: the Admin area (users, service accounts, seats, audit events, application settings).

Admins only: to anyone else every page here does not exist (404), as GitLab's admin area.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, func, select

from keycrew.access.seats import SeatBreakdown, billable_users, is_billable, seat_breakdown
from keycrew.actions import audit_log
from keycrew.actions import service_accounts as sa
from keycrew.actions import users as user_cases
from keycrew.actions.deletion import destroy_user
from keycrew.audit.events import Event
from keycrew.context import Ctx
from keycrew.errors import KeycrewError, NotFound
from keycrew.identity import lifecycle, rate_limits
from keycrew.identity.lockout import is_locked, locked_until
from keycrew.identity.models import User
from keycrew.identity.queries import (
    AdminAction,
    UserFilters,
    UserKind,
    admin_actions,
    find_user_by_username,
    kind_of,
    users_by_kind,
    users_query,
)
from keycrew.identity.service_accounts import service_account_limit, service_accounts_count
from keycrew.identity.sign_in import unlock_user
from keycrew.identity.types import UserType
from keycrew.instance.settings import SETTINGS, instance_settings, read_settings, update_settings
from keycrew.tokens.expiry import expiry_policy
from keycrew.tokens.lifecycle import TokenFilters, filtered, recently_inactive
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.scopes import described, grantable_scopes
from keycrew.tokens.succession import rotation_choices
from keycrew.web import rotation, token_table
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of
from keycrew.web.security import Flash
from keycrew.web.token_forms import FormErrors

router = APIRouter(prefix="/admin")

PER_PAGE = 50
# Lists take ?page=N (the route's own parameter is the request's Page).
PAGE_PARAM = Query(None, alias="page")

TABS: tuple[tuple[str, str], ...] = (
    ("all", "All"),
    (UserKind.HUMANS.value, "Humans"),
    (UserKind.BOTS.value, "Bots"),
    (UserKind.SERVICE_ACCOUNTS.value, "Service accounts"),
    (UserKind.INTERNAL.value, "Internal"),
)


def _admin(page: Page) -> Ctx:
    """The request's Ctx, for an admin (in Admin Mode when the instance asks for it: else sent to
    enter it); anyone else is told the page does not exist."""
    page.require_admin_mode()
    if not page.ctx.actor.is_admin:
        raise NotFound("Page")
    return page.ctx


def _number(value: str | None) -> int:
    """A page number from the query string: anything but a positive integer is page 1."""
    if value is None or not value.isdigit() or len(value) > 6:
        return 1
    return max(1, int(value))


def _paged(
    ctx: Ctx,
    query: Select[Any],
    number: int,
    *,
    base: str,
    params: dict[str, str] | None = None,
    total: int | None = None,
) -> dict[str, Any]:
    """One page of ``query``'s rows, with the links to the previous and next pages (which keep
    the list's other query parameters)."""

    def link(to: int) -> str:
        kept = {k: v for k, v in (params or {}).items() if v}
        if to > 1:
            kept["page"] = str(to)
        return f"{base}?{urlencode(kept)}" if kept else base

    if total is None:
        total = int(ctx.db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)
    pages = max(1, math.ceil(total / PER_PAGE))
    number = min(number, pages)
    rows = list(ctx.db.scalars(query.limit(PER_PAGE).offset((number - 1) * PER_PAGE)))
    return {
        "rows": rows,
        "total": total,
        "number": number,
        "pages": pages,
        "first": (number - 1) * PER_PAGE + 1 if rows else 0,
        "last": (number - 1) * PER_PAGE + len(rows),
        "previous": link(number - 1) if number > 1 else None,
        "next": link(number + 1) if number < pages else None,
    }


def _type_label(user: User) -> str:
    kind = user.type
    if kind is UserType.PROJECT_BOT:
        return "Group bot" if user.bot_resource_type == "Namespace" else "Project bot"
    if kind is UserType.HUMAN:
        return "Human"
    if kind is UserType.SERVICE_ACCOUNT:
        return "Service account"
    label = kind.name.replace("_", " ").capitalize()
    return f"Internal user ({label})" if kind.is_internal else label


@router.get("")
def admin_home(page: Page = page_dep()) -> Response:
    _admin(page)
    return page.redirect("/admin/users")


# -- users --------------------------------------------------------------------------------------


@router.get("/users")
def users(
    tab: str | None = None,
    search: str | None = None,
    page_number: str | None = PAGE_PARAM,
    page: Page = page_dep(),
) -> Response:
    ctx = _admin(page)
    tab = tab if tab in dict(TABS) else "all"
    term = (search or "").strip()[:255]
    filters = UserFilters(search=term or None, kind=None if tab == "all" else tab)
    counts = users_by_kind(ctx, filters)
    listing = _paged(
        ctx,
        users_query(ctx, filters),
        _number(page_number),
        base="/admin/users",
        params={"tab": "" if tab == "all" else tab, "search": term},
        total=counts[tab],
    )
    settings = instance_settings(ctx)
    now = ctx.now()
    return page.render(
        "admin/users.html",
        title="Users",
        tabs=[(key, label, counts[key], _tab_url(key, term)) for key, label in TABS],
        tab=tab,
        tab_label=dict(TABS)[tab],
        search=term,
        listing=listing,
        locked={u.id for u in listing["rows"] if is_locked(u, settings, now)},
    )


def _tab_url(tab: str, search: str) -> str:
    params = {"tab": "" if tab == "all" else tab, "search": search}
    kept = {k: v for k, v in params.items() if v}
    return "/admin/users" + (f"?{urlencode(kept)}" if kept else "")


def _show_user(page: Page, user: User, *, status: int = 200, error: str | None = None) -> Response:
    ctx = page.ctx
    settings = instance_settings(ctx)
    locked = is_locked(user, settings, ctx.now())
    return page.render(
        "admin/user.html",
        status=status,
        title=user.name,
        user=user,
        kind=kind_of(user).value,
        type_label=_type_label(user),
        locked=locked,
        locked_until=locked_until(user, settings) if locked else None,
        billable=is_billable(ctx, user),
        actions=[a.value for a in admin_actions(ctx, user) if not _on_oneself(ctx, user, a)],
        dormant_days=lifecycle.dormant_period(ctx),
        rate_limit=rate_limits.overrides(ctx, [user.id]).get(user.id),
        default_rate_limit=(
            settings.throttle_authenticated_api_requests_per_period,
            settings.throttle_authenticated_api_period_in_seconds,
            settings.throttle_authenticated_api_enabled,
        ),
        error=error,
    )


# Never offered to an admin on their own account (GitLab's admin area offers none of them either).
NOT_ON_ONESELF = (
    AdminAction.BLOCK,
    AdminAction.DEACTIVATE,
    AdminAction.DELETE,
    AdminAction.DELETE_WITH_CONTRIBUTIONS,
)
NOT_ON_ONESELF_DELETE = "You cannot delete your own account from the Admin area."


def _on_oneself(ctx: Ctx, user: User, action: AdminAction) -> bool:
    return user.id == ctx.actor.user_id and action in NOT_ON_ONESELF


@router.get("/users/{username}")
def user_page(username: str, page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    return _show_user(page, find_user_by_username(ctx, username))


# What each state action calls, and the notice after it: when it changed something, and when the
# user already was in that state.
STATE_ACTIONS: dict[str, tuple[Callable[[Ctx, User], Any], str, str]] = {
    AdminAction.BLOCK: (lifecycle.block_user, "@{} has been blocked.", "@{} was already blocked."),
    AdminAction.UNBLOCK: (user_cases.unblock_user, "@{} has been unblocked.", "@{} was not blocked."),
    AdminAction.DEACTIVATE: (
        lifecycle.deactivate_user,
        "@{} has been deactivated.",
        "@{} was already deactivated.",
    ),
    AdminAction.ACTIVATE: (lifecycle.activate_user, "@{} has been activated.", "@{} was already active."),
    AdminAction.UNLOCK: (unlock_user, "@{} has been unlocked.", "@{} was not locked."),
}


@router.post("/users/{username}/rate_limit")
def set_rate_limit(username: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    """Give the user a request limit of their own (or change it); audited."""
    ctx = _admin(page)
    user = find_user_by_username(ctx, username)
    values = [form.text("requests_per_period"), form.text("period_in_seconds")]
    if not all(v and v.isascii() and v.isdigit() and len(v) <= 10 for v in values):
        return _show_user(page, user, status=400, error="The limit and the period must be whole numbers.")
    requests, period = (int(v) for v in values if v)
    try:
        with page.savepoint():
            rate_limits.set_override(ctx, user.id, requests, period)
    except KeycrewError as exc:
        return _show_user(
            page, find_user_by_username(ctx, username), status=status_of(exc), error=describe(exc)
        )
    return page.notice(
        f"/admin/users/{user.username}", f"@{user.username} has a rate limit of their own now."
    )


@router.post("/users/{username}/rate_limit/delete")
def remove_rate_limit(username: str, page: Page = form_dep()) -> Response:
    """Drop the user's own limit: the instance's limits apply again; audited."""
    ctx = _admin(page)
    user = find_user_by_username(ctx, username)
    try:
        with page.savepoint():
            rate_limits.remove_override(ctx, user.id)
    except KeycrewError as exc:
        return _show_user(
            page, find_user_by_username(ctx, username), status=status_of(exc), error=describe(exc)
        )
    return page.notice(
        f"/admin/users/{user.username}", f"@{user.username} has the instance's rate limits again."
    )


@router.post("/users/{username}/delete")
def delete_user(username: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    ctx = _admin(page)
    user = find_user_by_username(ctx, username)
    hard = form.flag("hard_delete")
    name = user.username
    if user.id == ctx.actor.user_id:
        # Not offered (a forged form): block and deactivate are refused by their use cases.
        return _show_user(page, user, status=403, error=NOT_ON_ONESELF_DELETE)
    try:
        with page.savepoint():
            done = destroy_user(ctx, user, hard_delete=hard)
    except KeycrewError as exc:
        return _show_user(
            page, find_user_by_username(ctx, username), status=status_of(exc), error=describe(exc)
        )
    if done.deferred:
        then = "deleted what they authored." if hard else "moved what they authored to the Ghost User."
        message = f"@{name} is blocked and will be deleted shortly, once the ghost-migration job has {then}"
        return page.notice("/admin/users", message)
    message = (
        f"@{name} has been deleted, with everything they authored."
        if hard
        else f"@{name} has been deleted. What they authored now belongs to the Ghost User."
    )
    return page.notice("/admin/users", message)


@router.post("/users/{username}/{action}")
def user_action(username: str, action: str, page: Page = form_dep()) -> Response:
    ctx = _admin(page)
    user = find_user_by_username(ctx, username)
    if action not in STATE_ACTIONS:
        raise NotFound("Page")
    use_case, done, unchanged = STATE_ACTIONS[action]
    name = user.username
    try:
        with page.savepoint():
            changed = use_case(ctx, user)
    except KeycrewError as exc:
        return _show_user(
            page, find_user_by_username(ctx, username), status=status_of(exc), error=describe(exc)
        )
    return page.notice(f"/admin/users/{name}", (done if changed else unchanged).format(name))


# -- service accounts ---------------------------------------------------------------------------


def _show_accounts(
    page: Page,
    *,
    page_number: str | None = None,
    status: int = 200,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    ctx = page.ctx
    owner = sa.instance_owner(ctx)
    settings = instance_settings(ctx)
    listing = _paged(
        ctx, sa.service_accounts_query(owner), _number(page_number), base="/admin/service_accounts"
    )
    return page.render(
        "admin/service_accounts.html",
        status=status,
        title="Service accounts",
        listing=listing,
        plan=settings.plan,
        limit=service_account_limit(settings.plan, settings.seats),
        existing=service_accounts_count(ctx),
        form={"name": "", "username": "", "email": ""} | (values or {}),
        error=error,
    )


@router.get("/service_accounts")
def service_accounts(page_number: str | None = PAGE_PARAM, page: Page = page_dep()) -> Response:
    _admin(page)
    return _show_accounts(page, page_number=page_number)


@router.post("/service_accounts")
def create_service_account(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    ctx = _admin(page)
    values = {key: form.text(key) for key in ("name", "username", "email")}
    try:
        with page.savepoint():
            account = sa.create_service_account(
                ctx, sa.instance_owner(ctx), **{k: v or None for k, v in values.items()}
            )
    except KeycrewError as exc:
        return _show_accounts(page, status=status_of(exc), error=describe(exc), values=values)
    return page.notice(
        f"/admin/service_accounts/{account.id}", f"The service account @{account.username} has been created."
    )


def _account(ctx: Ctx, user_id: str) -> User:
    if not (user_id.isascii() and user_id.isdigit()) or len(user_id) > 10:
        raise NotFound("User")
    return sa.find_service_account(ctx, sa.instance_owner(ctx), int(user_id))


def _show_account(
    page: Page,
    account: User,
    *,
    status: int = 200,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    failed: rotation.FailedRotation | None = None,
    errors: FormErrors | None = None,
) -> Response:
    ctx = page.ctx
    today = ctx.today()
    active = list(
        ctx.db.scalars(
            filtered(sa.service_account_tokens_query(account), TokenFilters(state="active"), today)
        )
    )
    inactive = list(ctx.db.scalars(recently_inactive(sa.service_account_tokens_query(account), today)))
    policy = expiry_policy(ctx)
    form = {
        "name": "",
        "description": "",
        "expires_at": policy.default.isoformat(),
        "scopes": [],
    } | (values or {})
    return page.render(
        "admin/service_account.html",
        status=status,
        title=account.name,
        account=account,
        base_url=f"/admin/service_accounts/{account.id}",
        **_account_token_tables(page, account, active, inactive),
        scope_choices=described(grantable_scopes(creator_admin=True, owner_admin=account.admin)),
        form=form,
        min_date=policy.earliest.isoformat(),
        max_date=policy.latest.isoformat(),
        error=error,
        errors=errors,
        form_open=bool(errors) or page.request.query_params.get("new") == "1",
        rotation_choices=rotation_choices(ctx),
        failed=failed,
    )


def _account_token_tables(
    page: Page, account: User, active: list[PersonalAccessToken], inactive: list[PersonalAccessToken]
) -> dict[str, Any]:
    """The service account's token tables (keycrew.web.token_table) as the query string asks."""
    return token_table.holder_context(
        page.ctx,
        page.request.query_params,
        f"/admin/service_accounts/{account.id}",
        active=(
            token_table.TableSpec(
                "active-heading", "Active tokens", "This service account has no active tokens."
            ),
            active,
        ),
        inactive=(
            token_table.TableSpec(
                "inactive-heading",
                "Inactive tokens",
                "No token became inactive recently.",
                note="Rotated, revoked or expired in the last 30 days.",
                actions=False,
            ),
            inactive,
        ),
    )


@router.get("/service_accounts/{user_id}")
def service_account(user_id: str, page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    return _show_account(page, _account(ctx, user_id))


@router.post("/service_accounts/{user_id}/personal_access_tokens")
def create_account_token(user_id: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    ctx = _admin(page)
    account = _account(ctx, user_id)
    values: dict[str, Any] = {
        "name": form.text("name"),
        "description": form.text("description"),
        "expires_at": form.text("expires_at"),
        "scopes": form.values("scopes"),
    }
    # Every problem the form can tell at once, then the use case's word.
    errors = FormErrors()
    errors.check_name(values["name"])
    policy = expiry_policy(ctx)
    expires_at = errors.check_expiry(values["expires_at"], earliest=policy.earliest, latest=policy.latest)
    errors.check_scopes(values["scopes"])
    if errors:
        return _show_account(page, account, status=400, errors=errors, values=values)
    try:
        with page.savepoint():
            issued = sa.create_service_account_token(
                ctx,
                account,
                name=values["name"],
                scopes=values["scopes"],
                expires_at=expires_at,
                description=values["description"] or None,
            )
    except KeycrewError as exc:
        errors.refusal(exc)
        return _show_account(page, account, status=status_of(exc), errors=errors, values=values)
    message = f"A new token “{issued.token.name}” has been created for @{account.username}."
    return page.redirect(
        f"/admin/service_accounts/{account.id}", Flash("notice", message, secret=issued.value)
    )


def _token_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
        raise NotFound("Personal Access Token")
    return int(raw)


@router.post("/service_accounts/{user_id}/personal_access_tokens/{token_id}/rotate")
def rotate_account_token(
    user_id: str, token_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    ctx = _admin(page)
    account = _account(ctx, user_id)
    raw = form.text("expires_at")
    expiry, problem = rotation.checked_expiry(ctx, raw)
    if problem is not None:  # the date, told before asking: the form again, the reason next to it
        token = sa.find_service_account_token(ctx, account, _token_id(token_id))
        action = f"/admin/service_accounts/{account.id}/personal_access_tokens/{token.id}/rotate"
        return _show_account(page, account, status=400, failed=rotation.failed(token, action, raw, problem))
    try:
        with page.savepoint():
            token = sa.find_service_account_token(ctx, account, _token_id(token_id))
            issued = sa.rotate_service_account_token(ctx, token, expires_at=expiry)
    except KeycrewError as exc:
        if rotation.expiry_refusal(exc):  # the date: the form again, the reason next to it
            token = sa.find_service_account_token(ctx, account, _token_id(token_id))
            action = f"/admin/service_accounts/{account.id}/personal_access_tokens/{token.id}/rotate"
            failed = rotation.failed(token, action, raw, exc)
            return _show_account(page, account, status=status_of(exc), failed=failed)
        return _show_account(page, account, status=status_of(exc), error=describe(exc))
    message = rotation.rotated_message(
        f"The token “{issued.token.name}” has been rotated: the old value no longer works.", issued.token
    )
    return page.redirect(
        f"/admin/service_accounts/{account.id}", Flash("notice", message, secret=issued.value)
    )


@router.post("/service_accounts/{user_id}/personal_access_tokens/{token_id}/revoke")
def revoke_account_token(user_id: str, token_id: str, page: Page = form_dep()) -> Response:
    ctx = _admin(page)
    account = _account(ctx, user_id)
    try:
        with page.savepoint():
            token = sa.find_service_account_token(ctx, account, _token_id(token_id))
            name = token.name
            sa.revoke_service_account_token(ctx, token)
    except KeycrewError as exc:
        return _show_account(page, account, status=status_of(exc), error=describe(exc))
    return page.notice(f"/admin/service_accounts/{account.id}", f"The token “{name}” has been revoked.")


# -- seats --------------------------------------------------------------------------------------


def _seat_kinds(breakdown: SeatBreakdown) -> list[dict[str, Any]]:
    """Every user once, by kind: the chart's segments and its legend, each with why it takes a
    seat or not (the rules are the domain's: ``keycrew.access.seats``)."""
    ultimate = breakdown.guests_are_free
    kinds: list[dict[str, Any]] = [
        {
            "key": "billable",
            "label": "Billable people",
            "count": breakdown.billable,
            "billable": True,
            "why": "Billable: active people"
            + (" with a role above Guest somewhere" if ultimate else "")
            + " each take a paid seat.",
        },
        {
            "key": "bots",
            "label": "Project and group bots",
            "count": breakdown.bots,
            "billable": False,
            "why": "Non-billable: bots don't take a seat.",
        },
        {
            "key": "service",
            "label": "Service accounts",
            "count": breakdown.service_accounts,
            "billable": False,
            "why": "Non-billable: service accounts don't take a seat.",
        },
        {
            "key": "internal",
            "label": "Internal users",
            "count": breakdown.internal,
            "billable": False,
            "why": "Non-billable: internal users (Ghost User, Admin Bot…) are the system's own.",
        },
        {
            "key": "inactive",
            "label": "Blocked or deactivated people",
            "count": breakdown.inactive_humans,
            "billable": False,
            "why": "Non-billable: blocked, banned or deactivated people free their seat.",
        },
    ]
    if ultimate:
        kinds.append(
            {
                "key": "guests",
                "label": "Guests",
                "count": breakdown.guests,
                "billable": False,
                "why": "Non-billable: Guests are free on Ultimate.",
            }
        )
    else:
        kinds.append(
            {
                "key": "minimal",
                "label": "Minimal Access only",
                "count": breakdown.minimal_access,
                "billable": False,
                "why": "Non-billable: people whose only role is Minimal Access are free.",
            }
        )
    return kinds


@router.get("/seats")
def seats(page_number: str | None = PAGE_PARAM, page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    breakdown = seat_breakdown(ctx)
    kinds = _seat_kinds(breakdown)
    paid = "unlimited seats" if breakdown.seats is None else f"{breakdown.seats} paid seats"
    summary = (
        f"{breakdown.billable} billable and {breakdown.non_billable} non-billable users, {paid}. "
        + "; ".join(f"{kind['label']}: {kind['count']}" for kind in kinds)
        + "."
    )
    # Two stacked bars on one scale (all users): billable, then non-billable by kind.
    offsets = {True: 0.0, False: 0.0}
    total = max(1, breakdown.total)
    for kind in kinds:
        share = kind["count"] / total * 100
        kind["x"] = round(offsets[kind["billable"]], 2)
        kind["width"] = round(share, 2)
        offsets[kind["billable"]] += share
    listing = _paged(ctx, billable_users(ctx), _number(page_number), base="/admin/seats")
    return page.render(
        "admin/seats.html",
        title="Seats",
        summary=summary,
        seats=breakdown,
        kinds=kinds,
        listing=listing,
    )


# -- audit events -------------------------------------------------------------------------------

AUDIT_CSV_HEADER = ("time", "actor", "action", "target type", "target", "details", "ip")
# A cell starting with one of these would be read as a formula by a spreadsheet: it gets a quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _day(value: str | None, label: str, errors: list[str]) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors.append(f"{label} is not a date.")
        return None


def _audit_filters(
    actor: str | None,
    target: str | None,
    action: str | None,
    created_after: str | None,
    created_before: str | None,
) -> tuple[dict[str, str], audit_log.AuditSearch, list[str]]:
    """The filters as the form shows them again, as the search takes them, and what was wrong."""
    errors: list[str] = []
    first = _day(created_after, "From", errors)
    last = _day(created_before, "To", errors)
    chosen = {
        "actor": (actor or "").strip()[:255],
        "target": (target or "").strip()[:255],
        "action": action if action in {e.value for e in Event} else "",
        "created_after": first.isoformat() if first else "",
        "created_before": last.isoformat() if last else "",
    }
    search = audit_log.AuditSearch(
        actor=chosen["actor"] or None,
        target=chosen["target"] or None,
        action=chosen["action"] or None,
        created_after=None if first is None else dt.datetime.combine(first, dt.time(), dt.UTC),
        created_before=None if last is None else dt.datetime.combine(last, dt.time.max, dt.UTC),
    )
    return chosen, search, errors


@router.get("/audit_events")
def audit_events(
    actor: str | None = None,
    target: str | None = None,
    action: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    format: str | None = None,
    page_number: str | None = PAGE_PARAM,
    page: Page = page_dep(),
) -> Response:
    ctx = _admin(page)
    chosen, search, errors = _audit_filters(actor, target, action, created_after, created_before)
    if format == "csv":
        return _audit_csv(page, search)
    query = audit_log.search_events(ctx, search)
    listing = _paged(ctx, query, _number(page_number), base="/admin/audit_events", params=chosen)
    kept = {k: v for k, v in chosen.items() if v}
    return page.render(
        "admin/audit_events.html",
        title="Audit events",
        names=[e.value for e in Event],
        chosen=chosen,
        filtering=any(chosen.values()),
        listing=listing,
        resolved=audit_log.resolve(ctx, listing["rows"]),
        csv_url="/admin/audit_events.csv" + (f"?{urlencode(kept)}" if kept else ""),
        error=" ".join(errors) or None,
    )


@router.get("/audit_events.csv")
def audit_events_csv(
    actor: str | None = None,
    target: str | None = None,
    action: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    page: Page = page_dep(),
) -> Response:
    _admin(page)
    _chosen, search, errors = _audit_filters(actor, target, action, created_after, created_before)
    if errors:
        return Response(" ".join(errors), status_code=400, media_type="text/plain; charset=utf-8")
    return _audit_csv(page, search)


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text (OWASP's CSV injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _audit_csv(page: Page, search: audit_log.AuditSearch) -> Response:
    """Every event of the filtered view (not just a page), streamed in batches from a read-only
    transaction of its own (the page's ends when the route returns)."""
    runtime, actor = page.runtime, page.ctx.actor

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")

        def flush() -> str:
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return text

        writer.writerow(AUDIT_CSV_HEADER)
        yield flush()
        with runtime.sessions() as db:
            if db.get_bind().dialect.name == "sqlite":
                db.connection(execution_options={"sqlite_begin": "DEFERRED"})
            ctx = runtime.ctx(db, actor)
            for batch in audit_log.iter_events(ctx, search):
                resolved = audit_log.resolve(ctx, batch)
                for event in batch:
                    found = resolved[event.id]
                    target = found.target
                    writer.writerow(
                        [
                            _cell(event.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")),
                            _cell(event.author_name),
                            _cell(event.event_name),
                            _cell(None if target is None else target.kind),
                            _cell(None if target is None else target.name),
                            _cell(json.dumps(event.details, sort_keys=True) if event.details else ""),
                            _cell(event.ip_address),
                        ]
                    )
                yield flush()
            db.rollback()

    filename = f"audit-events-{page.ctx.today().isoformat()}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


# -- application settings -----------------------------------------------------------------------

# How the form names and groups each setting (presentation only: bounds and rules are the domain's).
ACCOUNTS = "Account and limit"
SIGN_IN = "Sign-in restrictions"
DORMANT = "Dormant and unconfirmed users"
INACTIVE = "Inactive projects"
TOKENS = "Service accounts and tokens"
SETTING_TEXT: dict[str, tuple[str, str, str]] = {
    "default_projects_limit": (
        ACCOUNTS,
        "Default projects limit",
        "How many personal projects a new user may create (0: none). An administrator may change "
        "it per user.",
    ),
    "admin_mode": (
        SIGN_IN,
        "Admin Mode",
        "Administrators act as administrators only after entering their password again (for six "
        "hours), and through the API only with a token that has the admin_mode scope.",
    ),
    "max_login_attempts": (
        SIGN_IN,
        "Failed sign-in attempts before an account is locked",
        "Wrong passwords in a row that lock the account.",
    ),
    "failed_login_attempts_unlock_period_in_minutes": (
        SIGN_IN,
        "Lock duration (minutes)",
        "A locked account opens by itself after this long, or at once when an administrator unlocks it.",
    ),
    "password_authentication_enabled_for_git": (
        SIGN_IN,
        "Allow passwords for Git over HTTP and the registries",
        "When off, only access tokens work as the password.",
    ),
    "deactivate_dormant_users": (
        DORMANT,
        "Deactivate dormant users",
        "Users who have not been active for the period below are deactivated by the Admin Bot; "
        "they are activated again when they sign in.",
    ),
    "deactivate_dormant_users_period": (
        DORMANT,
        "Days of inactivity before deactivation",
        "At least 90 days.",
    ),
    "user_deactivation_emails_enabled": (
        DORMANT,
        "E-mail users deactivated for inactivity",
        "They are told that their account was deactivated and that signing in activates it again.",
    ),
    "email_confirmation_setting": (
        DORMANT,
        "E-mail confirmation (off, soft or hard)",
        "Whether new users must confirm their e-mail address; unconfirmed users are deleted only "
        "when it is soft or hard.",
    ),
    "delete_unconfirmed_users": (
        DORMANT,
        "Delete unconfirmed users",
        "Users who never confirmed their e-mail address are deleted after the days below (only "
        "when e-mail confirmation is required).",
    ),
    "unconfirmed_users_delete_after_days": (
        DORMANT,
        "Delete unconfirmed users after (days)",
        "At least 1 day.",
    ),
    "delete_inactive_projects": (
        INACTIVE,
        "Delete inactive projects",
        "Projects without activity are deleted after the months below; their Owners and "
        "Maintainers are warned first.",
    ),
    "inactive_projects_min_size_mb": (
        INACTIVE,
        "Minimum size of projects to check (MB)",
        "Smaller projects are never deleted for inactivity (0: every project).",
    ),
    "inactive_projects_delete_after_months": (
        INACTIVE,
        "Delete inactive projects after (months)",
        "At least 1 month.",
    ),
    "inactive_projects_send_warning_email_after_months": (
        INACTIVE,
        "Warn the project's Maintainers after (months)",
        "Must be less than the months before deletion.",
    ),
    "allow_top_level_group_owners_to_create_service_accounts": (
        TOKENS,
        "Allow top-level group Owners to create service accounts",
        "When off, only administrators create service accounts, for the instance or for a group.",
    ),
    "allow_local_requests_from_web_hooks_and_services": (
        "Outbound requests",
        "Allow requests to the local network from webhooks",
        "Project and group webhooks may then reach loopback and private addresses (keycrew's own too).",
    ),
    "allow_local_requests_from_system_hooks": (
        "Outbound requests",
        "Allow requests to the local network from system hooks",
        "System hooks may then reach loopback and private addresses.",
    ),
    "personal_access_token_prefix": (
        TOKENS,
        "Token prefix",
        "What new tokens start with, in front of their kind's prefix (acme- gives acme-glpat-...). "
        "Tokens issued before keep working. Leave empty for the operator's prefix "
        "(KEYCREW_INSTANCE_TOKEN_PREFIX).",
    ),
    "max_personal_access_token_lifetime": (
        TOKENS,
        "Maximum lifetime of access tokens (days)",
        "Personal, project, group and service-account tokens expire at most this many days after "
        "they are created.",
    ),
    "require_personal_access_token_expiry": (
        TOKENS,
        "Require an expiration date on access tokens",
        "When off, personal, project and group tokens may be created without one.",
    ),
    "service_access_tokens_expiration_enforced": (
        TOKENS,
        "Require an expiration date on service-account tokens",
        "When off, a service account's tokens may be created without one (Free plans always require it).",
    ),
    "inactive_resource_access_tokens_delete_after_days": (
        TOKENS,
        "Delete the bots of inactive project and group tokens after (days)",
        "When a token is revoked or expires, its bot user stays this long (0: it goes when the token "
        "is revoked). What it did then moves to the Ghost User.",
    ),
    "resource_access_token_notify_inherited": (
        TOKENS,
        "Tell inherited members about expiring project and group tokens",
        "Expiry e-mail about a bot's token then also goes to the Owners and Maintainers (for a group: "
        "the Owners) of the groups above its project or group, not only to its direct members.",
    ),
    "allow_bypass_placeholder_confirmation": (
        "Import",
        "Skip confirmation when administrators reassign placeholder users",
        "An administrator's reassignment of an imported user's contributions then takes effect without "
        "the chosen user's approval.",
    ),
    "bulk_import_enabled": (
        "Import",
        "Allow migrating GitLab groups and projects by direct transfer",
        "Users may then copy groups and projects, with their members, issues, comments, repositories "
        "and packages, from another GitLab or keycrew instance (POST /bulk_imports).",
    ),
    **{
        f"{throttle}_{suffix}": (f"Rate limits: {title}", label, hint)
        for throttle, title, who in (
            ("throttle_authenticated_api", "authenticated API", "each user (the token's owner)"),
            ("throttle_unauthenticated_api", "unauthenticated API", "each client address"),
            ("throttle_authenticated_git_http", "authenticated Git over HTTP", "each user"),
        )
        for suffix, label, hint in (
            (
                "enabled",
                "Limit requests",
                f"Requests of {who} over the limit get 429 Retry later. Rather than switching a "
                "limit off for one busy bot, give it a limit of its own on its user page.",
            ),
            ("requests_per_period", "Requests per period", "How many requests a period allows."),
            ("period_in_seconds", "Period (seconds)", "The length of a period."),
        )
    },
}


def _fields(row: Any, values: dict[str, str] | None) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    # In the form's order; a setting the form does not know yet still shows, under "Other".
    for name in [
        *(n for n in SETTING_TEXT if n in SETTINGS),
        *(n for n in SETTINGS if n not in SETTING_TEXT),
    ]:
        setting = SETTINGS[name]
        group, label, hint = SETTING_TEXT.get(name, ("Other", name.replace("_", " ").capitalize(), ""))
        current = getattr(row, name)
        if setting.kind is str and current is None:
            current = ""
        if values is not None and name in values:
            current = values[name]
        groups.setdefault(group, []).append(
            {
                "name": name,
                "label": label,
                "hint": hint,
                "boolean": setting.kind is bool,
                "text": setting.kind is str,
                "minimum": setting.minimum,
                "maximum": setting.maximum,
                "value": current,
            }
        )
    return list(groups.items())


def _show_settings(
    page: Page, *, status: int = 200, error: str | None = None, values: dict[str, Any] | None = None
) -> Response:
    row = read_settings(page.ctx)
    return page.render(
        "admin/settings.html",
        status=status,
        title="Settings",
        groups=_fields(row, values),
        error=error,
    )


@router.get("/application_settings")
def application_settings(page: Page = page_dep()) -> Response:
    _admin(page)
    return _show_settings(page)


@router.post("/application_settings")
def save_application_settings(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    ctx = _admin(page)
    changes: dict[str, Any] = {}
    posted: dict[str, Any] = {}
    unreadable: list[str] = []
    for name, setting in SETTINGS.items():
        if setting.kind is bool:
            changes[name] = posted[name] = form.flag(name)
            continue
        raw = form.text(name)
        if setting.kind is str:
            changes[name] = posted[name] = raw  # empty: back to the default
            continue
        posted[name] = raw
        if not raw:
            continue  # left empty: unchanged
        if not (raw.isascii() and raw.lstrip("-").isdigit()) or len(raw) > 9:
            unreadable.append(f"{SETTING_TEXT.get(name, ('', name, ''))[1]} must be a whole number.")
            continue
        changes[name] = int(raw)
    if unreadable:
        return _show_settings(page, status=400, error=" ".join(unreadable), values=posted)
    try:
        with page.savepoint():
            update_settings(ctx, changes)
    except KeycrewError as exc:
        return _show_settings(page, status=status_of(exc), error=_settings_error(exc), values=posted)
    return page.notice("/admin/application_settings", "The settings have been saved.")


def _settings_error(exc: KeycrewError) -> str:
    """The domain names a setting by its key: say which field, and its bounds."""
    for name, setting in SETTINGS.items():
        if exc.message.startswith(name + " "):
            label = SETTING_TEXT.get(name, ("", name, ""))[1]
            return f"{label}: must be between {setting.minimum} and {setting.maximum}."
    return describe(exc)
