"""Web UI: what every token page's Rotate shares (the new expiry asked for, said back, and a
refused date shown next to its field). The rotation itself is the API's use case."""

from __future__ import annotations

from dataclasses import dataclass

from keycrew.errors import Invalid, KeycrewError
from keycrew.tokens.models import PersonalAccessToken
from keycrew.web.errors import describe
from keycrew.web.templating import date


@dataclass(frozen=True)
class FailedRotation:
    """A rotation refused for its date: the form again, with the date typed and the reason."""

    token: PersonalAccessToken
    action: str
    value: str
    error: str


def expiry_refusal(exc: KeycrewError) -> bool:
    """Whether the use case refused the new expiry (past, beyond the maximum, not a date) rather
    than the rotation itself (token no longer active)."""
    if not isinstance(exc, Invalid):
        return False
    return "expires_at" in exc.errors or exc.message.startswith("Expiration date")


def failed(token: PersonalAccessToken, action: str, raw: str, exc: KeycrewError) -> FailedRotation:
    return FailedRotation(token=token, action=action, value=raw, error=describe(exc))


def rotated_message(lead: str, successor: PersonalAccessToken) -> str:
    """The flash after a rotation: what happened, and the new token's expiry date."""
    if successor.expires_at is None:
        return f"{lead} The new token never expires."
    return f"{lead} The new token expires on {date(successor.expires_at)}."
