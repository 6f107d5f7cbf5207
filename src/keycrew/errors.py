"""The one domain error hierarchy; each adapter maps it to its protocol in one place."""

from __future__ import annotations


class KeycrewError(Exception):
    """Base of every error a use case raises on purpose."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class NotFound(KeycrewError):
    """The object does not exist, or the actor may not know that it does."""

    def __init__(self, thing: str) -> None:
        super().__init__(f"{thing} Not Found")
        self.thing = thing


class Forbidden(KeycrewError):
    """The actor may see the object but not do this to it."""


class Refused(Forbidden):
    """A 403 whose message is shown as is, without "403 Forbidden - " (GitLab's service errors)."""


class Unauthenticated(KeycrewError):
    """No valid credential (unknown, malformed, or not acceptable here)."""


class InvalidToken(KeycrewError):
    """A known token that is expired or revoked (GitLab's OAuth-style 401)."""


class InsufficientScope(KeycrewError):
    def __init__(self, scopes: list[str]) -> None:
        super().__init__("The request requires higher privileges than provided by the access token.")
        self.scopes = scopes


class Invalid(KeycrewError):
    """Input that breaks a rule. ``errors`` maps a field to its messages (GitLab's 400 shape)."""

    def __init__(self, message: str = "", errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}

    @classmethod
    def field(cls, name: str, *messages: str) -> Invalid:
        return cls("", {name: list(messages)})


class MissingParameter(KeycrewError):
    """A required parameter is absent (Grape's ``{"error": "name is missing"}``)."""


class Conflict(KeycrewError):
    """The change conflicts with the current state (409; the message is shown as is, as GitLab's)."""


class Unprocessable(KeycrewError):
    """Understood but cannot be done (422)."""


class BadParameter(KeycrewError):
    """A parameter of the wrong type or value (Grape's ``{"error": "x does not have a valid value"}``)."""
