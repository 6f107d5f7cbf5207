"""Credentials in query strings: which parameters carry one, and text with their values hidden.

A parameter carries a credential when its name, once percent-decoded (repeatedly: ``%256F`` is an
encoded ``%6F``) and lower-cased, ends with ``token`` (private_token, access_token, job_token,
feed_token, ...) or names a password or a secret. Log lines are redacted on what the name means,
not on how it was spelled, so that ``private_t%6Fken=...`` is hidden as well as ``private_token=...``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

FILTERED = "[FILTERED]"
# name=value pairs as they appear in a query string inside any text (a log line, a URL).
_PAIR = re.compile(r"(?P<name>[^\s?&;=\"']+)=(?P<value>[^&\s\"']*)")
_DECODE_ROUNDS = 4


def _decoded(name: str) -> str:
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    return name.strip().rstrip("[]").lower()


def credential_parameter(name: str) -> bool:
    """Whether a query parameter of this name (encoded or not, any case) carries a credential."""
    decoded = _decoded(name)
    return decoded.endswith("token") or "password" in decoded or "secret" in decoded


def _hide(match: re.Match[str]) -> str:
    if credential_parameter(match.group("name")):
        return f"{match.group('name')}={FILTERED}"
    return match.group(0)


def redact(text: str) -> str:
    """``text`` with the value of every credential-bearing ``name=value`` pair replaced."""
    if "=" not in text:
        return text
    return _PAIR.sub(_hide, text)
