"""The bodies of an outbox message, rendered from its template when it is delivered or shown.

A template is a pair of files under ``mail/templates``: ``<name>.txt`` (plain text) and
``<name>.html`` (HTML, autoescaped). Both see the message's ``context`` (plain JSON values) and:

- ``site``: ``name`` ("keycrew"), ``host``, ``url`` (the external URL) and ``notifications_url``
  (where a person changes what e-mail they receive);
- ``subject`` and ``recipient`` (the address the message goes to).

An HTML template may be a fragment (the usual case): it is put in the shared layout
(``_layout.html``: the instance's name on top, the footer "You're receiving this e-mail because
of your account on <host>" with a link to the notification settings below). A template that
writes a whole document (``<html``) is sent as it is, or may ``{% extends "_layout.html" %}``
and fill its ``content`` block. The plain-text body gets the same footer (``_footer.txt``).

Undefined variables are errors (StrictUndefined): a message whose template cannot be rendered is
never sent half-filled (the delivery worker gives up on it and says why in the outbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, TemplateError, select_autoescape
from markupsafe import Markup

from keycrew.config import Settings
from keycrew.outbox.models import OutboxMessage
from keycrew.outbox.service import opened

LAYOUT = "_layout.html"
TEXT_FOOTER = "_footer.txt"
# GitLab's page where a person chooses which e-mail they receive.
NOTIFICATIONS_PATH = "/-/profile/notifications"


class RenderError(Exception):
    """The message's template is missing or cannot be rendered with its context."""


@dataclass(frozen=True)
class Site:
    """What every e-mail says about the instance that sent it."""

    name: str
    host: str
    url: str
    # Opens the messages' sealed secrets (keycrew.outbox.service.SEALED): shown as a placeholder
    # unless ``reveal`` (only the delivery reveals them, into the e-mail it sends).
    secret_key: bytes = field(default=b"", repr=False)
    reveal: bool = False

    @property
    def notifications_url(self) -> str:
        return self.url + NOTIFICATIONS_PATH

    @classmethod
    def of(cls, settings: Settings, *, reveal: bool = False) -> Site:
        return cls("keycrew", settings.host_name, settings.external_url, settings.resolved_secret_key, reveal)


@dataclass(frozen=True)
class Rendered:
    text: str
    html: str


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("keycrew.mail", "templates"),
        # HTML templates escape every value; the plain-text ones must not.
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def template_names() -> list[str]:
    """The templates there are (each name with both its files), for the docs and the checks."""
    found = environment().list_templates(extensions=["txt", "html"])
    stems = {name.rsplit(".", 1)[0] for name in found if not name.startswith("_")}
    return sorted(s for s in stems if f"{s}.txt" in found and f"{s}.html" in found)


def values_for(message: OutboxMessage, site: Site) -> dict[str, Any]:
    context = opened(dict(message.context or {}), site.secret_key, reveal=site.reveal)
    return context | {"site": site, "subject": message.subject, "recipient": message.to_address}


def render(message: OutboxMessage, site: Site) -> Rendered:
    """The plain-text and HTML bodies of ``message`` (RenderError if its template fails)."""
    env = environment()
    values = values_for(message, site)
    try:
        text = env.get_template(f"{message.template}.txt").render(values)
        html = env.get_template(f"{message.template}.html").render(values)
        if "<html" not in html[:2000].lower():
            html = env.get_template(LAYOUT).render(values | {"body": Markup(html)})  # noqa: S704 (autoescaped)
        footer = env.get_template(TEXT_FOOTER).render(values)
    except TemplateError as exc:
        raise RenderError(f"template {message.template!r}: {type(exc).__name__}: {exc}") from exc
    return Rendered(text.rstrip() + "\n\n" + footer, html)
