"""Domain errors → HTTP status and GitLab's JSON error bodies, in this one place.

The domain's messages are plain ("The user is blocked", or empty); GitLab's wording (its status
line, "403 Forbidden - The user is blocked") is added here and nowhere else.
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from keycrew import errors

log = logging.getLogger("keycrew.api")

# Each kind of domain error (its code): the HTTP status and GitLab's status line, which starts
# GitLab's messages. A kind not named here is its parent's (adapters' own errors: a 400).
STATUS: dict[str, tuple[int, str]] = {
    errors.NotFound.code: (404, "404 Not Found"),
    errors.Unauthenticated.code: (401, "401 Unauthorized"),
    errors.InvalidToken.code: (401, "401 Unauthorized"),
    errors.InsufficientScope.code: (403, "403 Forbidden"),
    errors.Forbidden.code: (403, "403 Forbidden"),
    errors.Refused.code: (403, "403 Forbidden"),
    errors.Invalid.code: (400, "400 Bad request"),
    errors.Rejected.code: (400, "400 Bad request"),
    errors.MissingParameter.code: (400, "400 Bad request"),
    errors.BadParameter.code: (400, "400 Bad request"),
    errors.Conflict.code: (409, "409 Conflict"),
    errors.Unprocessable.code: (422, "422 Unprocessable Entity"),
    errors.RateLimited.code: (429, "429 Too Many Requests"),
    errors.Unavailable.code: (503, "503 Service Unavailable"),
}
BAD_REQUEST = (400, "400 Bad request")
# Error bodies are JSON: never to be sniffed as anything else.
NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def json_error(status: int, body: object, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers={**NOSNIFF, **(headers or {})})


def _status(exc: errors.KeycrewError) -> tuple[int, str]:
    for kind in type(exc).__mro__:
        if (found := STATUS.get(vars(kind).get("code", ""))) is not None:
            return found
    return BAD_REQUEST


def status_line(exc: errors.KeycrewError) -> str:
    return _status(exc)[1]


def gitlab_message(exc: errors.KeycrewError) -> str:
    """GitLab's ``message`` for ``exc``: the status line, then the reason if there is one
    ("403 Forbidden - reason", as forbidden! and bad_request!); the reason alone for what GitLab
    renders as is (its service errors, conflict!); "404 Project Not Found"; "401 Unauthorized"."""
    line = status_line(exc)
    match exc:
        case errors.FeatureDisabled():
            return line
        case errors.NotFound():
            # A thing unnamed: GitLab's service errors' bare "Not Found" (a group share refused).
            return f"404 {exc.thing} Not Found" if exc.thing else "Not Found"
        case errors.Unauthenticated():
            return line
        case errors.Refused() | errors.Conflict() | errors.Rejected():
            return exc.message or line
    return f"{line} - {exc.message}" if exc.message else line


def reason(exc: errors.KeycrewError) -> str:
    """One refusal inside a larger answer (a bulk add's "username: reason"): the message, or the
    status line when the domain gives none."""
    return exc.message or status_line(exc)


def to_response(exc: errors.KeycrewError) -> Response:
    match exc:
        case errors.RateLimited():
            # Rack::Attack's throttled response: plain text, GitLab's rate_limiting_response_text.
            return PlainTextResponse("Retry later\n", status_code=429, headers=exc.headers)
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
        case errors.MissingParameter() | errors.BadParameter():
            return json_error(400, {"error": exc.message})
        case errors.Invalid() if exc.errors:
            return json_error(400, {"message": exc.errors})
        case errors.Unavailable():
            return json_error(503, {"message": gitlab_message(exc)}, {"Retry-After": str(exc.retry_after)})
    return json_error(_status(exc)[0], {"message": gitlab_message(exc)})
