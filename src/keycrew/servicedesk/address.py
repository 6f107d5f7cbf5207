"""Service Desk addresses: GitLab's ``incoming_email.address`` with ``%{key}`` filled in.

A project's key is ``<full path slug>-<project id>-issue-`` or, with a project key,
``<full path slug>-<project key>``; a thread's key is the 32 hex digits of a reply key. Pure
functions of the settings: the SMTP receiver checks recipients with them before reading the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import getaddresses

from keycrew.config import Settings

KEY_PLACEHOLDER = "%{key}"
REPLY_KEY = re.compile(r"\A[0-9a-f]{32}\Z")
PROJECT_KEY = re.compile(r"\A[a-z0-9_]+\Z")
SLUG_MAX = 63


@dataclass(frozen=True)
class IncomingAddress:
    """``local``+KEY@``domain`` (``local`` is the part before %{key}, its "+" left out)."""

    local: str
    domain: str

    def format(self, key: str) -> str:
        return f"{self.local}+{key}@{self.domain}"


def incoming_address(settings: Settings) -> IncomingAddress | None:
    """The incoming address's parts, or None when incoming e-mail is not configured (no address,
    or one without %{key} before its @)."""
    address = settings.incoming_email_address.strip()
    if KEY_PLACEHOLDER not in address or "@" not in address:
        return None
    local, _, domain = address.rpartition("@")
    if not local.endswith("+" + KEY_PLACEHOLDER) or not domain or KEY_PLACEHOLDER in domain:
        return None
    base = local[: -len("+" + KEY_PLACEHOLDER)]
    return IncomingAddress(base, domain.lower()) if base else None


def full_path_slug(full_path: str) -> str:
    """GitLab's ``full_path_slug``: lower case, every other character a dash, at most 63, no dash
    at either end."""
    slug = re.sub(r"[^a-z0-9]", "-", full_path.lower())[:SLUG_MAX]
    return slug.strip("-")


def project_key_part(full_path: str, project_id: int, project_key: str | None) -> str:
    slug = full_path_slug(full_path)
    return f"{slug}-{project_key}" if project_key else f"{slug}-{project_id}-issue-"


def key_of(settings: Settings, recipient: str) -> str | None:
    """The key in ``recipient`` if it is one of our incoming addresses, else None."""
    incoming = incoming_address(settings)
    if incoming is None:
        return None
    address = getaddresses([recipient])[0][1] if "<" in recipient else recipient.strip()
    local, sep, domain = address.rpartition("@")
    if not sep or domain.lower() != incoming.domain:
        return None
    prefix = incoming.local + "+"
    if not local.lower().startswith(prefix.lower()) or len(local) == len(prefix):
        return None
    return local[len(prefix) :]


def is_ours(settings: Settings, recipient: str) -> bool:
    """Whether mail to ``recipient`` is for us (an incoming address with a key)."""
    return key_of(settings, recipient) is not None
