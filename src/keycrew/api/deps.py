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

from keycrew.api.auth import client_ip, request_principal, resolve_principal, rotation_principal
from keycrew.api.params import Params, read_params
from keycrew.bootstrap import Runtime
from keycrew.context import Actor, Ctx
from keycrew.errors import Forbidden, InsufficientScope, Unauthenticated
from keycrew.identity.models import User
from keycrew.tokens.authentication import check_user_may_use_api
from keycrew.tokens.principal import Principal
from keycrew.tokens.scopes import READ_METHODS, api_scopes
from keycrew.tokens.sudo import sudo_actor


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def check_scopes(
    request: Request, principal: Principal, *, read_user: bool, any_scope: bool, accept: tuple[str, ...]
) -> None:
    if any_scope:
        return
    needed = list(accept) if accept else api_scopes(request.method, read_user=read_user)
    if set(principal.token.scopes).isdisjoint(needed):
        raise InsufficientScope(needed)


def _sudo_target(request: Request) -> str | None:
    value = request.headers.get("sudo") or request.query_params.get("sudo")
    return value.strip() if value else None


def _actor(ctx: Ctx, request: Request, principal: Principal | None) -> Actor:
    ip = client_ip(request)
    if principal is None:
        return Actor(user=None, ip=ip)
    user = ctx.db.get(User, principal.user.id)
    if user is None:
        raise Unauthenticated()
    # The principal may be a few seconds old: check the fresh row too.
    check_user_may_use_api(user, ctx.instance.external_url)
    scopes = frozenset(principal.token.scopes)
    actor = Actor(user=user, token_id=principal.token.id, ip=ip, scopes=scopes)
    target = _sudo_target(request)
    if target is not None:
        actor = sudo_actor(ctx.as_actor(actor), target)
    return actor


def api_ctx(
    *,
    auth: bool = True,
    read_user: bool = False,
    any_scope: bool = False,
    accept: tuple[str, ...] = (),
    rotation: bool = False,
) -> Any:
    """The dependency giving a route its Ctx.

    ``auth=False`` lets anonymous callers through; ``read_user`` also accepts read_user tokens on
    reads; ``any_scope`` accepts every scope; ``accept`` names the scopes that suffice instead of
    the method's default (api, or api/read_api for GET and HEAD); ``rotation`` marks a route that
    rotates a token (a revoked token presented there triggers reuse detection).
    """

    def dependency(
        request: Request,
        principal: Principal | None = Depends(rotation_principal if rotation else request_principal),
    ) -> Iterator[Ctx]:
        if principal is None and auth:
            raise Unauthenticated()
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
        raise Unauthenticated()
    check_scopes(request, principal, read_user=read_user, any_scope=any_scope, accept=accept)
    if request.headers.get("sudo") or request.query_params.get("sudo"):
        raise Forbidden("Sudo is not supported on this endpoint")
    return principal


def params_dep() -> Any:
    return Depends(read_params)


__all__ = ["Params", "api_ctx", "authenticated_principal", "client_ip", "params_dep", "runtime_of"]
