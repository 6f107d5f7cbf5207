"""``GET /jwt/auth``: the Docker token authentication endpoint a container registry sends clients to.

HTTP Basic credentials as for git (a token as the password, or a deploy token with its exact
username); none at all is an anonymous client, who may pull public images. Errors use the
registry's JSON shape, ``{"errors": [{"code", "message"}]}``, mapped here in one place:
bad credentials 401 (and they count toward the per-IP failed-authentication throttle, 429; a
wrong password also toward its account's lock, and a locked account is refused like a wrong
password), a
blocked or internal user or a credential without registry scopes 403, an unknown service 404.
"""

from __future__ import annotations

import datetime as dt
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from keycrew.bootstrap import Runtime
from keycrew.context import Actor
from keycrew.errors import Forbidden, KeycrewError, Unauthenticated
from keycrew.instance.models import InstanceSettings
from keycrew.registry import keys
from keycrew.registry.tokens import TooManyScopes, authorize, has_registry_ability, parse_scopes, sign
from keycrew.tokens.basic import (
    Credential,
    PasswordRejected,
    authenticate_basic,
    count_failed_password,
    decode_basic,
)
from keycrew.tokens.scopes import Scope

log = logging.getLogger("keycrew.registry")

router = APIRouter(include_in_schema=False)

ACCESS_DENIED = "HTTP Basic: Access denied"
# The least scope each granted registry action needs (recorded for the token-hygiene report).
ACTION_SCOPES: dict[str, str] = {"pull": Scope.READ_REGISTRY, "push": Scope.WRITE_REGISTRY}


class UnknownService(KeycrewError):
    """The ``service`` parameter names no service of this token server."""


class NoScopes(KeycrewError):
    """A request that names nothing and nobody (GitLab's 403 'access forbidden')."""


def _errors(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=status, headers=headers)


def to_response(exc: KeycrewError) -> JSONResponse:
    match exc:
        case Unauthenticated():
            return _errors(401, "UNAUTHORIZED", ACCESS_DENIED, {"WWW-Authenticate": 'Basic realm="keycrew"'})
        case UnknownService():
            return _errors(404, "UNAVAILABLE", exc.message)
        case NoScopes():
            return _errors(403, "DENIED", "access forbidden")
        case Forbidden():
            return _errors(403, "DENIED", exc.message or "access forbidden")
    return _errors(400, "INVALID", exc.message or "invalid request")


def basic_credentials(request: Request) -> tuple[str | None, str | None]:
    """(username, password) from ``Authorization: Basic``; (None, None) without one.

    Another scheme is ignored, as GitLab's authenticate_with_http_basic; a malformed Basic header
    is a failed authentication.
    """
    try:
        found = decode_basic(request.headers.get("authorization", ""))
    except Unauthenticated:
        raise Unauthenticated(ACCESS_DENIED) from None
    return (None, None) if found is None else found


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _authenticate(runtime: Runtime, db: Session, request: Request, now: dt.datetime) -> Credential:
    username, password = basic_credentials(request)
    # GitLab's registry login follows git's: passwords only while that setting allows them.
    instance = db.get(InstanceSettings, 1)
    return authenticate_basic(
        db,
        runtime.instance.secret_key,
        username,
        password,
        now.date(),
        password_auth_enabled=instance is None or instance.password_authentication_enabled_for_git,
        instance_prefix=runtime.instance.token_prefix,
        now=now,
    )


@router.get("/jwt/auth")
def jwt_auth(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    settings = runtime.settings
    throttle = runtime.auth_throttle
    ip = client_ip(request)
    wait = throttle.retry_after(ip)
    if wait:
        return _errors(429, "TOOMANYREQUESTS", "too many failed authentications", {"Retry-After": str(wait)})
    now = runtime.clock.now()
    try:
        with runtime.sessions() as db:
            db.connection(execution_options={"sqlite_begin": "DEFERRED"})
            try:
                credential = _authenticate(runtime, db, request, now)
            except Unauthenticated:
                throttle.failed(ip)
                raise
            if request.query_params.get("service") != settings.registry_service:
                raise UnknownService("unknown service")
            if not has_registry_ability(credential):
                raise Forbidden("access forbidden")
            try:
                requests = parse_scopes(request.query_params.getlist("scope"))
            except TooManyScopes as exc:
                raise KeycrewError(str(exc)) from None
            if not requests and credential.is_anonymous:
                raise NoScopes()
            access = authorize(db, credential, requests, now.date())
            subject = credential.label if not credential.is_anonymous else ""
    except PasswordRejected as failure:
        # A wrong password counts toward its account's lock, as on the sign-in form.
        with runtime.sessions() as db, db.begin():
            count_failed_password(runtime.ctx(db, Actor(user=None, ip=ip, via="registry")), failure)
        return to_response(failure)
    except KeycrewError as exc:
        return to_response(exc)
    if credential.token is not None and runtime.usage is not None:
        runtime.usage.note(credential.token.id, ip)
        for action in sorted({action for entry in access for action in entry["actions"]}):
            runtime.usage.exercise(credential.token.id, ACTION_SCOPES.get(action, Scope.API), "GET")
    store = keys.key_store(settings.registry_key_path, settings.registry_certificate_path)
    try:
        signing_key = store.current(now)
    except (OSError, ValueError):
        log.exception("the registry token signing key %s cannot be used", store.key_path)
        return _errors(503, "UNAVAILABLE", "the token service cannot sign tokens now")
    issued = sign(
        signing_key.private_key,
        signing_key.kid,
        issuer=settings.registry_issuer,
        audience=settings.registry_service,
        subject=subject,
        access=access,
        now=now,
        lifetime=settings.registry_token_lifetime,
    )
    return JSONResponse(
        {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": issued.issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        headers={"Cache-Control": "no-store"},
    )
