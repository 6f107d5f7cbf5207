"""The web UI's cookies: the session, CSRF tokens bound to it, and one-shot encrypted flashes.

- ``_keycrew_session`` names a server-side session (identity/sign_in.py keeps only its digest).
- Before sign-in, ``_keycrew_csrf`` holds a random value that the sign-in form's CSRF token is
  bound to; after sign-in the CSRF token is bound to the session instead. Either way the token a
  form carries is an HMAC of that cookie under the server secret: a page on another site can
  neither read it nor compute it (the synchronizer-token pattern without server-side state).
- ``_keycrew_flash`` carries one message to the page a form redirects to, and on the page that
  follows the creation of a token, that token's value: so that a reload, which never re-posts,
  shows it no more. The cookie is AES-GCM encrypted under a key derived from the server secret,
  bound to the session it was made in, lives a minute, and is cleared by the page that reads it.
  The server keeps nothing: the value exists only in the response and in the browser.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SESSION_COOKIE = "_keycrew_session"
CSRF_COOKIE = "_keycrew_csrf"
FLASH_COOKIE = "_keycrew_flash"
CSRF_FIELD = "authenticity_token"  # Rails' name, as GitLab's forms use
CSRF_HEADER = "x-csrf-token"
FLASH_LIFETIME = 60  # seconds
# What every response of the web UI carries, its error pages and redirects included.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _key(secret_key: bytes, purpose: str) -> bytes:
    return hmac.new(secret_key, f"keycrew web {purpose}".encode(), hashlib.sha256).digest()


def new_csrf_seed() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(secret_key: bytes, binding: str) -> str:
    """The token forms carry: an HMAC of the session (or pre-session) cookie value."""
    mac = hmac.new(_key(secret_key, "csrf"), binding.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def csrf_valid(secret_key: bytes, binding: str | None, presented: str | None) -> bool:
    if not binding or not presented:
        return False
    return hmac.compare_digest(csrf_token(secret_key, binding), presented)


@dataclass(frozen=True)
class Flash:
    """One message for the next page: ``kind`` notice or alert, and optionally a new secret."""

    kind: str
    message: str
    secret: str | None = None
    # For deploy tokens: the username that goes with the secret.
    username: str | None = None

    def __repr__(self) -> str:  # never print the secret by accident
        return f"Flash({self.kind!r}, {self.message!r})"


def seal_flash(secret_key: bytes, binding: str, flash: Flash) -> str:
    payload = json.dumps(
        {
            "k": flash.kind,
            "m": flash.message,
            "s": flash.secret,
            "u": flash.username,
            "t": int(time.time()),
        }
    ).encode()
    nonce = os.urandom(12)
    sealed = AESGCM(_key(secret_key, "flash")).encrypt(nonce, payload, binding.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_flash(secret_key: bytes, binding: str | None, sealed: str | None) -> Flash | None:
    """The flash a cookie carries, or None when absent, tampered with, stale or made elsewhere."""
    if not sealed or not binding or len(sealed) > 4096:
        return None
    try:
        raw = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        payload: dict[str, Any] = json.loads(
            AESGCM(_key(secret_key, "flash")).decrypt(raw[:12], raw[12:], binding.encode())
        )
    except (InvalidTag, ValueError, binascii.Error):
        return None
    if abs(time.time() - int(payload.get("t", 0))) > FLASH_LIFETIME:
        return None
    return Flash(str(payload["k"]), str(payload["m"]), payload.get("s"), payload.get("u"))


def safe_redirect_target(target: str | None, default: str = "/") -> str:
    """A local path to go to after sign-in; anything that could leave the site becomes ``default``."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or "\n" in target:
        return default
    if target.startswith("/users/sign_"):
        return default
    return target
