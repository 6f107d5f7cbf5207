"""Domain errors → HTTP status and GitLab's JSON error bodies, in this one place."""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse

from keycrew import errors

log = logging.getLogger("keycrew.api")


def json_error(status: int, body: object, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _prefixed(message: str, prefix: str) -> str:
    return message if message.startswith(prefix) else f"{prefix} - {message}" if message else prefix


def to_response(exc: errors.KeycrewError) -> JSONResponse:
    match exc:
        case errors.NotFound():
            return json_error(404, {"message": f"404 {exc.thing} Not Found"})
        case errors.Unauthenticated():
            return json_error(401, {"message": "401 Unauthorized"})
        case errors.InvalidToken():
            return json_error(
                401,
                {"error": "invalid_token", "error_description": exc.message},
                {
                    "WWW-Authenticate": f'Bearer realm="keycrew", error="invalid_token", '
                    f'error_description="{exc.message}"'
                },
            )
        case errors.InsufficientScope():
            return json_error(
                403,
                {
                    "error": "insufficient_scope",
                    "error_description": exc.message,
                    "scope": " ".join(exc.scopes),
                },
            )
        case errors.Refused():
            return json_error(403, {"message": exc.message or "403 Forbidden"})
        case errors.Forbidden():
            return json_error(403, {"message": _prefixed(exc.message, "403 Forbidden")})
        case errors.MissingParameter() | errors.BadParameter():
            return json_error(400, {"error": exc.message})
        case errors.Invalid() if exc.errors:
            return json_error(400, {"message": exc.errors})
        case errors.Invalid():
            return json_error(400, {"message": _prefixed(exc.message, "400 Bad request")})
        case errors.Conflict():
            # GitLab's conflict!(message) renders the message alone.
            return json_error(409, {"message": exc.message or "409 Conflict"})
        case errors.Unprocessable():
            return json_error(422, {"message": exc.message})
    return json_error(400, {"message": _prefixed(exc.message, "400 Bad request")})
