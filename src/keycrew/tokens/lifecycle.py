"""The token lifecycle: finding, listing, revoking and rotating, and reuse detection."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Select, or_, select, update

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
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


def filtered(query: Select[Any], filters: TokenFilters, today: dt.date) -> Select[Any]:
    """Apply ``filters`` to a select of PersonalAccessToken rows (or of its columns)."""
    pat = _T
    if filters.state in ("active", "inactive"):
        live = _NOT_REVOKED & or_(pat.expires_at.is_(None), pat.expires_at > today)
        query = query.where(live if filters.state == "active" else ~live)
    if filters.revoked is not None:
        query = query.where(pat.revoked.is_(filters.revoked))
    if filters.search:
        needle = filters.search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(pat.name.ilike(f"%{needle}%", escape="\\"))
    if filters.created_after:
        query = query.where(pat.created_at >= filters.created_after)
    if filters.created_before:
        query = query.where(pat.created_at <= filters.created_before)
    if filters.last_used_after:
        query = query.where(pat.last_used_at >= filters.last_used_after)
    if filters.last_used_before:
        query = query.where(pat.last_used_at <= filters.last_used_before)
    if filters.expires_after:
        query = query.where(pat.expires_at >= filters.expires_after)
    if filters.expires_before:
        query = query.where(pat.expires_at <= filters.expires_before)
    order = SORTS.get(filters.sort or "")
    return query.order_by(order, _NEWEST_FIRST) if order is not None else query.order_by(_NEWEST_FIRST)


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


def revoke_family(ctx: Ctx, token: PersonalAccessToken) -> list[int]:
    """Reuse detection: a revoked token came back to a rotate endpoint; revoke its live descendants.

    Returns the ids revoked. Attributed to the token's owner, with the caller's IP in the event.
    """
    revoked_ids: list[int] = []
    for child in descendants(ctx, token):
        if not child.revoked:
            revoke(ctx, child, reason="revoked token reused for rotation")
            revoked_ids.append(child.id)
    return revoked_ids
