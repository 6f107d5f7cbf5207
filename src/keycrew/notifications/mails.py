"""The e-mails about tokens: GitLab's subjects, our own bodies (templates in keycrew/mail/templates),
and what each one is told. A context holds names, dates and links, never a token's value."""

from __future__ import annotations

import datetime as dt
from typing import Any

from keycrew.context import Ctx
from keycrew.identity.models import User
from keycrew.namespaces.models import Namespace, Project
from keycrew.outbox.models import OutboxMessage
from keycrew.outbox.service import enqueue
from keycrew.tokens.models import PersonalAccessToken

# Templates (each a .txt and an .html under keycrew/mail/templates), named after GitLab's mailers.
ABOUT_TO_EXPIRE = "access_token_about_to_expire"
BOT_ABOUT_TO_EXPIRE = "bot_resource_access_token_about_to_expire"
EXPIRED = "access_token_expired"
BOT_EXPIRED = "bot_resource_access_token_expired"
CREATED = "access_token_created"
REVOKED = "access_token_revoked"
ROTATED = "access_token_rotated"

TEMPLATES = (ABOUT_TO_EXPIRE, BOT_ABOUT_TO_EXPIRE, EXPIRED, BOT_EXPIRED, CREATED, REVOKED, ROTATED)

# GitLab's subjects.
CREATED_SUBJECT = "A new personal access token has been created"
REVOKED_SUBJECT = "Your personal access token has been revoked"
ROTATED_SUBJECT = "Your personal access token has been rotated"
EXPIRED_SUBJECT = "Your personal access token has expired"

# How many tokens one e-mail to a person lists (GitLab's MAX_TOKENS); the rest wait for the next run.
MAX_TOKENS = 100

PERSONAL_TOKENS_PATH = "/-/user_settings/personal_access_tokens"


def about_to_expire_subject(days: int) -> str:
    return f"Your personal access tokens will expire in {days} days or less"


def _kind(resource: Project | Namespace) -> str:
    return "project" if isinstance(resource, Project) else "group"


def bot_about_to_expire_subject(resource: Project | Namespace) -> str:
    return f"A {_kind(resource)} access token will expire soon"


def bot_expired_subject(resource: Project | Namespace) -> str:
    return f"A {_kind(resource)} access token has expired"


def personal_tokens_url(ctx: Ctx) -> str:
    return ctx.instance.external_url.rstrip("/") + PERSONAL_TOKENS_PATH


def resource_tokens_url(ctx: Ctx, resource: Project | Namespace) -> str:
    base = ctx.instance.external_url.rstrip("/")
    if isinstance(resource, Project):
        return f"{base}/{resource.full_path}/-/settings/access_tokens"
    return f"{base}/groups/{resource.full_path}/-/settings/access_tokens"


def _token_line(token: PersonalAccessToken, today: dt.date) -> dict[str, Any]:
    expires = token.expires_at
    return {
        "name": token.name,
        "expires_at": None if expires is None else expires.isoformat(),
        "days_left": None if expires is None else max((expires - today).days, 0),
    }


def _resource_values(ctx: Ctx, resource: Project | Namespace) -> dict[str, Any]:
    return {
        "resource_kind": _kind(resource),
        "resource_name": resource.name,
        "resource_path": resource.full_path,
        "tokens_url": resource_tokens_url(ctx, resource),
    }


def _send(
    ctx: Ctx, user: User, subject: str, template: str, context: dict[str, Any], dedupe_key: str | None
) -> OutboxMessage | None:
    return enqueue(
        ctx,
        to_address=user.email,
        subject=subject,
        template=template,
        # The recipient's name; a token's name is "token_name" or a "tokens" entry's "name".
        context={**context, "name": user.name},
        to_user_id=user.id,
        dedupe_key=dedupe_key,
    )


def send_about_to_expire(
    ctx: Ctx, user: User, tokens: list[PersonalAccessToken], days: int, dedupe_key: str
) -> OutboxMessage | None:
    """One e-mail to a person listing their tokens that expire within ``days``."""
    today = ctx.today()
    context = {
        "days": days,
        "tokens": [_token_line(t, today) for t in tokens[:MAX_TOKENS]],
        "tokens_url": personal_tokens_url(ctx),
    }
    return _send(ctx, user, about_to_expire_subject(days), ABOUT_TO_EXPIRE, context, dedupe_key)


def send_bot_about_to_expire(
    ctx: Ctx, user: User, token: PersonalAccessToken, resource: Project | Namespace, dedupe_key: str
) -> OutboxMessage | None:
    """To one Owner or Maintainer: a bot's token of their project or group expires soon."""
    context = {"token_name": token.name, **_token_line(token, ctx.today()), **_resource_values(ctx, resource)}
    return _send(ctx, user, bot_about_to_expire_subject(resource), BOT_ABOUT_TO_EXPIRE, context, dedupe_key)


def send_expired(
    ctx: Ctx, user: User, tokens: list[PersonalAccessToken], dedupe_key: str
) -> OutboxMessage | None:
    """One e-mail to a person listing their tokens that expired today."""
    today = ctx.today()
    context = {
        "tokens": [_token_line(t, today) for t in tokens[:MAX_TOKENS]],
        "tokens_url": personal_tokens_url(ctx),
    }
    return _send(ctx, user, EXPIRED_SUBJECT, EXPIRED, context, dedupe_key)


def send_bot_expired(
    ctx: Ctx, user: User, token: PersonalAccessToken, resource: Project | Namespace, dedupe_key: str
) -> OutboxMessage | None:
    context = {"token_name": token.name, **_token_line(token, ctx.today()), **_resource_values(ctx, resource)}
    return _send(ctx, user, bot_expired_subject(resource), BOT_EXPIRED, context, dedupe_key)


def send_lifecycle(ctx: Ctx, user: User, token: PersonalAccessToken, what: str) -> OutboxMessage | None:
    """The created, revoked or rotated e-mail about one of the user's own tokens."""
    subject, template = {
        "created": (CREATED_SUBJECT, CREATED),
        "revoked": (REVOKED_SUBJECT, REVOKED),
        "rotated": (ROTATED_SUBJECT, ROTATED),
    }[what]
    context = {
        "token_name": token.name,
        "expires_at": None if token.expires_at is None else token.expires_at.isoformat(),
        "tokens_url": personal_tokens_url(ctx),
    }
    return _send(ctx, user, subject, template, context, f"token-{what}:{token.id}")
