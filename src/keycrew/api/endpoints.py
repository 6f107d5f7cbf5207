"""How every API route is served: one compiled endpoint per route, the same mechanism for all.

A route is declared with FastAPI as usual (its signature documents it and feeds the OpenAPI
schema): path parameters, ``request: Request``, ``ctx: Ctx = api_ctx(...)``, ``params: Params =
params_dep()`` and ``principal: Principal = principal_dep(...)``. At start-up each route is
compiled into an :class:`ApiEndpoint` that serves it without FastAPI's per-request dependency
solving:

- the credential is resolved on the event loop from the principal cache (api/auth.py);
- the body is read on the event loop;
- everything that touches the database runs as one unit (session, transaction, actor, the route,
  commit, rendering): inline for reads on SQLite, whose queries never wait on a lock in WAL mode,
  and otherwise in one threadpool hop, so the request pays for at most one hop;
- what the route returns is rendered once with orjson.

A route with a parameter of any other kind keeps FastAPI's own handling (``compile`` returns None),
so declaring one never breaks a route; tests/unit/api/test_endpoints.py lists which routes compile.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, compile_path, get_route_path
from starlette.types import Receive, Scope, Send

from keycrew.api.auth import client_ip, resolve_principal
from keycrew.api.params import integer_text, read_params, valid_text
from keycrew.bootstrap import Runtime
from keycrew.context import Actor, Ctx, LazySession
from keycrew.db.engine import connection_lost, is_unavailable, unavailable_reason
from keycrew.db.reads import PoolReads, Reader
from keycrew.errors import Forbidden, InsufficientScope, RateLimited, Unauthenticated, Unavailable
from keycrew.identity.models import User
from keycrew.tokens.authentication import check_user_may_use_api
from keycrew.tokens.principal import Principal, token_admin_powers
from keycrew.tokens.scopes import READ_METHODS, api_scopes
from keycrew.tokens.scopes import Scope as TokenScope
from keycrew.tokens.sudo import sudo_actor

_ORJSON = orjson.OPT_NON_STR_KEYS
log = logging.getLogger("keycrew.api")


@dataclass(frozen=True)
class CtxSpec:
    """What ``api_ctx(...)`` asked for: who may call, with which scopes."""

    auth: bool = True
    read_user: bool = False
    any_scope: bool = False
    accept: tuple[str, ...] = ()
    rotation: bool = False


@dataclass(frozen=True)
class PrincipalSpec:
    """What ``principal_dep(...)`` asked for: an authenticated caller, no session."""

    read_user: bool = False
    any_scope: bool = False
    accept: tuple[str, ...] = ()


def check_scopes(
    method: str, principal: Principal, *, read_user: bool, any_scope: bool, accept: tuple[str, ...]
) -> str | None:
    """Raise InsufficientScope unless the token has a scope the request accepts; return the least
    scope the request needed (what the token-hygiene report records as exercised)."""
    if any_scope:
        return None
    needed = list(accept) if accept else api_scopes(method, read_user=read_user)
    granted = set(principal.token.scopes).intersection(needed)
    if not granted:
        raise InsufficientScope(needed)
    return next(scope for scope in reversed(needed) if scope in granted) if accept else needed[-1]


def note_exercised(request: Request, principal: Principal, scope: str | None) -> None:
    """Count the scope a request exercised for the token-hygiene report (memory only)."""
    usage = request.app.state.runtime.usage
    if scope is not None and usage is not None:
        usage.exercise(principal.token.id, scope, request.method)


def sudo_target(request: Request) -> str | None:
    value = request.headers.get("sudo")
    if not value and b"sudo" in request.scope.get("query_string", b""):  # parse the query only then
        value = request.query_params.get("sudo")
    return value.strip() if value else None


RATE_HEADERS = "keycrew.rate_headers"


async def throttle(request: Request, principal: Principal | None) -> None:
    """Count the request against the API throttles: its token's owner, or its client IP when
    anonymous (GitLab's throttle_authenticated_api and throttle_unauthenticated_api). Raises
    RateLimited over the limit; the RateLimit-* headers of a request that passes are sent with
    its response."""
    runtime: Runtime = request.app.state.runtime
    refused, headers = await runtime.rate_limiter.aapi(
        None if principal is None else principal.user.id, client_ip(request)
    )
    if refused is not None:
        raise RateLimited(refused.headers)
    if headers is not None:
        request.scope[RATE_HEADERS] = headers


async def caller(request: Request, spec: CtxSpec) -> Principal | None:
    """The authenticated principal a Ctx route runs for (None: anonymous, where allowed)."""
    principal = await resolve_principal(request, rotation=spec.rotation)
    await throttle(request, principal)
    if principal is None:
        if spec.auth:
            raise Unauthenticated()
        return None
    exercised = check_scopes(
        request.method, principal, read_user=spec.read_user, any_scope=spec.any_scope, accept=spec.accept
    )
    note_exercised(request, principal, exercised)
    return principal


async def principal_only(request: Request, spec: PrincipalSpec) -> Principal:
    """The authenticated principal of a route that touches no session."""
    principal = await resolve_principal(request)
    await throttle(request, principal)
    if principal is None:
        raise Unauthenticated()
    exercised = check_scopes(
        request.method, principal, read_user=spec.read_user, any_scope=spec.any_scope, accept=spec.accept
    )
    note_exercised(request, principal, exercised)
    if sudo_target(request) is not None:
        raise Forbidden("Sudo is not supported on this endpoint")
    return principal


def render(result: Any, status_code: int | None) -> Response:
    """What a route returned, as a response: a Response as is, anything else as orjson JSON."""
    if isinstance(result, Response):
        return result
    status = status_code or 200
    if status < 200 or status in (204, 205, 304):
        return Response(status_code=status)
    body = orjson.dumps(result, default=jsonable_encoder, option=_ORJSON)
    return Response(body, status_code=status, media_type="application/json")


@dataclass
class Plan:
    """How to call one route's function: where each of its arguments comes from."""

    path_params: list[tuple[str, bool]]  # (name, is an int)
    request: str | None = None
    ctx: tuple[str, CtxSpec] | None = None
    params: str | None = None
    principal: tuple[str, PrincipalSpec] | None = None


def plan_of(route: APIRoute) -> Plan | None:
    """The route's calling plan, or None when it takes anything this module does not provide."""
    dependant = route.dependant
    if (
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    ):
        return None
    path_params = []
    for field in dependant.path_params:
        annotation = field.field_info.annotation
        if annotation not in (str, int):
            return None
        path_params.append((field.name, annotation is int))
    plan = Plan(path_params, request=dependant.request_param_name)
    for sub in dependant.dependencies:
        spec = getattr(sub.call, "keycrew_spec", None)
        if sub.name is None:
            return None
        if isinstance(spec, CtxSpec) and plan.ctx is None:
            plan.ctx = (sub.name, spec)
        elif isinstance(spec, PrincipalSpec) and plan.principal is None:
            plan.principal = (sub.name, spec)
        elif sub.call is read_params and plan.params is None:
            plan.params = sub.name
        else:
            return None
    if plan.ctx is not None and plan.principal is not None:
        return None
    if plan.ctx is not None and inspect.iscoroutinefunction(route.endpoint):
        return None  # a session is used in one synchronous unit
    return plan


def _path_value(name: str, raw: str, is_int: bool) -> Any:
    """A path parameter: text as is, an integer only from plain ASCII digits (optionally after a
    "-"): not padded, signed with "+", grouped with "_", nor other scripts' digits, which
    pydantic's lax int would take. Anything else, and text that cannot be stored (a NUL byte),
    is GitLab's 400 "<name> is invalid"."""
    if is_int and integer_text(raw):
        return int(raw)
    if not is_int and valid_text(raw):
        return raw
    kind = "int_parsing" if is_int else "string_type"
    raise RequestValidationError([{"type": kind, "loc": ("path", name), "msg": f"{name} is invalid"}])


class ApiEndpoint:
    """One API route, compiled: matches its full path and serves it (see the module's docstring)."""

    def __init__(self, route: APIRoute, template: str, plan: Plan) -> None:
        self.route = route
        self.template = template
        self.regex: re.Pattern[str] = compile_path(template)[0]
        self.methods: set[str] = set(route.methods or ())
        self.function: Callable[..., Any] = route.endpoint
        self.is_async = inspect.iscoroutinefunction(route.endpoint)
        self.status_code: int | None = route.status_code
        self.plan = plan

    @classmethod
    def compile(cls, route: Any, template: str) -> ApiEndpoint | None:
        if type(route) is not APIRoute:  # a subclass (the PyPI adapter's) serves its routes its own way
            return None
        plan = plan_of(route)
        return None if plan is None else cls(route, template, plan)

    def matches(self, scope: Scope) -> tuple[Match, dict[str, str]]:
        found = self.regex.match(get_route_path(scope))
        if found is None:
            return Match.NONE, {}
        params = found.groupdict()
        return (Match.FULL if scope["method"] in self.methods else Match.PARTIAL), params

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: dict[str, str]) -> None:
        scope["path_params"] = path
        scope["endpoint"] = self.function
        scope["keycrew.route"] = self.template
        scope["route"] = self.route
        request = Request(scope, receive)
        runtime: Runtime = request.app.state.runtime
        reading = request.method in READ_METHODS
        # The database out of reach answers 503 (``Unavailable``); a read whose connection was cut
        # (a restart, a failover) is tried once more on a fresh one, a write never (it may have
        # committed before the answer was lost).
        for attempt in (1, 2):
            try:
                response = await self._respond(request, runtime, path)
                break
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                connection_lost(runtime.engine)
                log.warning("database unavailable (try %d): %s", attempt, unavailable_reason(exc))
                if not reading or attempt == 2 or isinstance(exc, PoolTimeout):
                    raise Unavailable() from exc
        rate_headers = scope.get(RATE_HEADERS)
        if rate_headers is not None:
            response.headers.update(rate_headers)
        await response(scope, receive, send)

    async def _respond(self, request: Request, runtime: Runtime, path: dict[str, str]) -> Response:
        """Authenticate, read the parameters and run the route (its unit of work)."""
        plan = self.plan
        principal: Principal | None = None
        if plan.ctx is not None:
            principal = await caller(request, plan.ctx[1])
        kwargs: dict[str, Any] = {
            name: _path_value(name, path[name], is_int) for name, is_int in plan.path_params
        }
        if plan.principal is not None:
            kwargs[plan.principal[0]] = await principal_only(request, plan.principal[1])
        if plan.params is not None:
            kwargs[plan.params] = await read_params(request)
        if plan.request is not None:
            kwargs[plan.request] = request
        if plan.ctx is not None:
            unit = self._unit(runtime, request, plan.ctx[0], principal, kwargs)
            if request.method in READ_METHODS and runtime.reads_inline:
                return unit(on_loop=True)
            return await run_in_threadpool(unit)
        if self.is_async:
            return render(await self.function(**kwargs), self.status_code)
        return render(await run_in_threadpool(self.function, **kwargs), self.status_code)

    def _unit(
        self,
        runtime: Runtime,
        request: Request,
        ctx_name: str,
        principal: Principal | None,
        kwargs: dict[str, Any],
    ) -> Callable[..., Response]:
        def unit(on_loop: bool = False) -> Response:
            with request_ctx(runtime, request, principal, on_loop=on_loop) as ctx:
                kwargs[ctx_name] = ctx
                return render(self.function(**kwargs), self.status_code)

        return unit


@contextmanager
def request_ctx(
    runtime: Runtime, request: Request, principal: Principal | None, *, on_loop: bool = False
) -> Iterator[Ctx]:
    """A request's unit of work: the actor, a session and one transaction, committed when the
    block ends and rolled back if it raises.

    A GET or HEAD reads through ``PoolReads`` on a connection of its own, checked out when first
    needed (``on_loop``, served on the event loop: ``Runtime.loop_reads``); its session (a
    reader's) is opened only if something asks for ``ctx.db``."""
    if request.method not in READ_METHODS:
        with runtime.sessions() as db:
            try:
                yield _ctx(runtime, request, principal, db, None)
                commit(db)
            except BaseException:
                db.rollback()
                raise
        return
    reads = runtime.loop_reads() if on_loop else PoolReads(runtime.engine)
    lazy = LazySession(runtime.read_session)
    try:
        yield _ctx(runtime, request, principal, lazy, reads)
        if lazy.session is not None:
            commit(lazy.session)
    except BaseException:
        if lazy.session is not None:
            lazy.session.rollback()
        raise
    finally:
        if lazy.session is not None:
            lazy.session.close()
        reads.close()


def _ctx(
    runtime: Runtime,
    request: Request,
    principal: Principal | None,
    db: Session | LazySession,
    reads: Reader | None,
) -> Ctx:
    ctx = runtime.ctx(db, Actor(user=None, ip=client_ip(request)), reads)
    ctx.actor = request_actor(ctx, request, principal)
    return ctx


def commit(db: Session) -> None:
    """Commit what the request did; a request that never needed the database has nothing to."""
    if db.in_transaction() or db.new or db.dirty or db.deleted:
        db.commit()


def request_actor(ctx: Ctx, request: Request, principal: Principal | None) -> Actor:
    """The request's actor: anonymous, the token's owner, or the user an admin acts as (Sudo).

    The owner's facts come from the principal cache (at most a second old on another node); the
    row is read, and checked again, only when the request's rules need it.
    """
    ip = client_ip(request)
    if principal is None:
        return Actor(user=None, ip=ip)
    user_id = principal.user.id

    def load() -> User:
        user = ctx.db.get(User, user_id)
        if user is None:
            raise Unauthenticated()
        check_user_may_use_api(user, ctx.instance.external_url)
        return user

    actor = Actor.deferred(
        principal.user,
        load,
        cached=principal.user.row,
        token_id=principal.token.id,
        ip=ip,
        scopes=frozenset(principal.token.scopes),
        admin_powers=token_admin_powers(ctx.instance, principal.token.scopes),
    )
    target = sudo_target(request)
    if target is not None:
        actor = sudo_actor(ctx.as_actor(actor), target)
        note_exercised(request, principal, TokenScope.SUDO)
    return actor
