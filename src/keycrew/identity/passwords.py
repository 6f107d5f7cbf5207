"""Password hashing with argon2id."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's recommended argon2id floor (19 MiB, 2 passes, 1 lane): about 25 ms here, where the
# library's default profile (64 MiB, 3 passes, 4 lanes) costs 200 ms on a 2-core machine.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


@cache
def _dummy() -> str:
    """Verified against when the user has no password, so that timing does not tell the difference.
    Made on first use: every process would otherwise pay for a hash at import."""
    return _hasher.hash("keycrew-dummy-password")


MIN_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def needs_rehash(digest: str) -> bool:
    """Whether a stored digest was made with other parameters (re-hash it at the next sign-in)."""
    try:
        return _hasher.check_needs_rehash(digest)
    except InvalidHashError:
        return True


def verify_password(digest: str | None, password: str) -> bool:
    try:
        return _hasher.verify(digest or _dummy(), password) and digest is not None
    except (VerificationError, InvalidHashError):
        return False
