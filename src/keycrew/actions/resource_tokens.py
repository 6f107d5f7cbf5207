"""Project and group access tokens: a bot user, its one membership, and its token.

Creating one makes, in the caller's single transaction, a project_bot user named after the token,
its membership in exactly that project or group, and a personal access token for it; any failure
rolls all three back, so no orphan bot is ever left.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import Select, bindparam, select

from keycrew.access.groups import chain_ids, lock_namespaces
from keycrew.access.levels import AccessLevel
from keycrew.access.members import note_project_joined
from keycrew.access.models import Member
from keycrew.access.projects import lock_project
from keycrew.access.resources import Resource
from keycrew.actions.deletion import delete_bot
from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.db.listings import Listing
from keycrew.db.reads import prepared
from keycrew.errors import BadParameter, Invalid, NotFound, Unauthenticated
from keycrew.identity.bots import bot_email, bot_username
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.identity.users import create_user
from keycrew.instance.settings import instance_settings
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import ProjectView
from keycrew.tokens import lifecycle
from keycrew.tokens.expiry import check_expiry
from keycrew.tokens.issuing import IssuedToken, check_scopes, issue_audited
from keycrew.tokens.lifecycle import TokenFilters
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.scopes import RESOURCE_BOT_SCOPES
from keycrew.tokens.views import TOKEN_COLUMNS, PersonalAccessTokenView, read_bot_token

TOKEN_LEVELS = (
    AccessLevel.GUEST,
    AccessLevel.PLANNER,
    AccessLevel.REPORTER,
    AccessLevel.DEVELOPER,
    AccessLevel.MAINTAINER,
    AccessLevel.OWNER,
)
DEFAULT_LEVEL = AccessLevel.MAINTAINER

# A token row or its view: who may see a resource's token is the same for both.
Token = TypeVar("Token", PersonalAccessToken, PersonalAccessTokenView)

_M = Member.__table__.c
_T = PersonalAccessToken.__table__.c
_U = User.__table__.c
_PROJECT_BOT = _U.user_type == int(UserType.PROJECT_BOT)
_NOT_IMPERSONATION = _T.impersonation.is_(False)
_IN_RESOURCE = (_M.source_type == bindparam("source_type"), _M.source_id == bindparam("source_id"))
_BOT_LEVEL = prepared(select(_M.access_level).where(*_IN_RESOURCE, _M.user_id == bindparam("user_id")))
_BOT_LEVELS = prepared(
    select(_M.user_id, _M.access_level).where(*_IN_RESOURCE, _M.user_id.in_(bindparam("ids", expanding=True)))
)


def _root_setting() -> Select[Any]:
    """The resource_access_token_creation_allowed of the top-level group above (or at) the
    namespace ``id``: the setting that rules the whole tree."""
    ns = Namespace.__table__
    chain = (
        select(ns.c.id, ns.c.parent_id, ns.c.resource_access_token_creation_allowed.label("allowed"))
        .where(ns.c.id == bindparam("id"))
        .cte("token_chain", recursive=True)
    )
    up = ns.alias("up")
    chain = chain.union_all(
        select(up.c.id, up.c.parent_id, up.c.resource_access_token_creation_allowed).where(
            up.c.id == chain.c.parent_id
        )
    )
    return select(chain.c.allowed).where(chain.c.parent_id.is_(None))


_ROOT_SETTING = prepared(_root_setting())


def creation_allowed(ctx: Ctx, resource: Resource) -> bool:
    """Whether project and group access tokens may be created in ``resource`` at all: its
    top-level group's setting decides, for everyone, admins included (GitLab's
    ``resource_access_token_creation_allowed`` of the root ancestor); projects in a personal
    namespace always may."""
    obj = resource.obj
    namespace_id = obj.namespace_id if isinstance(obj, Project | ProjectView) else obj.id
    allowed = ctx.reads.scalar(_ROOT_SETTING, {"id": namespace_id})
    return allowed is None or bool(allowed)


def actor_is_bot(ctx: Ctx) -> bool:
    user = ctx.actor.facts
    return user is not None and user.user_type == UserType.PROJECT_BOT


def can_manage(ctx: Ctx, resource: Resource) -> bool:
    """Who may read, create, rotate and revoke a resource's tokens (admins always)."""
    if ctx.actor.facts is None:
        return False
    return ctx.actor.is_admin or resource.level_of(ctx) >= resource.admin_level


def grantable_levels(ctx: Ctx, resource: Resource) -> tuple[AccessLevel, ...]:
    """The roles the actor may give a new token here: none above their own (admins: any)."""
    if ctx.actor.is_admin:
        return TOKEN_LEVELS
    own = resource.level_of(ctx)
    return tuple(level for level in TOKEN_LEVELS if level <= own)


def _in(resource: Resource) -> dict[str, Any]:
    return {"source_type": resource.source_type.value, "source_id": resource.id}


def bot_level(ctx: Ctx, resource: Resource, bot_id: int) -> int:
    level = ctx.reads.scalar(_BOT_LEVEL, {**_in(resource), "user_id": bot_id})
    return int(level or 0)


def create_resource_token(
    ctx: Ctx,
    resource: Resource,
    *,
    name: str,
    scopes: list[str],
    access_level: int | None = None,
    expires_at: dt.date | None = None,
    description: str | None = None,
) -> tuple[IssuedToken, int]:
    """Create the bot, its membership and its token; returns the issued token and the bot's level.

    ``scopes`` are required, as by GitLab's REST endpoint: an empty list is refused ("scopes is
    missing"); there is no default of every bot scope.

    Raises Invalid (GitLab's 400 messages) when the caller may not create tokens here, asks for a
    level above its own, or gives a bad expiry; BadParameter for bad scopes or levels,
    MissingParameter for an empty scope list.
    """
    creator = ctx.actor.user
    if creator is None:
        raise Unauthenticated()
    if actor_is_bot(ctx) or not can_manage(ctx, resource) or not creation_allowed(ctx, resource):
        raise Invalid(f"User does not have permission to create {resource.kind} access token")
    level = DEFAULT_LEVEL if access_level is None else access_level
    if level not in TOKEN_LEVELS:
        raise BadParameter("access_level does not have a valid value")
    if not ctx.actor.is_admin and level > resource.level_of(ctx):
        raise Invalid("Access level of the token contains permissions not held by the creating user")
    scopes = check_scopes(scopes, RESOURCE_BOT_SCOPES)
    expiry = check_expiry(ctx, expires_at)
    if not name or not name.strip():
        raise BadParameter("name is empty")
    _lock_resource(ctx, resource)
    username = bot_username(ctx, resource.kind, resource.id)
    bot = create_user(
        ctx,
        username=username,
        email=bot_email(ctx, username),
        name=name,
        password=None,
        user_type=UserType.PROJECT_BOT,
        external=creator.external,
        can_create_group=False,
        projects_limit=0,
    )
    bot.bot_resource_type = resource.source_type.value
    bot.bot_resource_id = resource.id
    now = ctx.now()
    ctx.db.add(
        Member(
            source_type=resource.source_type.value,
            source_id=resource.id,
            user_id=bot.id,
            access_level=int(level),
            expires_at=None,
            created_by_id=creator.id,
            created_at=now,
            updated_at=now,
        )
    )
    record(
        ctx,
        Event.MEMBER_ADDED,
        resource.entity,
        target=Target("User", bot.id, bot.username),
        access_level=int(level),
    )
    note_project_joined(ctx, resource, bot.id)
    issued = issue_audited(
        ctx,
        bot,
        resource.entity,
        name=name,
        scopes=scopes,
        expires_at=expiry,
        description=description,
        access_level=int(level),
        bot_user_id=bot.id,
    )
    return issued, int(level)


def _lock_resource(ctx: Ctx, resource: Resource) -> None:
    """Lock the project (or the group, shared) the bot is made for, so that its deletion waits or
    is waited for: never a bot left behind for a resource deleted meanwhile (NotFound then)."""
    if resource.project is not None:
        lock_project(ctx, resource.project)
    elif resource.group is not None and resource.id not in lock_namespaces(
        ctx, chain_ids(resource.group), "share"
    ):
        raise NotFound("Group")


def bots_of(resource: Resource) -> Select[Any]:
    return select(_U.id).where(
        _PROJECT_BOT, _U.bot_resource_type == resource.source_type.value, _U.bot_resource_id == resource.id
    )


def tokens_query(ctx: Ctx, resource: Resource) -> Select[Any]:
    """The resource's tokens, for callers who may manage them (others: Unauthenticated, as GitLab)."""
    if not can_manage(ctx, resource):
        raise Unauthenticated()
    return select(PersonalAccessToken).where(_T.user_id.in_(bots_of(resource)), _NOT_IMPERSONATION)


def token_listing(ctx: Ctx, resource: Resource, filters: TokenFilters) -> Listing:
    """``tokens_query`` with ``filters``, as rows for ``token_view``, built once per shape."""
    if not can_manage(ctx, resource):
        raise Unauthenticated()
    values = {"source_type": resource.source_type.value, "source_id": resource.id}
    return lifecycle.token_listing("resource_tokens", _bot_tokens, filters, ctx.today(), values)


def _bot_tokens() -> Select[Any]:
    bots = select(_U.id).where(
        _PROJECT_BOT,
        _U.bot_resource_type == bindparam("source_type"),
        _U.bot_resource_id == bindparam("source_id"),
    )
    return select(*TOKEN_COLUMNS).where(_T.user_id.in_(bots), _NOT_IMPERSONATION)


def find_resource_token(ctx: Ctx, resource: Resource, token_ref: int | str) -> PersonalAccessToken:
    """A token of this resource's bots by id (an int or a string of digits), or "self" (the token
    of the request).

    Not found, or not visible to a caller who may not manage tokens: admins get NotFound, others
    Unauthenticated (GitLab's answers). BadParameter for a reference that is not an id.
    """
    token_id = (ctx.actor.token_id or 0) if token_ref == "self" else _token_id(token_ref)
    # An id beyond the id column's range names no token (and must not reach the database).
    token = ctx.db.get(PersonalAccessToken, token_id) if 0 < token_id <= MAX_ID else None
    if token is not None and not _belongs(ctx, resource, token):
        token = None
    return _visible(ctx, resource, token, own=token_ref == "self")


def read_resource_token(ctx: Ctx, resource: Resource, token_ref: int | str) -> PersonalAccessTokenView:
    """``find_resource_token`` for a read: the token as column values, found with its bot in one
    statement (same errors)."""
    token_id = (ctx.actor.token_id or 0) if token_ref == "self" else _token_id(token_ref)
    found = (
        read_bot_token(ctx.reads, token_id, resource.source_type.value, resource.id)
        if 0 < token_id <= MAX_ID
        else None
    )
    return _visible(ctx, resource, found, own=token_ref == "self")


def _token_id(token_ref: int | str) -> int:
    if isinstance(token_ref, str):
        if not (token_ref.isascii() and token_ref.isdigit()):
            raise BadParameter("token_id is invalid")
        return int(token_ref)
    return token_ref


def _visible(ctx: Ctx, resource: Resource, token: Token | None, *, own: bool) -> Token:
    """``token`` (one of the resource's bots', or None) if the actor may see it: the request's
    own token (``own``) always, any other if the actor may manage the resource's tokens."""
    label = f"{resource.kind} Access Token"
    if own:
        if token is None:
            raise NotFound(label)
        return token
    if token is None or not can_manage(ctx, resource):
        if ctx.actor.is_admin:
            raise NotFound(label)
        if not can_manage(ctx, resource):
            raise Unauthenticated()
        raise NotFound(label)
    return token


def _belongs(ctx: Ctx, resource: Resource, token: PersonalAccessToken) -> bool:
    bot = ctx.db.get(User, token.user_id)
    return (
        bot is not None
        and bot.type is UserType.PROJECT_BOT
        and bot.bot_resource_type == resource.source_type.value
        and bot.bot_resource_id == resource.id
    )


def revoke_resource_token(ctx: Ctx, resource: Resource, token: PersonalAccessToken) -> None:
    """Revoke the token; the bot stays (history keeps its author) until the cleanup job, unless the
    instance deletes bots on revoke (inactive_resource_access_tokens_delete_after_days = 0)."""
    if not can_manage(ctx, resource) and ctx.actor.token_id != token.id:
        raise Unauthenticated()
    if not lifecycle.revoke(ctx, token):
        raise Invalid(f"Token {token.name} has already been revoked")

    if instance_settings(ctx).inactive_resource_access_tokens_delete_after_days == 0:
        bot = ctx.db.get(User, token.user_id)
        if bot is not None:
            delete_bot(ctx, bot, reason="token revoked")


def rotate_resource_token(
    ctx: Ctx, resource: Resource, token: PersonalAccessToken, *, expires_at: dt.date | None = None
) -> tuple[IssuedToken, int]:
    """Rotate a resource token. The rotator needs a level at least the bot's (admins exempt), except
    a token rotating itself. Raises Invalid with GitLab's messages."""
    level = bot_level(ctx, resource, token.user_id)
    rotating_self = ctx.actor.token_id == token.id
    if not rotating_self:
        if actor_is_bot(ctx) or not can_manage(ctx, resource):
            raise Unauthenticated()
        if not ctx.actor.is_admin and level > resource.level_of(ctx):
            raise Invalid("Not eligible to rotate token with access level higher than the user")
    issued = lifecycle.rotate(ctx, token, expires_at=expires_at)
    return issued, level


def token_levels(
    ctx: Ctx, resource: Resource, tokens: Iterable[PersonalAccessToken | PersonalAccessTokenView]
) -> dict[int, int]:
    """user id → the bot's access level, for rendering a page of tokens in one query."""
    user_ids = sorted({t.user_id for t in tokens})
    if not user_ids:
        return {}
    rows = ctx.reads.rows(_BOT_LEVELS, {**_in(resource), "ids": user_ids})
    return {int(uid): int(level) for uid, level in rows}
