"""Web UI: what every token create form shares: its fields checked before the use case is called
(every problem at once, in people's words, each tied to its field), the use case's own refusal
placed by the field it concerns, and the roles a project or group token may have, described.

The use case stays the final word: these checks only say early, and all together, what it would
refuse one at a time; whatever passes them still goes through it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from keycrew import errors
from keycrew.access.levels import AccessLevel
from keycrew.web.errors import describe
from keycrew.web.templating import date

NAME_MAX = 255

# The form's words for the API's parameters: no parameter name ever reaches the page.
LABELS = {
    "name": "Token name",
    "description": "Description",
    "expires_at": "Expiration date",
    "scopes": "Scopes",
    "access_level": "Role",
    "username": "Username",
}

# What a project or group token's bot may do with each role, in keycrew's terms.
ROLE_HINTS = {
    AccessLevel.GUEST: "Sees the {kind} and its issues; cannot read private code or packages.",
    AccessLevel.PLANNER: "As Guest, and plans the work: issues, labels and milestones. No code.",
    AccessLevel.REPORTER: "Reads the code: clones the repository, pulls packages and container images.",
    AccessLevel.DEVELOPER: "Pushes to unprotected branches, publishes packages and container images.",
    AccessLevel.MAINTAINER: (
        "Manages the {kind}: protected branches, members, webhooks, deploy and access tokens."
    ),
    AccessLevel.OWNER: "Everything, including renaming, transferring and deleting the {kind}.",
}


def role_choices(
    levels: tuple[AccessLevel, ...] | list[AccessLevel], kind: str
) -> list[tuple[int, str, str]]:
    """(value, role, what it may do) for each role the caller may give, lowest first."""
    return [(int(level), level.label, ROLE_HINTS[level].format(kind=kind)) for level in levels]


def past() -> str:
    return "Expiration date can't be in the past"


def too_late(latest: dt.date) -> str:
    return f"Expiration date can't be later than {date(latest)}"


def maximum_hint(latest: dt.date) -> str:
    return f"Maximum: {date(latest)}"


@dataclass
class FormErrors:
    """A form's problems: at most one per field (the first found), and those of no field."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, message)

    def get(self, name: str) -> str | None:
        return self.fields.get(name)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def messages(self, order: tuple[str, ...] = tuple(LABELS)) -> list[tuple[str | None, str]]:
        """(field or None, message): the general ones first, then the fields in the form's order."""
        ranked = sorted(self.fields, key=lambda name: order.index(name) if name in order else len(order))
        return [(None, message) for message in self.general] + [(name, self.fields[name]) for name in ranked]

    # -- the checks made before the use case ------------------------------------------------

    def check_name(self, value: str, label: str = LABELS["name"]) -> None:
        if not value.strip():
            self.add("name", f"{label} can't be blank")
        elif len(value) > NAME_MAX:
            self.add("name", f"{label} is too long (at most {NAME_MAX} characters)")

    def check_expiry(
        self,
        raw: str,
        *,
        earliest: dt.date,
        latest: dt.date | None,
        today: dt.date | None = None,
        required: bool = False,
    ) -> dt.date | None:
        """The date typed (None when left empty: allowed unless ``required``, the use case then
        applies its default); a problem with it, in the form's words.
        ``earliest`` is the first date accepted; a date before ``today`` (default: ``earliest``)
        is "in the past", one from today to ``earliest`` must be later."""
        if not raw.strip():
            if required:
                self.add("expires_at", "Expiration date can't be blank")
            return None
        try:
            value = dt.date.fromisoformat(raw.strip())
        except ValueError:
            self.add("expires_at", "Expiration date isn't a valid date: use YYYY-MM-DD")
            return None
        if value < (today or earliest):
            self.add("expires_at", past())
        elif value < earliest:
            self.add("expires_at", f"Expiration date must be {date(earliest)} or later")
        elif latest is not None and value > latest:
            self.add("expires_at", too_late(latest))
        return value

    def check_scopes(self, scopes: list[str]) -> None:
        if not scopes:
            self.add("scopes", "Select at least one scope")

    # -- the use case's refusal ---------------------------------------------------------------

    def refusal(self, exc: errors.KeycrewError) -> None:
        """The use case's reason, next to the field it concerns, or at the top."""
        placed = _placed(exc)
        if not placed:
            self.general.append(describe(exc).rstrip("."))
        for name, message in placed:
            if name is None:
                self.general.append(message)
            else:
                self.add(name, message)


_DATE_AT_END = re.compile(r"(\d{4}-\d{2}-\d{2})\.?$")


def _expiry_words(message: str) -> str:
    """The domain's date refusals ("can't be before today", "must be in the future", "must be
    before 2027-12-07") in the form's words."""
    if "before today" in message or "in the future" in message or "in the past" in message:
        return past()
    found = _DATE_AT_END.search(message)
    if found and ("before" in message or "later" in message or "after" in message):
        return too_late(dt.date.fromisoformat(found.group(1)))
    return f"Expiration date {message}".rstrip(".")


def _field_words(name: str, message: str) -> str:
    if name == "expires_at":
        return _expiry_words(message)
    if name == "scopes":
        if "missing" in message or "blank" in message or "empty" in message:
            return "Select at least one scope"
        return "Scopes: one of them can't be given to this token"
    if name == "access_level":
        return "Role: choose one of the roles listed"
    if name == "name" and ("missing" in message or "empty" in message or "blank" in message):
        return f"{LABELS['name']} can't be blank"
    return f"{LABELS[name]} {message}".rstrip(".")


def _placed(exc: errors.KeycrewError) -> list[tuple[str | None, str]]:
    """(field, message) for each field the refusal names (None: a field the form has not, said at
    the top); empty when it names none."""
    if isinstance(exc, errors.Invalid) and exc.errors:
        return [
            (name, _field_words(name, messages[0]))
            if name in LABELS
            else (None, describe(errors.Invalid.field(name, *messages)).rstrip("."))
            for name, messages in exc.errors.items()
            if messages
        ]
    message = exc.message
    if isinstance(exc, errors.MissingParameter | errors.BadParameter):
        name, _, rest = message.partition(" ")
        if name in LABELS:
            return [(name, _field_words(name, rest))]
        return []
    if isinstance(exc, errors.Invalid):
        if message.startswith("Expiration date"):
            return [("expires_at", _expiry_words(message.removeprefix("Expiration date ")))]
        if message.startswith("Access level of the token"):
            return [("access_level", "Role can't be higher than your own role here")]
    return []
