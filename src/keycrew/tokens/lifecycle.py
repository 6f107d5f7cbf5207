"""The token lifecycle: finding, listing, revoking and rotating, and reuse detection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Boolean, CursorResult, Select, bindparam, or_, select, update

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.db.listings import Listing, listing
from keycrew.db.text import contains_pattern, lower_like
from keycrew.errors import Invalid
from keycrew.identity.models import User
from keycrew.identity.queries import lock_user
from keycrew.tokens.expiry import rotation_expiry
from keycrew.tokens.issuing import IssuedToken, issue_token
from keycrew.tokens.models import PersonalAccessToken

# The table's columns rather than the ORM's attributes: the same SQL, built for less, for ORM
# listings and listings read as column values (``keycrew.tokens.views.token_rows``) alike.
_T = PersonalAccessToken.__table__.c
SORTS: dict[str, Any] = {
    "created_asc": _T.created_at.asc(),
    "created_desc": _T.created_at.desc(),
    "expires_asc": _T.expires_at.asc(),
    "expires_desc": _T.expires_at.desc(),
    "last_used_asc": _T.last_used_at.asc(),
    "last_used_desc": _T.last_used_at.desc(),
    "name_asc": _T.name.asc(),
    "name_desc": _T.name.desc(),
}
_NEWEST_FIRST = _T.id.desc()
_NOT_REVOKED = _T.revoked.is_(False)


@dataclass(frozen=True)
class TokenFilters:
    """GitLab's token list filters (personal and resource tokens share them)."""

    state: str | None = None  # "active" | "inactive"
    revoked: bool | None = None
    search: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    last_used_after: dt.datetime | None = None
    last_used_before: dt.datetime | None = None
    expires_after: dt.date | None = None
    expires_before: dt.date | None = None
    sort: str | None = None


# Each filter as a condition on a named parameter, so that a listing is built once per shape
# (which filters are present, the order: ``filter_shape``) and takes ``filter_values``.
Param = Callable[[str], Any]
_CONDITIONS: dict[str, Callable[[Param], Any]] = {
    "active": lambda p: _live(p("f_today")),
    "inactive": lambda p: ~_live(p("f_today")),
    "revoked": lambda p: _T.revoked == p("f_revoked"),
    "search": lambda p: lower_like(_T.name, p("f_pattern")),
    "created_after": lambda p: _T.created_at >= p("f_created_after"),
    "created_before": lambda p: _T.created_at <= p("f_created_before"),
    "last_used_after": lambda p: _T.last_used_at >= p("f_last_used_after"),
    "last_used_before": lambda p: _T.last_used_at <= p("f_last_used_before"),
    "expires_after": lambda p: _T.expires_at >= p("f_expires_after"),
    "expires_before": lambda p: _T.expires_at <= p("f_expires_before"),
}


def _live(today: Any) -> Any:
    return _NOT_REVOKED & or_(_T.expires_at.is_(None), _T.expires_at > today)


_VALUED = (
    "created_after",
    "created_before",
    "last_used_after",
    "last_used_before",
    "expires_after",
    "expires_before",
)


def filter_shape(filters: TokenFilters) -> tuple[str, ...]:
    """Which of ``filters`` are present, and the order: what decides a listing's SQL."""
    present: list[str] = []
    if filters.state in ("active", "inactive"):
        present.append(filters.state)
    if filters.revoked is not None:
        present.append("revoked")
    if filters.search:
        present.append("search")
    present += [name for name in _VALUED if getattr(filters, name)]
    return (*present, f"sort:{filters.sort if filters.sort in SORTS else ''}")


def filter_values(filters: TokenFilters, today: dt.date) -> dict[str, Any]:
    """The parameters of ``filter_shape(filters)``'s conditions."""
    values: dict[str, Any] = {"f_today": today} if filters.state in ("active", "inactive") else {}
    if filters.revoked is not None:
        values["f_revoked"] = filters.revoked
    if filters.search:
        values["f_pattern"] = contains_pattern(filters.search)
    for name in _VALUED:
        value = getattr(filters, name)
        if value:
            values[f"f_{name}"] = value
    return values


def shaped(
    query: Select[Any], shape: tuple[str, ...], values: Mapping[str, Any] | None = None
) -> Select[Any]:
    """``query`` (a select of PersonalAccessToken rows or of its columns) with the conditions and
    order of ``shape``: their values left as parameters (a statement built once per shape), or
    bound from ``values``."""
    *names, sort = shape
    if values is None:

        def param(name: str) -> Any:
            return bindparam(name, type_=Boolean()) if name == "f_revoked" else bindparam(name)
    else:

        def param(name: str) -> Any:
            return bindparam(name, values[name])

    if names:
        query = query.where(*(_CONDITIONS[name](param) for name in names))
    order = SORTS.get(sort.removeprefix("sort:"))
    return query.order_by(order, _NEWEST_FIRST) if order is not None else query.order_by(_NEWEST_FIRST)


def token_listing(
    name: Hashable,
    base: Callable[[], Select[Any]],
    filters: TokenFilters,
    today: dt.date,
    values: Mapping[str, Any],
) -> Listing:
    """A token listing built once per shape (``keycrew.db.listings``): ``base()`` selects the
    listed tokens' ``TOKEN_COLUMNS`` with ``values`` as its parameters; ``filters`` and their
    order come on top. ``name`` tells this listing's base from others'."""
    shape = filter_shape(filters)
    return listing(
        (name, shape), lambda: (shaped(base(), shape), None), {**filter_values(filters, today), **values}
    )


def filtered(query: Select[Any], filters: TokenFilters, today: dt.date) -> Select[Any]:
    """Apply ``filters`` to a select of PersonalAccessToken rows (or of its columns)."""
    return shaped(query, filter_shape(filters), filter_values(filters, today))


RECENTLY_INACTIVE_DAYS = 30


def recently_inactive(query: Select[Any], today: dt.date, days: int = RECENTLY_INACTIVE_DAYS) -> Select[Any]:
    """The tokens of ``query`` that stopped being active in the last ``days``: revoked then, or
    expired then (newest first). Older inactive tokens are kept but no longer shown."""
    pat = PersonalAccessToken
    since = today - dt.timedelta(days=days)
    revoked = pat.revoked.is_(True) & (pat.revoked_at >= dt.datetime.combine(since, dt.time(), dt.UTC))
    expired = pat.revoked.is_(False) & (pat.expires_at <= today) & (pat.expires_at > since)
    return query.where(revoked | expired).order_by(pat.id.desc())


def owner_of(ctx: Ctx, token: PersonalAccessToken) -> User:
    user = ctx.db.get(User, token.user_id)
    assert user is not None  # tokens are deleted with their user (FK cascade)
    return user


def _entity(user: User) -> Entity:
    return Entity("User", user.id, user.username)


def revoke(ctx: Ctx, token: PersonalAccessToken, *, reason: str | None = None) -> bool:
    """Revoke ``token`` (no permission checks; callers decide who may). False if already revoked."""
    if token.revoked:
        return False
    now = ctx.now()
    token.revoked = True
    token.revoked_at = now
    token.updated_at = now
    user = owner_of(ctx, token)
    record(
        ctx,
        Event.TOKEN_REVOKED,
        _entity(user),
        target=Target("PersonalAccessToken", token.id, token.name),
        reason=reason,
    )
    ctx.db.flush()
    return True


def revoke_or_refuse(ctx: Ctx, token: PersonalAccessToken) -> None:
    """Revoke ``token``; a token revoked already is refused with Invalid (GitLab's bare 400)."""
    if not revoke(ctx, token):
        raise Invalid("")


def rotate(ctx: Ctx, token: PersonalAccessToken, *, expires_at: dt.date | None = None) -> IssuedToken:
    """Revoke ``token`` and issue its successor (same owner, name, description, scopes), one transaction.

    The successor expires on ``expires_at`` or, by default, in 7 days when expiry is required.
    Raises Invalid("Token already revoked") and Invalid for a bad expiry. Concurrent rotations of one
    token: the revoking UPDATE is conditional, so exactly one of them wins. The owner's row is
    locked first, the order of every use case that changes a user's tokens (and of the usage
    writer): taking the token's row first would deadlock with them on PostgreSQL.
    """
    if token.revoked:
        raise Invalid("Token already revoked")
    new_expiry = rotation_expiry(ctx, expires_at, had_expiry=token.expires_at is not None)
    user = lock_user(ctx, owner_of(ctx, token))
    now = ctx.now()
    result = ctx.db.execute(
        update(PersonalAccessToken)
        .where(PersonalAccessToken.id == token.id, PersonalAccessToken.revoked.is_(False))
        .values(revoked=True, revoked_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], result).rowcount != 1:
        raise Invalid("Token already revoked")
    ctx.db.refresh(token)
    issued = issue_token(
        ctx,
        user,
        name=token.name,
        scopes=list(token.scopes),
        expires_at=new_expiry,
        description=token.description,
        impersonation=token.impersonation,
        previous_id=token.id,
    )
    record(
        ctx,
        Event.TOKEN_ROTATED,
        _entity(user),
        target=Target("PersonalAccessToken", issued.token.id, token.name),
        previous_token_id=token.id,
        expires_at=None if new_expiry is None else new_expiry.isoformat(),
    )
    return issued


def descendants(ctx: Ctx, token: PersonalAccessToken) -> list[PersonalAccessToken]:
    """Every token rotated, directly or not, from ``token``."""
    found: list[PersonalAccessToken] = []
    frontier = [token.id]
    while frontier:
        children = list(
            ctx.db.scalars(
                select(PersonalAccessToken).where(
                    PersonalAccessToken.previous_personal_access_token_id.in_(frontier)
                )
            ).all()
        )
        found.extend(children)
        frontier = [c.id for c in children]
    return found


# How long after its rotation a token presented to a rotate endpoint again is taken for the loser
# of a concurrent rotation (refused, nothing else) rather than a leaked value (its family revoked).
ROTATION_GRACE = dt.timedelta(seconds=30)


def rotated_moments_ago(ctx: Ctx, token: PersonalAccessToken) -> bool:
    """Whether ``token`` was rotated less than ``ROTATION_GRACE`` ago and its one successor is
    still live and not rotated further: what a client racing its own rotation sees (the requests
    that lost the race to the winning rotation present the token it just revoked)."""
    if token.revoked_at is None or ctx.now() - token.revoked_at > ROTATION_GRACE:
        return False
    children = list(
        ctx.db.scalars(
            select(PersonalAccessToken).where(
                PersonalAccessToken.previous_personal_access_token_id == token.id
            )
        ).all()
    )
    return len(children) == 1 and not children[0].revoked


def revoke_family(ctx: Ctx, token: PersonalAccessToken) -> list[int]:
    """Reuse detection: a revoked token came back to a rotate endpoint; revoke its live descendants.

    Except within ``ROTATION_GRACE`` of its rotation while its successor is the live end of the
    family (``rotated_moments_ago``): the losers of a concurrent rotation are refused (401) and
    the winner keeps its new token. A value replayed later, or after the successor was rotated
    or revoked in turn, still takes the family down, as GitLab's reuse detection does.

    The owner's row is locked first (the lock order of docs/development.md), so that concurrent
    detections and rotations of one family queue up. Returns the ids revoked. Attributed to the
    token's owner, with the caller's IP in the event.
    """
    if rotated_moments_ago(ctx, token):
        return []  # the common case of a race's losers: no lock to wait for
    lock_user(ctx, owner_of(ctx, token))
    ctx.db.refresh(token)
    if rotated_moments_ago(ctx, token):
        return []
    revoked_ids: list[int] = []
    for child in descendants(ctx, token):
        if not child.revoked:
            revoke(ctx, child, reason="revoked token reused for rotation")
            revoked_ids.append(child.id)
    return revoked_ids
