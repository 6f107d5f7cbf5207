"""Deploy tokens: a username and a secret bound to one project or group, for git and registries.

They are not API credentials: the general API looks tokens up among personal access tokens only,
so a deploy token's value is simply unknown there (401). Git and registry adapters authenticate
them with ``authenticate_deploy_token``: the exact username and an active token.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from keycrew.access.levels import AccessLevel
from keycrew.access.resources import Resource
from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.errors import BadParameter, Forbidden, Invalid, MissingParameter, NotFound
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens import secrets
from keycrew.tokens.expiry import deploy_token_expiry
from keycrew.tokens.models import DeployToken
from keycrew.tokens.scopes import DEPLOY_SCOPES

NAME_MAX = 255
USERNAME_MAX = 255
USERNAME_RE = re.compile(r"[a-zA-Z0-9.+_-]+")
USERNAME_FORMAT = "can contain only letters, digits, '_', '-', '+', and '.'"
# Longer values cannot be tokens we issued: refuse them before hashing.
MAX_VALUE_LENGTH = 512


@dataclass(frozen=True)
class IssuedDeployToken:
    """A new deploy token and its value: the only place the value ever exists."""

    value: str
    token: DeployToken

    def __repr__(self) -> str:  # never print the value by accident
        return f"IssuedDeployToken(token={self.token.id})"


@dataclass(frozen=True)
class DeployTokenFilter:
    """List filters: ``active`` keeps live tokens; ``scopes`` keeps tokens holding all of them."""

    active: bool = False
    scopes: tuple[str, ...] = ()


# Reading a project's or group's deploy tokens takes a Maintainer (GitLab's read_deploy_token).
READ_LEVEL = AccessLevel.MAINTAINER


def _require(ctx: Ctx, holder: Resource, level: int) -> None:
    """Forbidden unless the actor holds ``level`` on the token's project or group (admins count as
    Owners). The system itself (CLI, jobs) may act on any deploy token."""
    if ctx.actor.via == "system":
        return
    if ctx.actor.user is None or holder.level_of(ctx) < level:
        raise Forbidden()


def _where(holder: Resource) -> Any:
    if isinstance(holder.obj, Project):
        return DeployToken.project_id == holder.obj.id
    return DeployToken.group_id == holder.obj.id


def check_deploy_scopes(scopes: list[str]) -> list[str]:
    """The scopes in GitLab's order, without duplicates.

    Raises MissingParameter when none are given, BadParameter for one a deploy token cannot hold.
    """
    if not scopes:
        raise MissingParameter("scopes is missing")
    if any(scope not in DEPLOY_SCOPES for scope in scopes):
        raise BadParameter("scopes does not have a valid value")
    return [scope for scope in DEPLOY_SCOPES if scope in scopes]


def can_manage_deploy_tokens(
    ctx: Ctx, *, project: Project | None = None, group: Namespace | None = None
) -> bool:
    """Whether the actor may create and revoke deploy tokens of ``project`` or ``group``: a project
    Maintainer / group Owner (or admin). Seeing them needs only Maintainer, for groups too."""
    holder = Resource.either(project, group)
    try:
        _require(ctx, holder, holder.admin_level)
    except Forbidden:
        return False
    return True


def _check_name(name: str) -> str:
    if not name.strip():
        raise MissingParameter("name is missing")
    if "\x00" in name:  # PostgreSQL text cannot hold NUL: refuse it on every backend alike
        raise BadParameter("name is invalid")
    if len(name) > NAME_MAX:
        raise Invalid.field("name", f"is too long (maximum is {NAME_MAX} characters)")
    return name


def _check_username(username: str) -> str:
    problems = []
    if len(username) > USERNAME_MAX:
        problems.append(f"is too long (maximum is {USERNAME_MAX} characters)")
    if USERNAME_RE.fullmatch(username) is None:
        problems.append(USERNAME_FORMAT)
    if problems:
        raise Invalid.field("username", *problems)
    return username


def create_deploy_token(
    ctx: Ctx,
    *,
    project: Project | None = None,
    group: Namespace | None = None,
    name: str,
    scopes: list[str],
    expires_at: dt.date | None = None,
    username: str | None = None,
) -> IssuedDeployToken:
    """Issue a deploy token for ``project`` or ``group``; the value is in the result, once.

    ``username`` None or "" means GitLab's default ``gitlab+deploy-token-{id}``. Raises
    MissingParameter/BadParameter for absent or unknown scopes, Forbidden unless the actor is a
    project Maintainer / group Owner (or admin), Invalid for a bad name, username or past expiry.
    """
    holder = Resource.either(project, group)
    scopes = check_deploy_scopes(scopes)
    _require(ctx, holder, holder.admin_level)
    name = _check_name(name)
    username = _check_username(username) if username else None
    expires_at = deploy_token_expiry(ctx, expires_at)
    value = secrets.generate(secrets.DEPLOY_PREFIX, ctx.instance.token_prefix)
    now = ctx.now()
    token = DeployToken(
        project_id=None if project is None else project.id,
        group_id=None if group is None else group.id,
        name=name,
        # Filled in below once the id is known, when no username was asked for.
        username=username or "",
        token_digest=secrets.digest(ctx.instance.secret_key, value),
        scopes=scopes,
        expires_at=expires_at,
        revoked=False,
        creator_id=ctx.actor.user_id,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(token)
    ctx.db.flush()
    if username is None:
        token.username = f"gitlab+deploy-token-{token.id}"
        ctx.db.flush()
    record(
        ctx,
        Event.DEPLOY_TOKEN_CREATED,
        holder.entity,
        target=Target("DeployToken", token.id, name),
        username=token.username,
        scopes=scopes,
        expires_at=None if expires_at is None else expires_at.isoformat(),
    )
    return IssuedDeployToken(value, token)


def _live(today: dt.date) -> Any:
    return DeployToken.revoked.is_(False) & or_(
        DeployToken.expires_at.is_(None), DeployToken.expires_at > today
    )


def deploy_tokens_query(
    ctx: Ctx,
    *,
    project: Project | None = None,
    group: Namespace | None = None,
    filters: DeployTokenFilter = DeployTokenFilter(),
) -> Select[Any]:
    """The deploy tokens of ``project`` or ``group`` (Maintainer+), or of the whole instance when
    neither is given (admins only), oldest first. Raises Forbidden otherwise."""
    query = select(DeployToken)
    if project is None and group is None:
        if not ctx.actor.is_admin:
            raise Forbidden()
    else:
        holder = Resource.either(project, group)
        _require(ctx, holder, READ_LEVEL)
        query = query.where(_where(holder))
    if filters.active:
        query = query.where(_live(ctx.today()))
    return query.order_by(DeployToken.id)


def filter_scopes(tokens: list[DeployToken], scopes: tuple[str, ...]) -> list[DeployToken]:
    """Tokens that hold every scope in ``scopes`` (scopes are a JSON list: filtered in Python)."""
    wanted = set(scopes)
    return [token for token in tokens if wanted <= set(token.scopes)]


def list_deploy_tokens(
    ctx: Ctx,
    *,
    project: Project | None = None,
    group: Namespace | None = None,
    filters: DeployTokenFilter = DeployTokenFilter(),
) -> list[DeployToken]:
    """``deploy_tokens_query`` with the scopes filter applied; same permissions and errors."""
    rows = list(ctx.db.scalars(deploy_tokens_query(ctx, project=project, group=group, filters=filters)))
    return filter_scopes(rows, filters.scopes) if filters.scopes else rows


def find_deploy_token(
    ctx: Ctx, token_id: int, *, project: Project | None = None, group: Namespace | None = None
) -> DeployToken:
    """One deploy token of ``project`` or ``group``.

    Raises Forbidden below Maintainer, NotFound("Deploy Token") when it is not this holder's.
    """
    holder = Resource.either(project, group)
    _require(ctx, holder, READ_LEVEL)
    return _get(ctx, holder, token_id)


def _get(ctx: Ctx, holder: Resource, token_id: int) -> DeployToken:
    token = ctx.db.get(DeployToken, token_id) if 0 < token_id <= MAX_ID else None
    if token is None or (
        token.project_id != (None if holder.project is None else holder.project.id)
        or token.group_id != (None if holder.group is None else holder.group.id)
    ):
        raise NotFound("Deploy Token")
    return token


def _holder_of(ctx: Ctx, token: DeployToken) -> Resource:
    if token.project_id is not None:
        return Resource.either(ctx.db.get(Project, token.project_id), None)
    return Resource.either(None, ctx.db.get(Namespace, token.group_id))


def revoke_deploy_token(ctx: Ctx, token: DeployToken) -> bool:
    """Revoke ``token`` (kept for the record); False when it already was.

    Raises Forbidden unless the actor may manage the holder's deploy tokens.
    """
    holder = _holder_of(ctx, token)
    _require(ctx, holder, holder.admin_level)
    if token.revoked:
        return False
    now = ctx.now()
    token.revoked = True
    token.revoked_at = now
    token.updated_at = now
    record(
        ctx,
        Event.DEPLOY_TOKEN_REVOKED,
        holder.entity,
        target=Target("DeployToken", token.id, token.name),
        username=token.username,
    )
    ctx.db.flush()
    return True


def delete_deploy_token(
    ctx: Ctx, token_id: int, *, project: Project | None = None, group: Namespace | None = None
) -> None:
    """Delete a deploy token of ``project`` or ``group`` (GitLab destroys the row: it is 404 after).

    Raises Forbidden unless the actor is a project Maintainer / group Owner (or admin),
    NotFound("Deploy Token") when it is not this holder's.
    """
    holder = Resource.either(project, group)
    _require(ctx, holder, holder.admin_level)
    token = _get(ctx, holder, token_id)
    record(
        ctx,
        Event.DEPLOY_TOKEN_DELETED,
        holder.entity,
        target=Target("DeployToken", token.id, token.name),
        username=token.username,
    )
    ctx.db.delete(token)
    ctx.db.flush()


def authenticate_deploy_token(
    db: Session, secret_key: bytes, username: str, value: str, today: dt.date
) -> DeployToken | None:
    """The active deploy token with this value and exactly this username, else None.

    Unknown, wrong-username, revoked and expired all give None alike (git and registries answer
    them the same way). One indexed lookup on the digest.
    """
    if not username or not value or len(value) > MAX_VALUE_LENGTH:
        return None
    token = db.scalars(
        select(DeployToken).where(DeployToken.token_digest == secrets.digest(secret_key, value))
    ).first()
    if token is None or not hmac.compare_digest(token.username.encode(), username.encode()):
        return None
    return token if token.is_active(today) else None
