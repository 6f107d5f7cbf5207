"""Finding users: GitLab's UsersFinder filters, search and ordering, and the user lookups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, func, select

from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.db.listings import Listing, listing
from keycrew.db.text import contains_pattern
from keycrew.errors import BadParameter, Forbidden, NotFound
from keycrew.identity.lockout import is_locked
from keycrew.identity.models import User
from keycrew.identity.types import INTERNAL_TYPES, NON_INTERNAL_TYPES, UserState, UserType
from keycrew.identity.views import USER_LISTING, UserView, read_user
from keycrew.instance.settings import instance_settings

ORDER_BY = ("id", "name", "username", "created_at", "updated_at")
SORT = ("asc", "desc")
# Non-admins never find users in these states (GitLab's FORBIDDEN_SEARCH_STATES).
HIDDEN_STATES = ("blocked", "banned", "ldap_blocked")
# Shorter search terms match names and usernames exactly, longer ones anywhere.
MIN_CHARS_FOR_PARTIAL_MATCH = 3

# Filters and orders are written on the table's columns, so that a listing of columns stays a
# Core statement (cheaper to build and to key than one that goes through the ORM).
_U = User.__table__.c
S = TypeVar("S", bound=Select[Any])


class UserKind(StrEnum):
    """The four kinds of account a user listing tells apart; every user type is of exactly one."""

    HUMANS = "humans"
    BOTS = "bots"
    SERVICE_ACCOUNTS = "service_accounts"
    INTERNAL = "internal"


KIND_TYPES: dict[UserKind, frozenset[UserType]] = {
    # People (and GitLab.com's integration users, which are not machines of this instance).
    UserKind.HUMANS: frozenset({UserType.HUMAN, UserType.SERVICE_USER}),
    # Project and group bots: one per project or group access token.
    UserKind.BOTS: frozenset({UserType.PROJECT_BOT}),
    UserKind.SERVICE_ACCOUNTS: frozenset({UserType.SERVICE_ACCOUNT}),
    # Ghost, placeholders and the system's bots (Admin Bot, Support Bot...).
    UserKind.INTERNAL: INTERNAL_TYPES,
}


def kind_of(user: User) -> UserKind:
    """Which of the four kinds ``user`` is."""
    return next(kind for kind, types in KIND_TYPES.items() if user.type in types)


@dataclass(frozen=True)
class UserFilters:
    """GET /users filters. Boolean filters narrow when true and do nothing when false."""

    username: str | None = None
    search: str | None = None
    active: bool = False
    blocked: bool = False
    external: bool = False
    exclude_external: bool = False
    humans: bool = False
    exclude_humans: bool = False
    exclude_internal: bool = False
    without_project_bots: bool = False
    exclude_active: bool = False
    admins: bool = False
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    order_by: str | None = None
    sort: str | None = None
    # Nobody has two-factor authentication or a public e-mail on keycrew: these only ever narrow.
    two_factor: str | None = None
    public_email: str | None = None
    # /search?scope=users matches partially whatever the length of the term.
    minimum_char_limit: bool = True
    # One UserKind value (the admin area's tabs); None lists every kind.
    kind: str | None = None


def find_user(ctx: Ctx, user_id: int) -> User:
    """The user with ``user_id``. Raises NotFound("User")."""
    user = ctx.db.get(User, user_id) if 0 < user_id <= MAX_ID else None
    if user is None:
        raise NotFound("User")
    return user


def read_user_view(ctx: Ctx, user_id: int) -> UserView:
    """``find_user`` for a read: the user as column values, through ``ctx.reads``."""
    user = read_user(ctx.reads, user_id) if 0 < user_id <= MAX_ID else None
    if user is None:
        raise NotFound("User")
    return user


def lock_user(ctx: Ctx, user: User) -> User:
    """Re-read ``user`` under a row lock (PostgreSQL) so that concurrent changes queue up.

    SQLite needs none: its writers already run one at a time. Raises NotFound("User") when a
    concurrent request deleted the user meanwhile.
    """
    fresh = ctx.db.scalars(
        select(User).where(User.id == user.id).with_for_update().execution_options(populate_existing=True)
    ).first()
    if fresh is None:
        raise NotFound("User")
    return fresh


def _search_condition(mode: str, with_emails: bool, param: Callable[[str], Any]) -> ColumnElement[bool]:
    name, username = func.lower(_U.name), _U.username_lower
    if mode == "exact":  # shorter terms match names and usernames exactly
        term = param("u_term")
        condition = (name == term) | (username == term)
    else:
        pattern = param("u_pattern")
        condition = name.like(pattern, escape="\\") | username.like(pattern, escape="\\")
    if with_emails:
        # Admins also find users by their (private) e-mail address, matched exactly.
        condition = condition | (_U.email == param("u_term"))
    return condition


def check_order(order_by: str | None, sort: str | None) -> None:
    if order_by is not None and order_by not in ORDER_BY:
        raise BadParameter("order_by does not have a valid value")
    if sort is not None and sort not in SORT:
        raise BadParameter("sort does not have a valid value")


def users_query(ctx: Ctx, filters: UserFilters) -> Select[Any]:
    """The users ``ctx.actor`` may list with ``filters``, ordered as GitLab orders them.

    Anonymous callers must name a username (else Forbidden, as GitLab). Non-admins never see
    blocked or banned users, and their created_* and order filters are ignored. Raises
    BadParameter for an unknown order_by or sort.
    """
    shape, values = _shape(ctx, filters)
    return _build(select(User), shape, lambda name: bindparam(name, values[name]))


def user_listing(ctx: Ctx, filters: UserFilters) -> Listing:
    """``users_query`` as rows of ``USER_COLUMNS`` (for ``user_view``), read without the ORM,
    built once per shape (``keycrew.db.listings``)."""
    shape, values = _shape(ctx, filters)
    return listing(("users", shape), lambda: (_build(USER_LISTING, shape, bindparam), None), values)


@dataclass(frozen=True)
class _Shape:
    """What decides the SQL of a user listing; values go apart, as parameters."""

    admin: bool
    username: bool
    conditions: tuple[str, ...]  # names in _CONDITIONS
    search: str | None  # None, "none" (a blank term), "exact" or "partial"
    search_emails: bool
    kind: str | None
    order: tuple[str, str] | None  # (column, direction), or None for the search order


_CONDITIONS: dict[str, ColumnElement[bool]] = {
    "admins": _U.admin.is_(True),
    "humans": _U.user_type == int(UserType.HUMAN),
    "exclude_humans": _U.user_type != int(UserType.HUMAN),
    "blocked": _U.state.in_((UserState.BLOCKED.value, "ldap_blocked")),
    # GitLab's `active` scope: state active and not an internal user.
    "active": and_(
        _U.state == UserState.ACTIVE.value, _U.user_type.in_([int(t) for t in NON_INTERNAL_TYPES])
    ),
    "exclude_active": _U.state != UserState.ACTIVE.value,
    "external": _U.external.is_(True),
    "exclude_external": _U.external.is_(False),
    "exclude_internal": _U.user_type.in_([int(t) for t in NON_INTERNAL_TYPES]),
    "without_project_bots": _U.user_type != int(UserType.PROJECT_BOT),
    # Nobody has two-factor authentication or a public e-mail on keycrew: these find nobody.
    "nobody": _U.id.is_(None),
}


def _shape(ctx: Ctx, filters: UserFilters) -> tuple[_Shape, dict[str, Any]]:
    """The shape of a listing with ``filters`` for ``ctx.actor``, and its parameters' values.
    Raises what ``users_query`` raises."""
    check_order(filters.order_by, filters.sort)
    if filters.kind is not None:
        _kind_condition(filters.kind)  # BadParameter before anything else
    actor = ctx.actor
    admin = actor.is_admin
    if actor.is_anonymous and not filters.username:
        raise Forbidden("Not authorized to access /api/v4/users")
    values: dict[str, Any] = {}
    conditions = [
        name
        for name, wanted in (
            ("admins", filters.admins and admin),
            ("humans", filters.humans),
            ("exclude_humans", filters.exclude_humans),
            ("blocked", filters.blocked),
            ("active", filters.active),
            ("exclude_active", filters.exclude_active),
            ("external", filters.external),
            ("exclude_external", filters.exclude_external),
            ("exclude_internal", filters.exclude_internal),
            ("without_project_bots", filters.without_project_bots),
            ("nobody", (admin and filters.two_factor == "enabled") or filters.public_email is not None),
        )
        if wanted
    ]
    if filters.username is not None:
        values["u_username"] = filters.username.lower()
    search: str | None = None
    if filters.search:
        term = filters.search.removeprefix("@").lower()
        if not term.strip():
            search = "none"
        elif filters.minimum_char_limit and len(term) < MIN_CHARS_FOR_PARTIAL_MATCH:
            search = "exact"
        else:
            search = "partial"
            values["u_pattern"] = contains_pattern(term)
        values["u_term"] = term
    if admin and filters.created_after is not None:
        conditions.append("created_after")
        values["u_created_after"] = filters.created_after
    if admin and filters.created_before is not None:
        conditions.append("created_before")
        values["u_created_before"] = filters.created_before
    custom = admin and (filters.order_by is not None or filters.sort is not None)
    order = None
    if search is None or custom:
        order = ((filters.order_by if admin else None) or "id", (filters.sort if admin else None) or "desc")
    shape = _Shape(
        admin=admin,
        username=filters.username is not None,
        conditions=tuple(conditions),
        search=search,
        search_emails=admin,
        kind=filters.kind,
        order=order,
    )
    return shape, values


_BOUND_CONDITIONS = {
    "created_after": lambda param: _U.created_at >= param("u_created_after"),
    "created_before": lambda param: _U.created_at <= param("u_created_before"),
}


def _build(query: S, shape: _Shape, param: Callable[[str], Any]) -> S:
    """The listing of ``shape`` on ``query`` (a select of users or of their columns), its values
    taken from ``param(name)``: a placeholder, or a bound value."""
    if not shape.admin:
        query = query.where(_U.state.not_in(HIDDEN_STATES))
    if shape.username:
        query = query.where(_U.username_lower == param("u_username"))
    for name in shape.conditions:
        bound = _BOUND_CONDITIONS.get(name)
        query = query.where(bound(param) if bound is not None else _CONDITIONS[name])
    if shape.search == "none":
        return query.where(_U.id.is_(None))
    if shape.search is not None:
        query = query.where(_search_condition(shape.search, shape.search_emails, param))
    if shape.kind is not None:
        query = query.where(_kind_condition(shape.kind))
    if shape.order is None:
        # Exact matches first (username, then name), then by name and id.
        term = param("u_term")
        priority = case((_U.username_lower == term, 1), (func.lower(_U.name) == term, 2), else_=3)
        return query.order_by(priority.asc(), _U.name.asc(), _U.id.asc())
    order_by, sort = shape.order
    column = _U[order_by]
    primary = column.asc() if sort == "asc" else column.desc()
    if order_by == "id":
        return query.order_by(primary)
    # Ties broken by id in the same direction, as GitLab does.
    return query.order_by(primary, _U.id.asc() if sort == "asc" else _U.id.desc())


def _kind_condition(kind: str) -> ColumnElement[bool]:
    if kind not in {k.value for k in UserKind}:
        raise BadParameter("kind does not have a valid value")
    return _U.user_type.in_(sorted(int(t) for t in KIND_TYPES[UserKind(kind)]))


def users_by_kind(ctx: Ctx, filters: UserFilters) -> dict[str, int]:
    """How many users ``users_query`` finds with ``filters`` (its ``kind`` aside), in all
    (``"all"``) and per UserKind value: the admin area's tab counts. One query."""
    listed = users_query(ctx, replace(filters, kind=None, order_by=None, sort=None)).order_by(None).subquery()
    per_type: dict[int, int] = dict(
        ctx.db.execute(select(listed.c.user_type, func.count()).group_by(listed.c.user_type)).all()
    )
    counts = {"all": sum(per_type.values())}
    for kind, types in KIND_TYPES.items():
        counts[kind.value] = sum(n for user_type, n in per_type.items() if UserType(user_type) in types)
    return counts


def find_user_by_username(ctx: Ctx, username: str) -> User:
    """The user called ``username`` (any case), as ``ctx.actor`` may see them (non-admins never
    find blocked or banned users). Raises NotFound("User")."""
    if not username or len(username) > 255:
        raise NotFound("User")
    query = select(User).where(User.username_lower == username.lower())
    if not ctx.actor.is_admin:
        query = query.where(User.state.not_in(HIDDEN_STATES))
    user = ctx.db.scalars(query).first()
    if user is None:
        raise NotFound("User")
    return user


class AdminAction(StrEnum):
    BLOCK = "block"
    UNBLOCK = "unblock"
    DEACTIVATE = "deactivate"
    ACTIVATE = "activate"
    UNLOCK = "unlock"
    DELETE = "delete"
    DELETE_WITH_CONTRIBUTIONS = "delete_with_contributions"


def admin_actions(ctx: Ctx, user: User) -> tuple[AdminAction, ...]:
    """The actions an admin is offered on ``user`` in its current state, in the order shown.

    None for non-admins, and none on internal users (nobody can change them). Blocked users can be
    unblocked, others blocked (not oneself); active users can be deactivated and deactivated ones
    activated; a locked account can be unlocked; anyone else can be deleted, keeping or removing
    what they authored. The use cases still decide when asked, and may refuse (a user active in
    the last 90 days cannot be deactivated; the sole Owner of a group is not deleted softly).
    """
    if not ctx.actor.is_admin or user.is_internal:
        return ()
    actions: list[AdminAction] = []
    if user.is_blocked:
        actions.append(AdminAction.UNBLOCK)
    elif user.id != ctx.actor.user_id:
        actions.append(AdminAction.BLOCK)
    if user.state == UserState.ACTIVE:
        actions.append(AdminAction.DEACTIVATE)
    elif user.state == UserState.DEACTIVATED:
        actions.append(AdminAction.ACTIVATE)
    if is_locked(user, instance_settings(ctx), ctx.now()):
        actions.append(AdminAction.UNLOCK)
    actions += [AdminAction.DELETE, AdminAction.DELETE_WITH_CONTRIBUTIONS]
    return tuple(actions)
