"""Sudo: an administrator's token with the ``sudo`` scope acts as another user.

The request is then made as that user (their permissions, their audit trail), with the admin
recorded as the impersonator. Only admins may use it, only with the ``sudo`` scope, and only as a
user who may use the API at all.
"""

from __future__ import annotations

from sqlalchemy import select

from keycrew.context import Actor, Ctx
from keycrew.db.base import record_id
from keycrew.errors import Forbidden, InsufficientScope, NotFound
from keycrew.identity.models import User
from keycrew.tokens.authentication import check_user_may_use_api
from keycrew.tokens.scopes import Scope


def sudo_actor(ctx: Ctx, target: str) -> Actor:
    """The actor a Sudo request acts as: ``target`` is a user id or a username (any case).

    Raises Forbidden (the caller is not an admin), InsufficientScope (no sudo scope), NotFound (no
    such user), Forbidden for a user who may not use the API (blocked, internal...).
    """
    actor = ctx.actor
    scopes = actor.scopes or frozenset()
    if not actor.is_admin:
        raise Forbidden("Must be admin to use sudo")
    if Scope.SUDO not in scopes:
        raise InsufficientScope([Scope.SUDO])
    query = select(User)
    query = (
        query.where(User.id == record_id(int(target)))
        if target.isascii() and target.isdigit()
        else query.where(User.username_lower == target.lower())
    )
    user = ctx.db.scalars(query).first()
    if user is None:
        raise NotFound(f"User with ID or username '{target}'")
    check_user_may_use_api(user, ctx.instance.external_url)
    return Actor(user=user, token_id=actor.token_id, ip=actor.ip, scopes=scopes, impersonator=actor.user)
