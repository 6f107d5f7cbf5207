"""The admin token API: what is this token value, and revoke it, for every token kind."""

from __future__ import annotations

import re

from sqlalchemy import select

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.errors import Forbidden, NotFound, Unprocessable
from keycrew.tokens import lifecycle, secrets
from keycrew.tokens.authentication import MAX_TOKEN_LENGTH, find_by_digest
from keycrew.tokens.models import DeployToken, PersonalAccessToken

KNOWN_PREFIXES = (secrets.PAT_PREFIX, secrets.DEPLOY_PREFIX)
# An instance prefix (GitLab's rule: up to 20 of these characters), then a kind's prefix.
_EARLIER_PREFIX = re.compile(r"[A-Za-z0-9_+=/@:.-]{1,20}?(?:glpat-|gldt-)")


def _supported(ctx: Ctx, value: str) -> bool:
    """Whether ``value`` is shaped like a token of a kind keycrew issues: the kind's prefix after
    an instance prefix, the current one or any earlier one (an admin may change it; the tokens
    issued before keep working)."""
    custom = ctx.instance.token_prefix
    stripped = value[len(custom) :] if custom and value.startswith(custom) else value
    return stripped.startswith(KNOWN_PREFIXES) or _EARLIER_PREFIX.match(value) is not None


def identify(ctx: Ctx, value: str) -> PersonalAccessToken | DeployToken:
    """The token a value belongs to (admins only). Raises Forbidden, Unprocessable (a value of no
    kind keycrew issues) or NotFound."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    if not value or len(value) > MAX_TOKEN_LENGTH or not _supported(ctx, value):
        raise Unprocessable("Unsupported token type")
    digest = secrets.digest(ctx.instance.secret_key, value)
    pat = find_by_digest(ctx.db, digest)
    if pat is not None:
        return pat
    deploy = ctx.db.scalars(select(DeployToken).where(DeployToken.token_digest == digest)).first()
    if deploy is not None:
        return deploy
    raise NotFound("Token")


def revoke_by_value(ctx: Ctx, value: str) -> None:
    """Revoke whatever token ``value`` is (admins only); revoking a revoked token is a no-op."""
    found = identify(ctx, value)
    if isinstance(found, PersonalAccessToken):
        lifecycle.revoke(ctx, found, reason="revoked by value through the admin token API")
        return
    if not found.revoked:
        now = ctx.now()
        found.revoked = True
        found.revoked_at = now
        found.updated_at = now
        entity = (
            Entity("Project", found.project_id)
            if found.project_id is not None
            else Entity("Group", found.group_id or 0)
        )
        record(
            ctx,
            Event.TOKEN_REVOKED,
            entity,
            target=Target("DeployToken", found.id, found.name),
            reason="revoked by value through the admin token API",
        )
