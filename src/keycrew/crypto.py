"""Keyed digests: what keycrew keeps at rest instead of a secret (token values, session cookies)."""

from __future__ import annotations

import hashlib
import hmac


def digest(secret_key: bytes, value: str) -> str:
    """The keyed digest kept at rest and used for lookup (one indexed equality query)."""
    return hmac.new(secret_key, value.encode(), hashlib.sha256).hexdigest()
