"""Token values: a kind prefix, 192 random bits and a CRC32 checksum; stored only as an HMAC digest."""

from __future__ import annotations

import hmac
import secrets
import zlib

from keycrew.crypto import digest as digest

PAT_PREFIX = "glpat-"
DEPLOY_PREFIX = "gldt-"

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_BYTES = 24  # 192 bits, above the 160 the design asks for
_BODY_LEN = 33  # 62**33 > 2**192
_CHECKSUM_LEN = 6  # 62**6 > 2**32


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode()), _CHECKSUM_LEN)


def full_prefix(kind_prefix: str, instance_prefix: str = "") -> str:
    """What every token of a kind starts with: the instance prefix, if any, then the kind's
    ("acme-glpat-"); GitLab's personal_access_token_prefix."""
    return f"{instance_prefix}{kind_prefix}"


def generate(kind_prefix: str, instance_prefix: str = "") -> str:
    """A new token value. It exists only in the caller's hands: never store or log it."""
    body = _base62(int.from_bytes(secrets.token_bytes(_RANDOM_BYTES), "big"), _BODY_LEN)
    head = full_prefix(kind_prefix, instance_prefix) + body
    return head + _checksum(head)


def has_valid_checksum(value: str) -> bool:
    """Whether ``value`` is shaped like a token keycrew issued (offline check for scanners)."""
    if len(value) < _BODY_LEN + _CHECKSUM_LEN:
        return False
    head, check = value[:-_CHECKSUM_LEN], value[-_CHECKSUM_LEN:]
    return hmac.compare_digest(_checksum(head), check)
