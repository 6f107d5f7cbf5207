"""The composition root: one ASGI application of every adapter (API, registry token service, git
smart HTTP, web UI), health endpoints, error mapping by what the client asked for, raw-path routing."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Router, get_route_path
from starlette.types import Receive, Scope, Send

from keycrew import __version__, errors
from keycrew.api import alert_notify, openapi
from keycrew.api import errors as api_errors
from keycrew.api.endpoints import ApiEndpoint
from keycrew.api.params import BadRequestBody
from keycrew.api.routes import ROUTERS
from keycrew.bootstrap import Runtime
from keycrew.db.engine import connection_lost, is_unavailable, unavailable_reason
from keycrew.git.http import GitHTTP
from keycrew.incoming.imap import ImapPoller, imap_poller
from keycrew.incoming.smtp import SmtpReceiver, smtp_receiver
from keycrew.infra.metrics import UNMATCHED, Metrics, ip_allowed, parse_networks
from keycrew.infra.redaction import redact
from keycrew.mail.delivery import DeliveryWorker, delivery_worker
from keycrew.registry import pypi
from keycrew.registry.jwt_auth import router as registry_token_router
from keycrew.web import errors as web_errors
from keycrew.web.app import install as install_web

API_PREFIX = "/api/v4"
log = logging.getLogger("keycrew.api")


class RawPathIds:
    """Route on the raw path so that an encoded full path (root%2Fp) stays one segment.

    Each segment is decoded on its own and a "/" inside it is re-encoded as %2F; routes that take
    an id or a full path decode it once more (so the CLI's double encoding works too).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if "\x00" in scope["path"]:
                # No route or full path can hold a NUL byte (and PostgreSQL refuses them in text).
                await JSONResponse({"error": "404 Not Found"}, status_code=404)(scope, receive, send)
                return
            raw = scope.get("raw_path")
            if raw and b"%2" in raw.upper():
                text_path = raw.decode("latin-1").split("?", 1)[0]
                segments = [unquote(s).replace("/", "%2F") for s in text_path.split("/")]
                scope = dict(scope, path="/".join(segments))
        await self.app(scope, receive, send)


class _Node:
    __slots__ = ("children", "own", "routes")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        # (registration index, route) of the routes whose literal prefix ends here.
        self.own: list[tuple[int, BaseRoute | ApiEndpoint]] = []
        # Every route that may match a path reaching this node, in registration order.
        self.routes: list[BaseRoute | ApiEndpoint] = []


def _literal_segments(path: str) -> list[str]:
    """A route path's leading segments that hold no parameter: only paths starting with them can
    match it ("/api/v4/users/{user_id}" -> ["api", "v4", "users"])."""
    literal: list[str] = []
    for segment in path.split("/")[1:]:
        if "{" in segment:
            break
        literal.append(segment)
    return literal


def full_paths(route: Any, prefix: str = "") -> Iterator[tuple[Any, str]]:
    """``route``'s endpoints with their full path templates. FastAPI keeps an included router as
    one route of the app: its own routes are reached through it, under its prefix."""
    path = getattr(route, "path", None)
    if isinstance(path, str):
        yield route, prefix + path
        return
    routes = getattr(getattr(route, "original_router", None), "routes", None) or []
    sub_prefix = getattr(getattr(route, "include_context", None), "prefix", None)
    if isinstance(sub_prefix, str):
        for sub in routes:
            yield from full_paths(sub, prefix + sub_prefix)


def _route_prefix(route: Any) -> list[str]:
    """The literal segments every path ``route`` can match starts with ([] when unknown)."""
    shared: list[str] | None = None
    for _endpoint, path in full_paths(route):
        literal = _literal_segments(path)
        if shared is None:
            shared = literal
        else:
            common = 0
            while common < min(len(shared), len(literal)) and shared[common] == literal[common]:
                common += 1
            shared = shared[:common]
    return shared or []


class IndexedRouting:
    """Route dispatch whose cost does not grow with a route's position in the table.

    Starlette tries every route in turn until one matches, so a route registered late paid for
    every route before it, and FastAPI tries each included router's routes in turn again. Here
    every API route is compiled (api/endpoints.py) and indexed by the literal segments its full
    path starts with, alongside the app's other routes; a request tries only the routes whose
    literal prefix its path starts with, in registration order, with Starlette's full/partial
    (405) semantics. A route that does not compile is reached through its router, at its place.
    When nothing matches, the router's full scan decides (trailing-slash redirects, 404).
    """

    def __init__(self, router: Router) -> None:
        self.router = router
        self.fallback = router.app
        self.root = _Node()
        self.endpoints: list[ApiEndpoint] = []
        order = 0
        for route in router.routes:
            leaves = list(full_paths(route))
            entries: list[tuple[list[str], BaseRoute | ApiEndpoint]] = []
            if leaves and leaves[0][0] is not route:  # an included router: its routes one by one
                through_router = False
                for leaf, template in leaves:
                    endpoint = ApiEndpoint.compile(leaf, template)
                    if endpoint is not None:
                        self.endpoints.append(endpoint)
                        entries.append((_literal_segments(template), endpoint))
                    elif not through_router:
                        through_router = True
                        entries.append((_route_prefix(route), route))
            else:
                entries.append((_route_prefix(route), route))
            for prefix, entry in entries:
                node = self.root
                for segment in prefix:
                    node = node.children.setdefault(segment, _Node())
                node.own.append((order, entry))
                order += 1
        self._settle(self.root, [])

    def _settle(self, node: _Node, inherited: list[tuple[int, BaseRoute | ApiEndpoint]]) -> None:
        reachable = sorted(inherited + node.own, key=lambda pair: pair[0])
        node.routes = [route for _, route in reachable]
        for child in node.children.values():
            self._settle(child, reachable)

    def candidates(self, path: str) -> list[BaseRoute | ApiEndpoint]:
        node = self.root
        for segment in path.split("/")[1:]:
            child = node.children.get(segment)
            if child is None:
                break
            node = child
        return node.routes

    def first_full_match(self, scope: Scope) -> tuple[BaseRoute | ApiEndpoint, dict[str, Any]] | None:
        """The route that serves ``scope`` (the first full match in routing order), if any."""
        for route in self.candidates(get_route_path(scope)):
            if isinstance(route, ApiEndpoint):
                found, path_params = route.matches(scope)
                if found is Match.FULL:
                    return route, path_params
            elif route.matches(scope)[0] is Match.FULL:
                return route, {}
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        scope.setdefault("router", self.router)
        # The methods of the routes that match the path but not the method: a 405 lists them all.
        allowed: set[str] = set()
        for route in self.candidates(get_route_path(scope)):
            if isinstance(route, ApiEndpoint):
                found, path_params = route.matches(scope)
                if found is Match.FULL:
                    await route(scope, receive, send, path_params)
                    return
                if found is Match.PARTIAL:
                    allowed |= route.methods
                continue
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL:
                allowed |= set(getattr(route, "methods", None) or ())
        if allowed:
            raise StarletteHTTPException(status_code=405, headers={"Allow": ", ".join(sorted(allowed))})
        await self.fallback(scope, receive, send)


class ApiLane:
    """Serves a request that a compiled API endpoint answers without the framework's middleware.

    Starlette and FastAPI wrap every request in several middleware layers (server errors,
    telemetry, body limits, exception handlers, an exit stack, the router), which cost more than
    a cached read itself. A request whose first matching route, in the routing order, is a
    compiled API endpoint goes straight to it; an error it raises gets the response the app's own
    exception handlers give (an unexpected one is then raised on, for the server to log, as
    Starlette's error middleware does). Everything else goes through the app unchanged.
    """

    def __init__(
        self, app: FastAPI, inner: Any, routing: IndexedRouting, prefix: str = API_PREFIX + "/"
    ) -> None:
        self.app = app
        self.inner = inner
        self.routing = routing
        self.prefix = prefix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            found = self.routing.first_full_match(scope)
            endpoint = found[0] if found is not None else None
            if found is not None and isinstance(endpoint, ApiEndpoint):
                path_params = found[1]
                scope["app"] = self.app
                scope.setdefault("router", self.app.router)
                started = False

                async def tracking_send(message: Any) -> None:
                    nonlocal started
                    started = started or message["type"] == "http.response.start"
                    await send(message)

                try:
                    await endpoint(scope, receive, tracking_send, path_params)
                except Exception as exc:
                    if started:
                        raise
                    await self._handled(scope, receive, send, exc)
                return
        await self.inner(scope, receive, send)

    async def _handled(self, scope: dict[str, Any], receive: Any, send: Any, exc: Exception) -> None:
        request = Request(scope, receive)
        handlers = self.app.exception_handlers
        for kind in type(exc).__mro__:
            handler = handlers.get(kind)
            if handler is not None:
                response = handler(request, exc)
                if inspect.isawaitable(response):
                    response = await response
                await response(scope, receive, send)
                if kind is Exception:
                    raise exc  # unexpected: logged by the server, as Starlette's error middleware does
                return
        raise exc


class RequestMetrics:
    """Counts each HTTP request by route template, method and status, and times it.

    The label is the template of the route that answered (``/api/v4/projects/{project_id}``), read
    from the scope once the application ran; git smart HTTP is "git", anything unrouted
    "unmatched": never a raw path, so never an id or a token.
    """

    def __init__(self, app: Any, metrics: Metrics, templates: dict[int, str]) -> None:
        self.app = app
        self.metrics = metrics
        # id(route) → its full template, for routes included under a prefix (the route object
        # in the scope knows only its path inside its router).
        self.templates = templates

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("keycrew.route")
            if route is None:
                matched = scope.get("route")
                route = self.templates.get(id(matched)) or getattr(matched, "path", None) or UNMATCHED
            self.metrics.observe_request(route, scope["method"], status, time.perf_counter() - start)


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.start_background()
        try:
            yield
        finally:
            runtime.stop_background()

    app = FastAPI(
        lifespan=lifespan,
        title="keycrew",
        version=__version__,
        # Served over HTTP only when KEYCREW_API_DOCS says so; app.openapi() works either way.
        docs_url="/-/docs" if runtime.settings.api_docs else None,
        redoc_url=None,
        openapi_url="/-/openapi.json" if runtime.settings.api_docs else None,
        default_response_class=JSONResponse,
    )
    app.state.runtime = runtime
    if runtime.settings.smtp_host and not any(isinstance(s, DeliveryWorker) for s in runtime.services):
        # The outbox's delivery worker (without SMTP settings, e-mail stays in the outbox).
        runtime.services.append(delivery_worker(runtime.sessions, runtime.settings, runtime.clock))
    if runtime.settings.incoming_imap_host and not any(isinstance(s, ImapPoller) for s in runtime.services):
        # Service Desk mail read from an IMAP mailbox (one node per mailbox: docs/service-desk.md).
        runtime.services.append(imap_poller(runtime.sessions, runtime.settings, runtime.clock))
    if runtime.settings.incoming_smtp_port and not any(isinstance(s, SmtpReceiver) for s in runtime.services):
        # Service Desk mail relayed by the site's MTA (docs/service-desk.md).
        runtime.services.append(
            smtp_receiver(runtime.sessions, runtime.settings, runtime.clock, runtime.instance)
        )
    install_log_redaction()
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(pypi.router, prefix=API_PREFIX)  # /projects/:id/packages/pypi/...
    app.include_router(registry_token_router)  # /jwt/auth, at the root as GitLab's

    @app.get("/-/health", include_in_schema=False)
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/-/liveness", include_in_schema=False)
    async def liveness() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/-/readiness", include_in_schema=False)
    def readiness() -> JSONResponse:
        try:
            with runtime.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"status": "failed", "db_check": [{"status": "failed"}]}, status_code=503)
        return JSONResponse(
            {"status": "ok", "master_check": [{"status": "ok"}], "db_check": [{"status": "ok"}]}
        )

    metrics_networks = parse_networks(runtime.settings.metrics_allow_ips)

    @app.get("/-/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        # Outside the allowlist the endpoint does not exist, as an unknown route (GitLab's
        # monitoring IP allowlist).
        if not ip_allowed(request.client.host if request.client else None, metrics_networks):
            return api_errors.json_error(404, {"error": "404 Not Found"})
        return Response(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(alert_notify.router)  # /<project>/alerts/notify/..., before the web UI
    install_web(app)  # last: its project pages match any path the routes above did not
    # Each endpoint's full template, for the metrics' labels (the route object a request matched
    # knows only its path inside its router).
    app.state.route_templates = {
        id(endpoint): path for route in app.router.routes for endpoint, path in full_paths(route)
    }
    # Every route is registered: index them (the router's own scan stays the fallback).
    app.state.routing = app.router.middleware_stack = IndexedRouting(app.router)
    # The OpenAPI document, completed from the routes' code (api/openapi.py).
    openapi.install(app, lambda: [leaf for route in app.router.routes for leaf in full_paths(route)])
    return app


def asgi(runtime: Runtime) -> Any:
    # Git smart HTTP (/<group>/<project>.git/info/refs, .../git-upload-pack, .../git-receive-pack)
    # is served before routing; every other request goes on to the application.
    # RequestMetrics sees every request but the NUL-byte refusals of RawPathIds.
    # Compiled API endpoints are served in ApiLane, before the framework's middleware.
    app = create_app(runtime)
    served = ApiLane(app, GitHTTP(app, runtime), app.state.routing)
    return RawPathIds(RequestMetrics(served, runtime.metrics, app.state.route_templates))


class RedactTokens(logging.Filter):
    """Access-log lines carry query strings; a token passed as ?private_token= must not be logged,
    however its parameter's name is spelled (``private_t%6Fken``, ``PRIVATE_TOKEN``...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.access", "uvicorn.error", "keycrew"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def install_error_handlers(app: FastAPI) -> None:
    # The web UI's pages get HTML error pages; everything else GitLab's JSON.
    @app.exception_handler(errors.KeycrewError)
    async def _domain(request: Request, exc: errors.KeycrewError) -> Response:
        if web_errors.wants_html(request):
            return web_errors.domain_error_page(request, exc)
        return api_errors.to_response(exc)

    @app.exception_handler(BadRequestBody)
    async def _body(_request: Request, exc: BadRequestBody) -> JSONResponse:
        return api_errors.json_error(400, {"error": exc.message})

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        name = str(first.get("loc", ["", "parameter"])[-1])
        return api_errors.json_error(400, {"error": f"{name} is invalid"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if 400 <= exc.status_code < 500 and web_errors.wants_html(request):
            page = web_errors.http_error_page(request, exc.status_code)
            page.headers.update(exc.headers or {})  # a 405's Allow
            return page
        if exc.status_code == 404:
            return api_errors.json_error(404, {"error": "404 Not Found"})
        if exc.status_code == 405:
            return api_errors.json_error(405, {"message": "405 Method Not Allowed"}, dict(exc.headers or {}))
        return api_errors.json_error(exc.status_code, {"message": f"{exc.status_code} {exc.detail}"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        if web_errors.wants_html(request):
            return web_errors.error_page(request, 500, "Something went wrong", "Please try again later.")
        return api_errors.json_error(500, {"message": "500 Internal Server Error"})

    async def _database(request: Request, exc: Exception) -> Response:
        # The database out of reach (a restart, a failover, no free connection): 503, retry later.
        if not is_unavailable(exc):
            return await _unexpected(request, exc)
        connection_lost(request.app.state.runtime.engine)
        log.warning("database unavailable: %s", unavailable_reason(exc))
        unavailable = errors.Unavailable()
        if web_errors.wants_html(request):
            page = web_errors.error_page(request, 503, "Service unavailable", "Please try again shortly.")
            page.headers["Retry-After"] = str(unavailable.retry_after)
            return page
        return api_errors.to_response(unavailable)

    app.add_exception_handler(SQLAlchemyError, _database)
    app.add_exception_handler(psycopg.Error, _database)
