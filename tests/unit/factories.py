"""The unit layer's one set of factories: users, groups, projects, memberships and tokens, each
made through the domain's own use case, acting as the given context's actor.

Names are unique (a random suffix), so a test may make as many as it needs. Nothing here commits:
everything lands in the context's session, as a use case called by an adapter would.
"""

from __future__ import annotations

import datetime as dt
import uuid

from keycrew.access.groups import create_group
from keycrew.access.levels import AccessLevel
from keycrew.access.members import create_membership
from keycrew.access.models import Member
from keycrew.access.resources import Resource
from keycrew.actions.projects import create_project
from keycrew.actions.resource_tokens import create_resource_token
from keycrew.actions.service_accounts import create_service_account, instance_owner
from keycrew.context import Ctx
from keycrew.identity.models import User
from keycrew.identity.types import UserState, UserType
from keycrew.identity.users import create_user
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.records.issues import create_issue
from keycrew.records.models import Issue, Note
from keycrew.records.notes import create_note
from keycrew.tokens.deploy import IssuedDeployToken, create_deploy_token
from keycrew.tokens.issuing import IssuedToken
from keycrew.tokens.personal import create_personal_access_token
from keycrew.tokens.scopes import RESOURCE_BOT_SCOPES

PASSWORD = "a-long-password-1"


def unique(prefix: str) -> str:
    """A short name no other factory call returns."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def user(
    ctx: Ctx,
    *,
    username: str | None = None,
    email: str | None = None,
    name: str | None = None,
    password: str | None = None,
    admin: bool = False,
    external: bool = False,
    user_type: UserType = UserType.HUMAN,
    state: UserState = UserState.ACTIVE,
) -> User:
    """A user (``identity.users.create_user``). Without ``password`` none is hashed (faster)."""
    username = username or unique("u")
    return create_user(
        ctx,
        username=username,
        email=email or f"{username}@example.com",
        name=name or username.title(),
        password=password,
        admin=admin,
        external=external,
        user_type=user_type,
        state=state,
    )


def group(
    ctx: Ctx,
    *,
    path: str | None = None,
    parent: Namespace | None = None,
    visibility: Visibility | None = None,
) -> Namespace:
    """A group (``access.groups.create_group``); the context's actor becomes its Owner."""
    path = path or unique("g")
    return create_group(
        ctx,
        name=path,
        path=path,
        parent_id=None if parent is None else parent.id,
        visibility=visibility,
    )


def project(
    ctx: Ctx,
    *,
    name: str | None = None,
    group: Namespace | None = None,
    visibility: Visibility | None = None,
) -> Project:
    """A project (``actions.projects.create_project``) in ``group`` or the actor's own namespace."""
    return create_project(
        ctx,
        name=name or unique("p"),
        namespace_id=None if group is None else group.id,
        visibility=visibility,
    )


def membership(
    ctx: Ctx,
    source: Project | Namespace,
    member: User,
    level: int = AccessLevel.DEVELOPER,
    *,
    expires_at: dt.date | None = None,
) -> Member:
    """A membership as written by ``access.members.create_membership`` (no permission checks)."""
    return create_membership(ctx, Resource(source), member, level, expires_at)


def personal_token(
    ctx: Ctx,
    owner: User,
    *,
    scopes: list[str] | None = None,
    expires_at: dt.date | None = None,
    name: str | None = None,
    description: str | None = None,
) -> IssuedToken:
    """A personal access token issued by an admin or the system
    (``tokens.personal.create_personal_access_token``)."""
    return create_personal_access_token(
        ctx,
        owner,
        name=name or unique("tok"),
        scopes=["api"] if scopes is None else scopes,
        expires_at=expires_at,
        description=description,
    )


def resource_token(
    ctx: Ctx,
    source: Project | Namespace,
    *,
    access_level: int | None = None,
    scopes: list[str] | None = None,
    expires_at: dt.date | None = None,
    name: str | None = None,
    description: str | None = None,
) -> tuple[IssuedToken, int]:
    """A project or group access token with its bot (``actions.resource_tokens.create_resource_token``)."""
    return create_resource_token(
        ctx,
        Resource(source),
        name=name or unique("bot"),
        scopes=list(RESOURCE_BOT_SCOPES) if scopes is None else scopes,
        access_level=access_level,
        expires_at=expires_at,
        description=description,
    )


def deploy_token(
    ctx: Ctx,
    *,
    project: Project | None = None,
    group: Namespace | None = None,
    scopes: list[str] | None = None,
    username: str | None = None,
    expires_at: dt.date | None = None,
    name: str | None = None,
) -> IssuedDeployToken:
    """A deploy token of ``project`` or ``group`` (``tokens.deploy.create_deploy_token``)."""
    return create_deploy_token(
        ctx,
        project=project,
        group=group,
        name=name or unique("deploy"),
        scopes=["read_repository"] if scopes is None else scopes,
        expires_at=expires_at,
        username=username,
    )


def service_account(ctx: Ctx) -> User:
    """An instance service account (``actions.service_accounts.create_service_account``; admins)."""
    return create_service_account(ctx, instance_owner(ctx))


def issue(ctx: Ctx, project: Project, *, title: str | None = None) -> Issue:
    """An issue authored by the context's actor (``records.issues.create_issue``)."""
    return create_issue(ctx, project, title=title or unique("issue "))


def note(ctx: Ctx, project: Project, on: Issue, *, body: str | None = None) -> Note:
    """A comment by the context's actor (``records.notes.create_note``)."""
    return create_note(ctx, project, on, body=body or unique("note "))
