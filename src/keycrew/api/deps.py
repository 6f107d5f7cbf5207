"""Per-request plumbing: one session and transaction, the authenticated actor, parameters.

Every API route takes ``ctx: Ctx = api_ctx(...)``: the dependency resolves the credential
(api/auth.py: cache first), applies scope rules and Sudo, opens a session, begins the transaction,
hands the route a Ctx, and commits when the route returns (rolls back if it raises), before the
response is sent. Hot read-only routes can take ``principal_dep(...)`` instead and touch no session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import Depends, Request
from sqlalchemy import select

from keycrew.api.auth import client_ip, resolve_principal
from keycrew.api.params import Params, read_params, record_id
from keycrew.bootstrap import Runtime
from keycrew.context import Actor, Ctx
from keycrew.errors import Forbidden, InsufficientScope, NotFound, Unauthenticated
from keycrew.identity.models import User
from keycrew.tokens.authentication import check_user_may_use_api
from keycrew.tokens.principal import Principal

READ_METHODS = frozenset({"GET", "HEAD"})


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _required_scopes(method: str, read_user: bool) -> list[str]:
    if method in READ_METHODS:
        return ["api", "read_api", "read_user"] if read_user else ["api", "read_api"]
    return ["api"]


def check_scopes(
    request: Request, principal: Principal, *, read_user: bool, any_scope: bool, accept: tuple[str, ...]
) -> None:
    if any_scope:
        return
    needed = list(accept) if accept else _required_scopes(request.method, read_user)
    if set(principal.token.scopes).isdisjoint(needed):
        raise InsufficientScope(needed)


def _sudo_target(request: Request) -> str | None:
    value = request.headers.get("sudo") or request.query_params.get("sudo")
    return value.strip() if value else None


def _apply_sudo(ctx: Ctx, target: str, scopes: frozenset[str]) -> Actor:
    actor = ctx.actor
    if not actor.is_admin:
        raise Forbidden("403 Forbidden - Must be admin to use sudo")
    if "sudo" not in scopes:
        raise InsufficientScope(["sudo"])
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


def _actor(ctx: Ctx, request: Request, principal: Principal | None) -> Actor:
    ip = client_ip(request)
    if principal is None:
        return Actor(user=None, ip=ip)
    user = ctx.db.get(User, principal.user.id)
    if user is None:
        raise Unauthenticated("401 Unauthorized")
    # The principal may be a few seconds old: check the fresh row too.
    check_user_may_use_api(user, ctx.instance.external_url)
    scopes = frozenset(principal.token.scopes)
    actor = Actor(user=user, token_id=principal.token.id, ip=ip, scopes=scopes)
    target = _sudo_target(request)
    if target is not None:
        actor = _apply_sudo(ctx.as_actor(actor), target, scopes)
    return actor


def api_ctx(
    *, auth: bool = True, read_user: bool = False, any_scope: bool = False, accept: tuple[str, ...] = ()
) -> Any:
    """The dependency giving a route its Ctx.

    ``auth=False`` lets anonymous callers through; ``read_user`` also accepts read_user tokens on
    reads; ``any_scope`` accepts every scope; ``accept`` names the scopes that suffice instead of
    the method's default (api, or api/read_api for GET and HEAD).
    """

    def dependency(
        request: Request, principal: Principal | None = Depends(resolve_principal)
    ) -> Iterator[Ctx]:
        if principal is None and auth:
            raise Unauthenticated("401 Unauthorized")
        if principal is not None:
            check_scopes(request, principal, read_user=read_user, any_scope=any_scope, accept=accept)
        runtime = runtime_of(request)
        with runtime.sessions() as db:
            if request.method in READ_METHODS:
                # Readers on SQLite start DEFERRED so they never queue behind writers.
                db.connection(execution_options={"sqlite_begin": "DEFERRED"})
            try:
                ctx = runtime.ctx(db, Actor(user=None, ip=client_ip(request)))
                ctx.actor = _actor(ctx, request, principal)
                request.state.actor = ctx.actor
                yield ctx
                db.commit()
            except BaseException:
                db.rollback()
                raise

    return Depends(dependency, scope="function")


async def authenticated_principal(
    request: Request, *, any_scope: bool = False, read_user: bool = False, accept: tuple[str, ...] = ()
) -> Principal:
    """For hot read-only routes: the authenticated principal, no session, no threadpool hop.

    Awaited by the route itself rather than declared as a dependency, which keeps FastAPI's
    dependency solving off the hottest path.
    """
    principal = await resolve_principal(request)
    if principal is None:
        raise Unauthenticated("401 Unauthorized")
    check_scopes(request, principal, read_user=read_user, any_scope=any_scope, accept=accept)
    if request.headers.get("sudo") or request.query_params.get("sudo"):
        raise Forbidden("403 Forbidden - Sudo is not supported on this endpoint")
    return principal


def params_dep() -> Any:
    return Depends(read_params)


__all__ = ["Params", "api_ctx", "authenticated_principal", "client_ip", "params_dep", "runtime_of"]
