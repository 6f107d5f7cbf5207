"""Domain errors → HTML pages and readable sentences, in this one place for the web UI."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from keycrew import errors
from keycrew.web.deps import CsrfRefused, FormTooLarge, SignInRequired, UnstorableText
from keycrew.web.security import CSRF_FIELD, SECURITY_HEADERS
from keycrew.web.templating import render_template

# Paths that belong to machines, never to the UI: their errors stay JSON (or git's own).
MACHINE_PREFIXES = ("/api/", "/jwt/", "/-/health", "/-/readiness", "/-/liveness", "/-/openapi", "/-/docs")


def _humanize(field: str) -> str:
    return field.replace("_", " ").capitalize()


def _sentence(field: str, message: str) -> str:
    # "base" errors are about the whole record (Rails' convention): they read without a field name.
    text = message[:1].upper() + message[1:] if field == "base" else f"{_humanize(field)} {message}"
    return text if text.endswith((".", "!", "?")) else text + "."


def describe(exc: errors.KeycrewError) -> str:
    """One readable sentence for a person, from any domain error."""
    if isinstance(exc, errors.Invalid) and exc.errors:
        return " ".join(
            _sentence(name, message) for name, messages in exc.errors.items() for message in messages
        )
    if isinstance(exc, errors.NotFound):
        return f"{exc.thing} not found."
    message = exc.message
    if isinstance(exc, errors.MissingParameter | errors.BadParameter):
        # Grape's wording ("scopes is missing") reads as a form's.
        message = message.replace("does not have a valid value", "is not valid").replace(
            "is missing", "is required"
        )
        message = _humanize(message)
    if not message:
        # The domain gave no reason: the kind of error says it.
        return (
            "You are not allowed to do that." if isinstance(exc, errors.Forbidden) else "That cannot be done."
        )
    return message if message.endswith((".", "!", "?")) else message + "."


def status_of(exc: errors.KeycrewError) -> int:
    match exc:
        # The UI hides what a visitor may not manage (GitLab answers 404 in its UI as well).
        case errors.NotFound() | errors.Unauthenticated():
            return 404
        case errors.Forbidden() | errors.InsufficientScope():
            return 403
        case errors.Conflict():
            return 409
        case errors.Unprocessable():
            return 422
    return 400


def wants_html(request: Request) -> bool:
    """Whether an error on this request is for a person (UI paths), not for a machine."""
    if getattr(request.state, "web_page", None) is not None:
        return True
    path = request.url.path
    return not path.startswith(MACHINE_PREFIXES) and "text/html" in request.headers.get("accept", "")


def _viewer(request: Request) -> tuple[Any, str]:
    """Who the header shows, and the sign-out form's CSRF token (nobody, when not signed in)."""
    page = getattr(request.state, "web_page", None)
    if page is None or page.viewer is None:
        return None, ""
    return page.viewer, page.csrf


def error_page(request: Request, status: int, heading: str, message: str) -> HTMLResponse:
    viewer, csrf = _viewer(request)
    body = render_template(
        "error.html",
        {
            "request": request,
            "path": request.url.path,
            "current_user": viewer,
            "csrf_field": CSRF_FIELD,
            "csrf": csrf,
            "flash": None,
            "title": heading,
            "status": status,
            "heading": heading,
            "message": message,
        },
    )
    # The headers are set here too: a 500 page is made outside the UI's middleware.
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store", **SECURITY_HEADERS})


HEADINGS = {
    400: "That did not work",
    403: "Access denied",
    404: "Page not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    422: "That did not work",
    500: "Something went wrong",
}


def domain_error_page(request: Request, exc: errors.KeycrewError) -> HTMLResponse:
    status = status_of(exc)
    if status == 404:
        message = "The page could not be found, or you do not have permission to see it."
    else:
        message = describe(exc)
    return error_page(request, status, HEADINGS.get(status, "Error"), message)


def http_error_page(request: Request, status: int) -> HTMLResponse:
    messages = {
        404: "The page could not be found, or you do not have permission to see it.",
        405: "This page does not take that kind of request.",
    }
    return error_page(
        request, status, HEADINGS.get(status, "Error"), messages.get(status, "Please try again.")
    )


def sign_in_required(_request: Request, exc: SignInRequired) -> Response:
    return RedirectResponse(exc.location(), status_code=303)


def csrf_refused(request: Request, _exc: CsrfRefused) -> HTMLResponse:
    return error_page(
        request,
        403,
        "The form could not be verified",
        "It was not sent from a page of this site, or the page was too old. Reload the page and try again.",
    )


def form_too_large(request: Request, _exc: FormTooLarge) -> HTMLResponse:
    return error_page(request, 413, HEADINGS[413], "The form sent more than this site accepts.")


def unstorable_text(request: Request, _exc: UnstorableText) -> HTMLResponse:
    return error_page(request, 400, HEADINGS[400], "The form holds characters this site cannot store.")
