"""Web UI: what every token page's Rotate shares (the new expiry asked for, said back, and a
refused date shown next to its field). The rotation itself is the API's use case."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from keycrew.context import Ctx
from keycrew.errors import Invalid, KeycrewError
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.succession import rotation_choices
from keycrew.web.templating import date
from keycrew.web.token_forms import FormErrors


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


def checked_expiry(ctx: Ctx, raw: str) -> tuple[dt.date | None, str | None]:
    """The new expiry typed (None: left empty, the API's default), and what is wrong with it in the
    form's words (not a date, in the past, today, beyond the maximum), before the use case is
    asked; the use case still decides."""
    choices = rotation_choices(ctx)
    found = FormErrors()
    value = found.check_expiry(raw, earliest=choices.earliest, latest=choices.latest, today=ctx.today())
    return value, found.get("expires_at")


def failed(token: PersonalAccessToken, action: str, raw: str, refusal: KeycrewError | str) -> FailedRotation:
    """The form again: the date typed and the reason (the web layer's own, or the use case's in
    the form's words)."""
    if isinstance(refusal, str):
        return FailedRotation(token=token, action=action, value=raw, error=refusal)
    found = FormErrors()
    found.refusal(refusal)
    error = found.get("expires_at") or " ".join(found.general)
    return FailedRotation(token=token, action=action, value=raw, error=error)


def rotated_message(lead: str, successor: PersonalAccessToken) -> str:
    """The flash after a rotation: what happened, and the new token's expiry date."""
    if successor.expires_at is None:
        return f"{lead} The new token never expires."
    return f"{lead} The new token expires on {date(successor.expires_at)}."
