"""The secrets of a hook (its token, URL variables and custom headers), encrypted at rest.

They are sent with every delivery (X-Gitlab-Token, the URL, headers), so they cannot be kept as
digests: AES-256-GCM with a key derived from the instance's secret key, a fresh nonce per value.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_LABEL = b"keycrew webhook secrets v1"


def _key(secret_key: bytes) -> bytes:
    return hashlib.sha256(_LABEL + b"\0" + secret_key).digest()


def encrypt(secret_key: bytes, value: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_key(secret_key)).encrypt(nonce, value.encode(), _LABEL)
    return base64.b64encode(nonce + sealed).decode()


def decrypt(secret_key: bytes, stored: str) -> str | None:
    """The value, or None when it cannot be read (the instance secret changed)."""
    try:
        raw = base64.b64decode(stored)
        return AESGCM(_key(secret_key)).decrypt(raw[:12], raw[12:], _LABEL).decode()
    except (InvalidTag, ValueError):
        return None


def encrypt_map(secret_key: bytes, values: dict[str, str]) -> str | None:
    return encrypt(secret_key, json.dumps(values, sort_keys=True)) if values else None


def decrypt_map(secret_key: bytes, stored: str | None) -> dict[str, str]:
    if not stored:
        return {}
    text = decrypt(secret_key, stored)
    if text is None:
        return {}
    loaded: Any = json.loads(text)
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
