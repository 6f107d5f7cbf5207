"""The admin token API: what is this token value, and revoke it, for every token kind."""

from __future__ import annotations

from sqlalchemy import select

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.errors import Forbidden, NotFound, Unprocessable
from keycrew.tokens import lifecycle, secrets
from keycrew.tokens.authentication import MAX_TOKEN_LENGTH, find_by_digest
from keycrew.tokens.models import DeployToken, PersonalAccessToken

KNOWN_PREFIXES = (secrets.PAT_PREFIX, secrets.DEPLOY_PREFIX)


def _supported(ctx: Ctx, value: str) -> bool:
    custom = ctx.instance.token_prefix
    stripped = value[len(custom) :] if custom and value.startswith(custom) else value
    return stripped.startswith(KNOWN_PREFIXES)


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
