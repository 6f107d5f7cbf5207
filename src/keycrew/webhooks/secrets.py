"""The secrets of a hook (its token, URL variables and custom headers), encrypted at rest.

They are sent with every delivery (X-Gitlab-Token, the URL, headers), so they cannot be kept as
digests: AES-256-GCM with a key derived from the instance's secret key, a fresh nonce per value.
"""

from __future__ import annotations

import json
from typing import Any

from keycrew.crypto import seal, unseal

_LABEL = b"keycrew webhook secrets v1"


def encrypt(secret_key: bytes, value: str) -> str:
    return seal(secret_key, _LABEL, value)


def decrypt(secret_key: bytes, stored: str) -> str | None:
    """The value, or None when it cannot be read (the instance secret changed)."""
    return unseal(secret_key, _LABEL, stored)


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
