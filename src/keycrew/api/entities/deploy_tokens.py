"""The deploy token entity (GitLab's DeployToken; DeployTokenWithToken adds the value on create)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from keycrew.tokens.models import DeployToken


def expiry(value: dt.date | None) -> str | None:
    """GitLab stores a deploy token's expiry as a timestamp: midnight UTC of the day."""
    return None if value is None else f"{value.isoformat()}T00:00:00.000Z"


def deploy_token(token: DeployToken, today: dt.date, *, token_value: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": token.id,
        "name": token.name,
        "username": token.username,
        "expires_at": expiry(token.expires_at),
        "scopes": list(token.scopes),
        "revoked": token.revoked,
        "expired": token.is_expired(today),
    }
    if token_value is not None:
        data["token"] = token_value
    return data
