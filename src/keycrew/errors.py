"""The one domain error hierarchy; each adapter maps it to its protocol in one place.

Every error has a stable machine ``code`` (a class attribute) and a plain ``message``: what went
wrong in words, with no protocol wording (no "403 Forbidden - ", no status code), and empty when
there is nothing to add to the kind of error. The adapters word it: ``api/errors.py`` as GitLab's
status line and JSON body, ``web/errors.py`` as a sentence for people, ``cli.py`` as a line on
stderr and an exit code.
"""

from __future__ import annotations

from typing import ClassVar


class KeycrewError(Exception):
    """Base of every error a use case raises on purpose."""

    code: ClassVar[str] = "error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class NotFound(KeycrewError):
    """The object does not exist, or the actor may not know that it does."""

    code = "not_found"

    def __init__(self, thing: str) -> None:
        super().__init__(f"{thing} Not Found")
        self.thing = thing


class FeatureDisabled(NotFound):
    """A feature the instance has not turned on (GitLab's bare ``not_found!``: "404 Not Found")."""

    def __init__(self) -> None:
        super().__init__("")


class Forbidden(KeycrewError):
    """The actor may see the object but not do this to it; the message, if any, says why."""

    code = "forbidden"


class Refused(Forbidden):
    """A Forbidden whose message is a whole sentence meant to be shown alone, where a Forbidden's
    reason follows the adapter's own words (GitLab: its service errors' bare message, against
    forbidden!'s "403 Forbidden - reason")."""

    code = "refused"


class Unauthenticated(KeycrewError):
    """No valid credential (unknown, malformed, or not acceptable here)."""

    code = "unauthenticated"


class InvalidToken(KeycrewError):
    """A known token that is expired or revoked (GitLab's OAuth-style 401)."""

    code = "invalid_token"


class InsufficientScope(KeycrewError):
    code = "insufficient_scope"

    def __init__(self, scopes: list[str]) -> None:
        super().__init__("The request requires higher privileges than provided by the access token.")
        self.scopes = scopes


class Invalid(KeycrewError):
    """Input that breaks a rule. ``errors`` maps a field to its messages (GitLab's 400 shape)."""

    code = "invalid"

    def __init__(self, message: str = "", errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}

    @classmethod
    def field(cls, name: str, *messages: str) -> Invalid:
        return cls("", {name: list(messages)})


class Rejected(Invalid):
    """An Invalid whose message is a whole sentence shown alone (GitLab's ``render_api_error!(m,
    400)``: "Transfer failed: ..."), where an Invalid's follows the adapter's own words."""

    code = "rejected"


class MissingParameter(KeycrewError):
    """A required parameter is absent (Grape's ``{"error": "name is missing"}``)."""

    code = "missing_parameter"


class Conflict(KeycrewError):
    """The change conflicts with the current state (409; the message is shown as is, as GitLab's)."""

    code = "conflict"


class Unprocessable(KeycrewError):
    """Understood but cannot be done (422)."""

    code = "unprocessable"


class BadParameter(KeycrewError):
    """A parameter of the wrong type or value (Grape's ``{"error": "x does not have a valid value"}``)."""

    code = "bad_parameter"


class RateLimited(KeycrewError):
    """Too many requests (429, GitLab's plain "Retry later"); ``headers`` are the throttle's
    ``RateLimit-*`` and ``Retry-After``."""

    code = "rate_limited"

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        super().__init__("Retry later")
        self.headers = headers or {}


class Unavailable(KeycrewError):
    """The database cannot be reached for now (503 with ``Retry-After``: a restart, a failover, a
    pool with no free connection); the request may be sent again."""

    code = "unavailable"

    def __init__(self, retry_after: int = 5) -> None:
        super().__init__("")
        self.retry_after = retry_after
