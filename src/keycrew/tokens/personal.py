"""Personal and impersonation tokens: who may issue, see, revoke and rotate them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, select

from keycrew.context import Ctx
from keycrew.errors import BadParameter, Forbidden, NotFound, Unauthenticated
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.identity.users import user_entity
from keycrew.tokens import lifecycle
from keycrew.tokens.issuing import IssuedToken, check_expiry, check_scopes, issue_audited
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.scopes import ADMIN_SCOPES, ALL_SCOPES


def create_personal_access_token(
    ctx: Ctx,
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.date | None = None,
    description: str | None = None,
    value: str | None = None,
) -> IssuedToken:
    """An admin (or the CLI acting as the system) issues a personal access token for ``user``.

    Raises Forbidden for non-admins, blocked or internal targets; Invalid for bad scopes or expiry.
    """
    actor = ctx.actor
    if actor.via != "system" and not actor.is_admin:
        raise Forbidden("403 Forbidden")
    if user.is_internal:
        raise Forbidden("403 Forbidden - This action cannot be performed by internal users")
    if user.is_blocked:
        raise Forbidden("403 Forbidden - The user is blocked")
    scopes = check_scopes(scopes, ALL_SCOPES)
    if not user.admin and any(s in ADMIN_SCOPES for s in scopes):
        raise BadParameter("scopes does not have a valid value")
    if user.type is UserType.SERVICE_ACCOUNT:
        # Service-account tokens may live forever when the instance allows it.
        from keycrew.identity.service_accounts import token_expiry

        expires_at = token_expiry(ctx, expires_at)
    else:
        expires_at = check_expiry(ctx, expires_at)
    return issue_audited(
        ctx,
        user,
        user_entity(user),
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        description=description,
        value=value,
    )


# -- finding, listing, revoking and rotating personal tokens -------------------------------------


def _is_bot_actor(ctx: Ctx) -> bool:
    user = ctx.actor.user
    return user is not None and user.type is UserType.PROJECT_BOT


def personal_tokens_query(ctx: Ctx, *, user_id: int | None) -> Select[Any]:
    """Tokens the actor may list: admins every token (or ``user_id``'s); others their own.

    Raises Unauthenticated when a non-admin asks for another user's tokens (GitLab answers 401),
    NotFound when an admin names an unknown user.
    """
    actor = ctx.actor
    assert actor.user is not None
    query = select(PersonalAccessToken)
    if actor.is_admin:
        if user_id is not None:
            if ctx.db.get(User, user_id) is None:
                raise NotFound("User")
            query = query.where(PersonalAccessToken.user_id == user_id)
        return query
    if user_id is not None and user_id != actor.user.id:
        raise Unauthenticated("401 Unauthorized")
    return query.where(
        PersonalAccessToken.user_id == actor.user.id, PersonalAccessToken.impersonation.is_(False)
    )


def find_personal_token(ctx: Ctx, token_id: int) -> PersonalAccessToken:
    """A token the actor owns (or any, for admins). Missing or not the actor's: admins get
    NotFound, others Unauthenticated, so that ids cannot be probed."""
    actor = ctx.actor
    assert actor.user is not None
    token = ctx.db.get(PersonalAccessToken, token_id)
    if token is None or (not actor.is_admin and token.user_id != actor.user.id):
        if actor.is_admin:
            raise NotFound("Personal Access Token")
        raise Unauthenticated("401 Unauthorized")
    return token


def current_token(ctx: Ctx) -> PersonalAccessToken:
    if ctx.actor.token_id is None:
        raise Unauthenticated("401 Unauthorized")
    token = ctx.db.get(PersonalAccessToken, ctx.actor.token_id)
    if token is None:
        raise Unauthenticated("401 Unauthorized")
    return token


revoke_personal_token = lifecycle.revoke_or_refuse
rotate_personal_token = lifecycle.rotate


SELF_SERVICE_SCOPES: tuple[str, ...] = ("k8s_proxy", "self_rotate")


def create_own_personal_access_token(
    ctx: Ctx,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.date | None = None,
    description: str | None = None,
) -> IssuedToken:
    """POST /user/personal_access_tokens: users issue themselves tokens of limited scopes only."""
    user = ctx.actor.user
    if user is None:
        raise Unauthenticated("401 Unauthorized")
    if _is_bot_actor(ctx):
        raise Forbidden("403 Forbidden")
    scopes = check_scopes(scopes, SELF_SERVICE_SCOPES)
    expires_at = check_expiry(ctx, expires_at)
    return issue_audited(
        ctx, user, user_entity(user), name=name, scopes=scopes, expires_at=expires_at, description=description
    )


def create_impersonation_token(
    ctx: Ctx, user: User, *, name: str, scopes: list[str], expires_at: dt.date | None = None
) -> IssuedToken:
    """An admin issues a token that acts as ``user`` (impersonation=True)."""
    if not ctx.actor.is_admin:
        raise Forbidden("403 Forbidden")
    if user.is_internal:
        raise Forbidden("403 Forbidden - This action cannot be performed by internal users")
    if user.is_blocked:
        raise Forbidden("403 Forbidden - The user is blocked")
    scopes = check_scopes(scopes, ALL_SCOPES)
    if not user.admin and any(s in ADMIN_SCOPES for s in scopes):
        raise BadParameter("scopes does not have a valid value")
    expires_at = check_expiry(ctx, expires_at)
    return issue_audited(
        ctx, user, user_entity(user), name=name, scopes=scopes, expires_at=expires_at, impersonation=True
    )
