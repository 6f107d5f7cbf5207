"""Domain errors → HTTP status and GitLab's JSON error bodies, in this one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from keycrew import errors
from keycrew.api.params import BadRequestBody
from keycrew.web import errors as web_errors

log = logging.getLogger("keycrew.api")


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _prefixed(message: str, prefix: str) -> str:
    return message if message.startswith(prefix) else f"{prefix} - {message}" if message else prefix


def to_response(exc: errors.KeycrewError) -> JSONResponse:
    match exc:
        case errors.NotFound():
            return _json(404, {"message": f"404 {exc.thing} Not Found"})
        case errors.Unauthenticated():
            return _json(401, {"message": "401 Unauthorized"})
        case errors.InvalidToken():
            return _json(
                401,
                {"error": "invalid_token", "error_description": exc.message},
                {
                    "WWW-Authenticate": f'Bearer realm="keycrew", error="invalid_token", '
                    f'error_description="{exc.message}"'
                },
            )
        case errors.InsufficientScope():
            return _json(
                403,
                {
                    "error": "insufficient_scope",
                    "error_description": exc.message,
                    "scope": " ".join(exc.scopes),
                },
            )
        case errors.Refused():
            return _json(403, {"message": exc.message or "403 Forbidden"})
        case errors.Forbidden():
            return _json(403, {"message": _prefixed(exc.message, "403 Forbidden")})
        case errors.MissingParameter() | errors.BadParameter():
            return _json(400, {"error": exc.message})
        case errors.Invalid() if exc.errors:
            return _json(400, {"message": exc.errors})
        case errors.Invalid():
            return _json(400, {"message": _prefixed(exc.message, "400 Bad request")})
        case errors.Conflict():
            # GitLab's conflict!(message) renders the message alone.
            return _json(409, {"message": exc.message or "409 Conflict"})
        case errors.Unprocessable():
            return _json(422, {"message": exc.message})
    return _json(400, {"message": _prefixed(exc.message, "400 Bad request")})


def install(app: FastAPI) -> None:
    # The web UI's pages get HTML error pages; everything else GitLab's JSON.
    @app.exception_handler(errors.KeycrewError)
    async def _domain(request: Request, exc: errors.KeycrewError) -> Response:
        if web_errors.wants_html(request):
            return web_errors.domain_error_page(request, exc)
        return to_response(exc)

    @app.exception_handler(BadRequestBody)
    async def _body(_request: Request, _exc: BadRequestBody) -> JSONResponse:
        return _json(400, {"error": "The provided content-type or the request body is not valid JSON"})

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        name = str(first.get("loc", ["", "parameter"])[-1])
        return _json(400, {"error": f"{name} is invalid"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code in (404, 405) and web_errors.wants_html(request):
            return web_errors.http_error_page(request, exc.status_code)
        if exc.status_code == 404:
            return _json(404, {"error": "404 Not Found"})
        if exc.status_code == 405:
            return _json(405, {"message": "405 Method Not Allowed"})
        return _json(exc.status_code, {"message": f"{exc.status_code} {exc.detail}"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
        if web_errors.wants_html(request):
            return web_errors.error_page(request, 500, "Something went wrong", "Please try again later.")
        return _json(500, {"message": "500 Internal Server Error"})
