"""Keyed digests: what keycrew keeps at rest instead of a secret (token values, session cookies);
and sealing: the few secrets keycrew must use again (a hook's token, a link in an e-mail not yet
sent), encrypted at rest with AES-256-GCM under a key derived from the instance's secret key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def digest(secret_key: bytes, value: str) -> str:
    """The keyed digest kept at rest and used for lookup (one indexed equality query)."""
    return hmac.new(secret_key, value.encode(), hashlib.sha256).hexdigest()


def _sealing_key(secret_key: bytes, label: bytes) -> bytes:
    return hashlib.sha256(label + b"\0" + secret_key).digest()


def seal(secret_key: bytes, label: bytes, value: str) -> str:
    """``value`` encrypted for ``label`` (its purpose: a key of its own), a fresh nonce each time."""
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_sealing_key(secret_key, label)).encrypt(nonce, value.encode(), label)
    return base64.b64encode(nonce + sealed).decode()


def unseal(secret_key: bytes, label: bytes, stored: str) -> str | None:
    """The value sealed for ``label``, or None when it cannot be read (the secret key changed)."""
    try:
        raw = base64.b64decode(stored)
        return AESGCM(_sealing_key(secret_key, label)).decrypt(raw[:12], raw[12:], label).decode()
    except (InvalidTag, ValueError):
        return None
