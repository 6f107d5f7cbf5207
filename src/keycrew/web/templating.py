"""Jinja2 templates of the web UI, with the filters the pages share."""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from keycrew.access.levels import AccessLevel
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.web.security import CSRF_FIELD

# The CSRF token of the page being rendered: macros imported without the template's context
# (Jinja's default for imports) still put it in their forms.
_csrf: ContextVar[str] = ContextVar("keycrew_web_csrf", default="")


def current_csrf() -> str:
    return _csrf.get()


LEVEL_NAMES = {
    0: "No access",
    5: "Minimal access",
    10: "Guest",
    15: "Planner",
    20: "Reporter",
    30: "Developer",
    40: "Maintainer",
    50: "Owner",
}


def level_name(level: int | None) -> str:
    return LEVEL_NAMES.get(int(level or 0), str(level))


def date(value: dt.date | dt.datetime | str | None, empty: str = "Never") -> str:
    if value is None or value == "":
        return empty
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).date()
    return f"{value:%b} {value.day}, {value.year}"


def moment(value: dt.datetime | None, empty: str = "Never") -> str:
    if value is None:
        return empty
    value = value.astimezone(dt.UTC)
    return f"{date(value)} {value:%H:%M} UTC"


def iso(value: dt.date | dt.datetime | None) -> str:
    return "" if value is None else value.isoformat()


def badges(user: User) -> list[tuple[str, str]]:
    """The (label, css modifier) badges a user listing shows beside a name."""
    found: list[tuple[str, str]] = []
    kind = user.type
    if kind is UserType.SERVICE_ACCOUNT:
        found.append(("Service account", "service"))
    elif kind.is_internal:
        found.append(("Internal", "internal"))
        if kind.is_bot:
            found.append(("Bot", "bot"))
    elif kind.is_bot:
        found.append(("Bot", "bot"))
    if user.admin and kind is UserType.HUMAN:
        found.append(("Admin", "admin"))
    if user.state != "active":
        found.append((user.state.replace("_", " ").capitalize(), "state"))
    return found


Crumb = tuple[str, str | None]


def path_crumbs(kind: str, full_path: str, personal: bool = False) -> list[Crumb]:
    """Breadcrumbs down to a group or project: each ancestor group, then the thing itself.

    ``kind`` is "group" or "project"; ``personal`` says a project lives in a user's namespace,
    whose crumb leads to that user's activity.
    """
    parts = full_path.split("/")
    crumbs: list[Crumb] = []
    for depth, part in enumerate(parts[:-1], start=1):
        prefix = "/".join(parts[:depth])
        href = f"/users/{prefix}/activity" if personal and depth == 1 else f"/groups/{prefix}"
        crumbs.append((part, href))
    crumbs.append((parts[-1], f"/groups/{full_path}" if kind == "group" else f"/{full_path}"))
    return crumbs


def project_crumbs(project: Any) -> list[Crumb]:
    """The crumbs of a project (an ORM project or a row with ``full_path`` and its namespace)."""
    namespace = getattr(project, "namespace", None)
    personal = getattr(namespace, "kind", "group") == "user"
    return path_crumbs("project", project.full_path, personal)


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("keycrew.web", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["level_name"] = level_name
    env.filters["date"] = date
    env.filters["moment"] = moment
    env.filters["iso"] = iso
    env.globals["badges"] = badges
    env.globals["path_crumbs"] = path_crumbs
    env.globals["project_crumbs"] = project_crumbs
    env.globals["AccessLevel"] = AccessLevel
    env.globals["current_csrf"] = current_csrf
    env.globals["csrf_field_name"] = CSRF_FIELD
    return env


def render_template(name: str, values: dict[str, Any]) -> str:
    reset = _csrf.set(str(values.get("csrf", "")))
    try:
        return environment().get_template(name).render(values)
    finally:
        _csrf.reset(reset)
