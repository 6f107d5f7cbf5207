"""Personal and impersonation tokens: who may issue, see, revoke and rotate them."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, select

from keycrew.context import Ctx
from keycrew.db.base import MAX_ID, record_id
from keycrew.db.listings import Listing
from keycrew.db.reads import prepared
from keycrew.errors import Forbidden, Invalid, NotFound, Unauthenticated
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.identity.users import user_entity
from keycrew.tokens import lifecycle
from keycrew.tokens.expiry import check_expiry, expiry_policy, service_account_token_expiry
from keycrew.tokens.issuing import IssuedToken, check_scopes, issue_audited
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.scopes import grantable_scopes
from keycrew.tokens.views import TOKEN_COLUMNS, PersonalAccessTokenView, read_token

# A token row or its view: the rules of who may see a token are the same for both.
Token = TypeVar("Token", PersonalAccessToken, PersonalAccessTokenView)

_USER_ID = prepared(select(User.__table__.c.id).where(User.__table__.c.id == bindparam("id")))
# Listings are built of the table's columns: the same SQL as the ORM's attributes give, for less.
_T = PersonalAccessToken.__table__.c
_NOT_IMPERSONATION = _T.impersonation.is_(False)


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
        raise Forbidden()
    if user.is_internal:
        raise Forbidden("This action cannot be performed by internal users")
    if user.is_blocked:
        raise Forbidden("The user is blocked")
    return issue_personal_token(
        ctx, user, name=name, scopes=scopes, expires_at=expires_at, description=description, value=value
    )


def issue_personal_token(
    ctx: Ctx,
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.date | None,
    description: str | None,
    value: str | None = None,
    **details: Any,
) -> IssuedToken:
    """Issue a personal access token once the caller has decided who may: any personal-token scope,
    the expiry of the owner's kind (a service account's may live forever when the instance allows
    it), its token.created event on the owner. Admin-only scopes follow ``grantable_scopes``."""
    scopes = check_scopes(
        scopes, grantable_scopes(creator_admin=_creator_is_admin(ctx), owner_admin=user.admin)
    )
    if user.type is UserType.SERVICE_ACCOUNT:
        expiry = service_account_token_expiry(ctx, expires_at)
    else:
        expiry = check_expiry(ctx, expires_at)
    return issue_audited(
        ctx,
        user,
        user_entity(user),
        name=name,
        scopes=scopes,
        expires_at=expiry,
        description=description,
        value=value,
        **details,
    )


# -- finding, listing, revoking and rotating personal tokens -------------------------------------


def _is_bot_actor(ctx: Ctx) -> bool:
    user = ctx.actor.facts
    return user is not None and user.user_type == UserType.PROJECT_BOT


def personal_token_listing(ctx: Ctx, *, user_id: int | None, filters: lifecycle.TokenFilters) -> Listing:
    """Tokens the actor may list, with ``filters``: admins every token (or ``user_id``'s); others
    their own (impersonation tokens are not theirs to list). Read as rows for ``token_view``.

    Raises Unauthenticated when a non-admin asks for another user's tokens (GitLab answers 401),
    NotFound when an admin names an unknown user.
    """
    actor = ctx.actor
    assert actor.facts is not None
    if actor.is_admin:
        if user_id is not None and (
            not 0 < user_id <= MAX_ID or ctx.reads.scalar(_USER_ID, {"id": user_id}) is None
        ):
            raise NotFound("User")
        scope, owner_id = ("all", None) if user_id is None else ("user", user_id)
    else:
        if user_id is not None and user_id != actor.facts.id:
            raise Unauthenticated()
        scope, owner_id = "own", actor.facts.id
    values = {} if owner_id is None else {"owner_id": owner_id}
    return lifecycle.token_listing(
        ("personal_tokens", scope), lambda: _personal_tokens(scope), filters, ctx.today(), values
    )


def owned_token_listing(ctx: Ctx, owner_id: int, filters: lifecycle.TokenFilters) -> Listing:
    """A user's own personal access tokens (not impersonation tokens), with ``filters``: what
    they list themselves, and a service account's owner lists of it."""
    return lifecycle.token_listing(
        ("personal_tokens", "own"),
        lambda: _personal_tokens("own"),
        filters,
        ctx.today(),
        {"owner_id": owner_id},
    )


def _personal_tokens(scope: str) -> Select[Any]:
    query = select(*TOKEN_COLUMNS)
    if scope != "all":
        query = query.where(_T.user_id == bindparam("owner_id"))
    return query.where(_NOT_IMPERSONATION) if scope == "own" else query


def find_personal_token(ctx: Ctx, token_id: int) -> PersonalAccessToken:
    """A personal token the actor owns (or any, for admins). Missing or not the actor's: admins
    get NotFound, others Unauthenticated, so that ids cannot be probed. Impersonation tokens are
    not personal tokens (GitLab's finder excludes them): NotFound for everyone, their user
    included; admins manage them under /users/:id/impersonation_tokens."""
    return _visible(ctx, ctx.db.get(PersonalAccessToken, token_id) if 0 < token_id <= MAX_ID else None)


def read_personal_token(ctx: Ctx, token_id: int) -> PersonalAccessTokenView:
    """``find_personal_token`` for a read: the token as column values (same errors)."""
    return _visible(ctx, read_token(ctx.reads, token_id) if 0 < token_id <= MAX_ID else None)


def _visible(ctx: Ctx, token: Token | None) -> Token:
    actor = ctx.actor
    assert actor.facts is not None
    if token is not None and token.impersonation:
        raise NotFound("Personal Access Token")
    if token is None or (not actor.is_admin and token.user_id != actor.facts.id):
        if actor.is_admin:
            raise NotFound("Personal Access Token")
        raise Unauthenticated()
    return token


def current_token(ctx: Ctx) -> PersonalAccessToken:
    if ctx.actor.token_id is None:
        raise Unauthenticated()
    token = ctx.db.get(PersonalAccessToken, ctx.actor.token_id)
    if token is None:
        raise Unauthenticated()
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
        raise Unauthenticated()
    if _is_bot_actor(ctx):
        raise Forbidden()
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
        raise Forbidden()
    if user.is_internal:
        raise Forbidden("This action cannot be performed by internal users")
    if user.is_blocked:
        raise Forbidden("The user is blocked")
    scopes = check_scopes(scopes, grantable_scopes(creator_admin=True, owner_admin=user.admin))
    expires_at = check_expiry(ctx, expires_at)
    return issue_audited(
        ctx, user, user_entity(user), name=name, scopes=scopes, expires_at=expires_at, impersonation=True
    )


# -- the signed-in person's own tokens (the web UI's Personal access tokens page) ----------------


def impersonated_user(ctx: Ctx, user_id: int) -> User:
    """The user whose impersonation tokens an admin manages. Raises Forbidden for non-admins,
    NotFound("User") for an unknown id."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    user = ctx.db.get(User, record_id(user_id))
    if user is None:
        raise NotFound("User")
    return user


def impersonated_user_id(ctx: Ctx, user_id: int) -> int:
    """``impersonated_user`` for a read: the id of the user, read without the ORM (same errors)."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    found: int | None = ctx.reads.scalar(_USER_ID, {"id": record_id(user_id)})
    if found is None:
        raise NotFound("User")
    return found


def impersonation_token_listing(ctx: Ctx, user_id: int, state: str | None) -> Listing:
    """``user_id``'s impersonation tokens, all of them or those of ``state`` (active, inactive)."""
    return lifecycle.token_listing(
        "impersonation_tokens",
        lambda: select(*TOKEN_COLUMNS).where(_T.user_id == bindparam("owner_id"), _T.impersonation.is_(True)),
        lifecycle.TokenFilters(state=state),
        ctx.today(),
        {"owner_id": user_id},
    )


def find_impersonation_token(ctx: Ctx, user: User, token_id: int) -> PersonalAccessToken:
    """One of ``user``'s impersonation tokens; NotFound("Impersonation Token") otherwise."""
    return _impersonation(ctx.db.get(PersonalAccessToken, record_id(token_id)), user.id)


def read_impersonation_token(ctx: Ctx, user_id: int, token_id: int) -> PersonalAccessTokenView:
    """``find_impersonation_token`` for a read: the token as column values (same errors)."""
    return _impersonation(read_token(ctx.reads, record_id(token_id)), user_id)


def _impersonation(token: Token | None, user_id: int) -> Token:
    if token is None or token.user_id != user_id or not token.impersonation:
        raise NotFound("Impersonation Token")
    return token


def own_token_scopes(user: User) -> tuple[str, ...]:
    """The scopes a signed-in person may give a token of their own: every non-admin scope, and
    the admin ones for administrators (GitLab's UI; the API's self-service create is narrower)."""
    return grantable_scopes(creator_admin=user.admin, owner_admin=user.admin)


def _creator_is_admin(ctx: Ctx) -> bool:
    """Whether the actor may give admin-only scopes: an administrator, or the system (the CLI)."""
    return ctx.actor.via == "system" or ctx.actor.is_admin


def _signed_in_person(ctx: Ctx) -> User:
    """The person acting through a signed-in session (no token), who may hold personal tokens.

    Raises Unauthenticated for anonymous visitors; Forbidden for an actor using a token, for bots,
    service accounts, internal and blocked users (none of them may sign in to the UI anyway).
    """
    user = ctx.actor.user
    if user is None:
        raise Unauthenticated()
    if ctx.actor.token_id is not None:
        raise Forbidden("Tokens can only be managed this way from a signed-in session")
    if user.is_internal:
        raise Forbidden("This action cannot be performed by internal users")
    if user.is_bot:
        raise Forbidden("Bots and service accounts cannot create tokens for themselves")
    if user.is_blocked:
        raise Forbidden("The user is blocked")
    return user


def create_signed_in_personal_access_token(
    ctx: Ctx,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.date | None,
    description: str | None = None,
) -> IssuedToken:
    """A signed-in person issues themselves a personal access token (the UI's create form).

    Unlike POST /user/personal_access_tokens, any scope of ``own_token_scopes`` may be chosen.
    ``expires_at`` None means "never", allowed only when the instance does not require expiry.
    Raises Forbidden for token-authenticated actors, bots, service accounts, internal and blocked
    users; MissingParameter/BadParameter for absent or unavailable scopes; Invalid for a bad name,
    description, or an expiry that is blank (when required), not after today, or past the maximum.
    """
    user = _signed_in_person(ctx)
    scopes = check_scopes(scopes, own_token_scopes(user))
    if expires_at is None and expiry_policy(ctx).required:
        raise Invalid.field("expires_at", "can't be blank")
    expires_at = check_expiry(ctx, expires_at)
    return issue_audited(
        ctx, user, user_entity(user), name=name, scopes=scopes, expires_at=expires_at, description=description
    )


def own_tokens_query(ctx: Ctx) -> Select[Any]:
    """The signed-in person's own personal access tokens (never impersonation tokens, and never
    anyone else's, admins included), newest first."""
    user = _signed_in_person(ctx)
    return (
        select(PersonalAccessToken)
        .where(PersonalAccessToken.user_id == user.id, PersonalAccessToken.impersonation.is_(False))
        .order_by(PersonalAccessToken.id.desc())
    )


def find_own_token(ctx: Ctx, token_id: int) -> PersonalAccessToken:
    """One of the signed-in person's own tokens; NotFound for any other id (admins included)."""
    user = _signed_in_person(ctx)
    token = ctx.db.get(PersonalAccessToken, token_id) if 0 < token_id <= MAX_ID else None
    if token is None or token.user_id != user.id or token.impersonation:
        raise NotFound("Personal Access Token")
    return token


def revoke_own_token(ctx: Ctx, token_id: int) -> PersonalAccessToken:
    """The signed-in person revokes one of their tokens; returns it.

    Raises NotFound when it is not theirs, Invalid when it was revoked already.
    """
    token = find_own_token(ctx, token_id)
    if not lifecycle.revoke(ctx, token):
        raise Invalid("This token has already been revoked")
    return token


def rotate_own_token(ctx: Ctx, token_id: int, *, expires_at: dt.date | None = None) -> IssuedToken:
    """The signed-in person rotates one of their tokens: it is revoked and its successor (same
    name, description, scopes; expiring on ``expires_at``, else the API's default) is returned
    with its value, once.

    Raises NotFound when it is not theirs, Invalid when it is no longer active or for a bad expiry.
    """
    token = find_own_token(ctx, token_id)
    if token.is_expired(ctx.today()):
        raise Invalid("This token has expired and can no longer be rotated")
    return lifecycle.rotate(ctx, token, expires_at=expires_at)
