"""What a route declares it needs: its Ctx, its parameters, or only its authenticated caller.

Every API route takes ``ctx: Ctx = api_ctx(...)`` (a session and transaction, the authenticated
actor), and where it reads parameters ``params: Params = params_dep()``; a route that needs no
session takes ``principal: Principal = principal_dep(...)`` instead. api/endpoints.py compiles
each route from these declarations and serves it (credential from the cache, at most one
threadpool hop, one transaction committed before the response is sent). The FastAPI dependencies
below do the same for a route it cannot compile, so both paths share every rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from fastapi import Depends, Request

from keycrew.api.auth import client_ip
from keycrew.api.endpoints import CtxSpec, PrincipalSpec, caller, principal_only, request_ctx
from keycrew.api.params import Params, read_params
from keycrew.bootstrap import Runtime
from keycrew.context import Ctx
from keycrew.tokens.principal import Principal


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def api_ctx(
    *,
    auth: bool = True,
    read_user: bool = False,
    any_scope: bool = False,
    accept: tuple[str, ...] = (),
    rotation: bool = False,
) -> Any:
    """The declaration giving a route its Ctx.

    ``auth=False`` lets anonymous callers through; ``read_user`` also accepts read_user tokens on
    reads; ``any_scope`` accepts every scope; ``accept`` names the scopes that suffice instead of
    the method's default (api, or api/read_api for GET and HEAD); ``rotation`` marks a route that
    rotates a token (a revoked token presented there triggers reuse detection).
    """
    spec = CtxSpec(auth=auth, read_user=read_user, any_scope=any_scope, accept=accept, rotation=rotation)

    async def principal_of(request: Request) -> Principal | None:
        return await caller(request, spec)

    def dependency(request: Request, principal: Principal | None = Depends(principal_of)) -> Iterator[Ctx]:
        with request_ctx(runtime_of(request), request, principal) as ctx:
            yield ctx

    dependency.keycrew_spec = spec  # type: ignore[attr-defined]
    return Depends(dependency, scope="function")


def principal_dep(*, any_scope: bool = False, read_user: bool = False, accept: tuple[str, ...] = ()) -> Any:
    """The declaration giving a route only its authenticated caller: no session is opened."""
    spec = PrincipalSpec(read_user=read_user, any_scope=any_scope, accept=accept)

    async def dependency(request: Request) -> Principal:
        return await principal_only(request, spec)

    dependency.keycrew_spec = spec  # type: ignore[attr-defined]
    return Depends(dependency)


def params_dep() -> Any:
    return Depends(read_params)


def unit_of_work(request: Request, principal: Principal) -> AbstractContextManager[Ctx]:
    """A unit of work opened by the route itself (one session, one transaction, committed when the
    block ends): for a route taking ``principal_dep`` that must not hold a transaction open while
    it waits on something else (another server), and so uses two short ones around the wait."""
    return request_ctx(runtime_of(request), request, principal)


__all__ = ["Params", "api_ctx", "client_ip", "params_dep", "principal_dep", "runtime_of", "unit_of_work"]
