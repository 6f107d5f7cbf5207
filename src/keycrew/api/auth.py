"""Resolving the request's token to a Principal: cache first, one indexed query on a miss.

Runs on the event loop (no threadpool hop on a cache hit). GitLab's order: unknown → 401;
expired, then revoked → 401 invalid_token (a revoked token presented to a rotate endpoint also
revokes its live descendants: reuse detection); internal, blocked or deactivated owner → 403.
Each presented token counts one outcome in keycrew_auth_total: accepted from the cache
(cache_hit) or after the query (cache_miss), or refused (unknown, expired, revoked, refused_user).
"""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from keycrew.bootstrap import Runtime
from keycrew.context import Actor
from keycrew.errors import Forbidden, InvalidToken, Unauthenticated
from keycrew.identity.models import User
from keycrew.tokens import lifecycle, secrets
from keycrew.tokens.authentication import (
    MAX_TOKEN_LENGTH,
    check_token_usable,
    check_user_may_use_api,
    find_by_digest,
    reuse_detected,
)
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.principal import Principal, TokenSnapshot, UserSnapshot


def presented_token(request: Request) -> str | None:
    """The token from PRIVATE-TOKEN, Authorization: Bearer, or the private_token parameter."""
    header = request.headers.get("private-token")
    if header:
        return header.strip()
    authorization = request.headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    query = request.scope.get("query_string", b"")
    if b"token" not in query and b"%" not in query:  # parse the query only then (names may be encoded)
        return None
    param = request.query_params.get("private_token") or request.query_params.get("access_token")
    return param.strip() if param else None


def client_ip(request: Request) -> str | None:
    client = request.scope.get("client")
    return client[0] if client else None


def _load(runtime: Runtime, digest: str) -> Principal | None:
    with runtime.sessions() as db:
        db.connection(execution_options={"sqlite_begin": "DEFERRED"})
        token = find_by_digest(db, digest)
        if token is None:
            return None
        user = db.get(User, token.user_id)
        if user is None:
            return None
        return Principal(TokenSnapshot.of(token), UserSnapshot.of(user))


def _revoke_family(runtime: Runtime, token_id: int, ip: str | None) -> None:
    with runtime.sessions() as db, db.begin():
        token = db.get(PersonalAccessToken, token_id)
        if token is None:
            return
        owner = db.get(User, token.user_id)
        ctx = runtime.ctx(db, Actor(user=owner, token_id=token_id, ip=ip))
        lifecycle.revoke_family(ctx, token)


async def resolve_principal(request: Request, *, rotation: bool = False) -> Principal | None:
    """The authenticated principal, or None when no credential was presented.

    ``rotation``: the route rotates a token, so a revoked token presented to it triggers reuse
    detection (the rule is the domain's ``reuse_detected``).
    """
    value = presented_token(request)
    if value is None:
        return None
    runtime: Runtime = request.app.state.runtime
    metrics = runtime.metrics
    if not value or len(value) > MAX_TOKEN_LENGTH:
        metrics.auth("unknown")
        raise Unauthenticated()
    digest = secrets.digest(runtime.instance.secret_key, value)
    cache = runtime.auth_cache
    principal = cache.get(digest)
    outcome = "cache_hit"
    if principal is None:
        # Taken before the load: a change committed while we load keeps the result out of the cache.
        ticket = cache.ticket()
        principal = (
            _load(runtime, digest)
            if runtime.reads_inline
            else await run_in_threadpool(_load, runtime, digest)
        )
        if principal is None:
            metrics.auth("unknown")
            raise Unauthenticated()
        cache.put(digest, principal, ticket)
        outcome = "cache_miss"
    today = runtime.clock.now().date()
    if reuse_detected(principal.token, today, rotating=rotation):
        await run_in_threadpool(_revoke_family, runtime, principal.token.id, client_ip(request))
    try:
        check_token_usable(principal.token, today)
    except InvalidToken:
        metrics.auth("expired" if principal.token.is_expired(today) else "revoked")
        raise
    try:
        check_user_may_use_api(principal.user, runtime.instance.external_url)
    except Forbidden:
        metrics.auth("refused_user")
        raise
    metrics.auth(outcome)
    if runtime.usage is not None:
        runtime.usage.note(principal.token.id, client_ip(request))
    return principal
