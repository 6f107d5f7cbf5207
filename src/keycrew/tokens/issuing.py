"""Issuing tokens: shape checks, the row with its digest, and the value returned once."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.errors import BadParameter, Invalid, MissingParameter
from keycrew.identity.models import User
from keycrew.tokens import secrets
from keycrew.tokens.models import PersonalAccessToken

DESCRIPTION_MAX = 255


@dataclass(frozen=True)
class IssuedToken:
    """A token row and its value: the only place the value ever exists."""

    value: str
    token: PersonalAccessToken

    def __repr__(self) -> str:  # never print the value by accident
        return f"IssuedToken(token={self.token.id})"


def check_scopes(scopes: list[str], allowed: tuple[str, ...]) -> list[str]:
    if not scopes:
        raise MissingParameter("scopes is missing")
    unknown = [s for s in scopes if s not in allowed]
    if unknown:
        raise BadParameter("scopes does not have a valid value")
    # Keep order, drop duplicates.
    return list(dict.fromkeys(scopes))


def issue_token(
    ctx: Ctx,
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.date | None,
    description: str | None = None,
    impersonation: bool = False,
    previous_id: int | None = None,
    value: str | None = None,
) -> IssuedToken:
    """Create the token row (no checks beyond shape); callers enforce who may do this."""
    if not name or not name.strip():
        raise MissingParameter("name is missing")
    if len(name) > 255:
        raise Invalid.field("name", "is too long (maximum is 255 characters)")
    if description is not None and len(description) > DESCRIPTION_MAX:
        raise Invalid.field("description", f"is too long (maximum is {DESCRIPTION_MAX} characters)")
    value = value or secrets.generate(secrets.PAT_PREFIX, ctx.instance.token_prefix)
    now = ctx.now()
    token = PersonalAccessToken(
        user_id=user.id,
        name=name,
        description=description,
        token_digest=secrets.digest(ctx.instance.secret_key, value),
        scopes=scopes,
        impersonation=impersonation,
        revoked=False,
        expires_at=expires_at,
        last_used_ips=[],
        previous_personal_access_token_id=previous_id,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(token)
    ctx.db.flush()
    return IssuedToken(value, token)


def issue_audited(
    ctx: Ctx,
    user: User,
    entity: Entity,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.date | None,
    description: str | None = None,
    impersonation: bool = False,
    value: str | None = None,
    **details: Any,
) -> IssuedToken:
    """issue_token, and its token.created audit event on ``entity`` in the same transaction."""
    issued = issue_token(
        ctx,
        user,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        description=description,
        impersonation=impersonation,
        value=value,
    )
    record(
        ctx,
        Event.TOKEN_CREATED,
        entity,
        target=Target("PersonalAccessToken", issued.token.id, name),
        scopes=scopes,
        expires_at=None if expires_at is None else expires_at.isoformat(),
        impersonation=impersonation or None,
        **details,
    )
    return issued
