"""Project and group bots: the users behind project and group access tokens.

GitLab names them ``project_{id}_bot_{32 hex}`` / ``group_{id}_bot_{32 hex}`` with the e-mail
``<username>@noreply.{host}``; the random part keeps a deleted bot's name from ever coming back.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from keycrew.context import Ctx
from keycrew.identity.models import User


def bot_username(ctx: Ctx, kind: str, resource_id: int) -> str:
    """A free username for a new bot of the project or group (``kind`` "project" or "group")."""
    while True:
        candidate = f"{kind}_{resource_id}_bot_{secrets.token_hex(16)}"
        if not ctx.db.scalar(select(User.id).where(User.username_lower == candidate)):
            return candidate


def bot_email(ctx: Ctx, username: str) -> str:
    return f"{username}@noreply.{ctx.instance.host}"
