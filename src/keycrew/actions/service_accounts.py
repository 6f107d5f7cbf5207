"""Service accounts: machine users owned by the instance, a top-level group or a project.

A service account is a user of type 13: never billable, external (it starts with no access and is
added as a member like anyone), authenticating with personal access tokens that the people who
administer it issue, list, rotate and revoke. How many may exist depends on the license plan.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from keycrew.access.lookup import find_group, find_project
from keycrew.access.resources import Resource
from keycrew.actions.deletion import destroy_user
from keycrew.audit.events import Event
from keycrew.audit.service import Changes, Entity, Target, record, record_update
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.db.listings import Listing
from keycrew.errors import BadParameter, Forbidden, Invalid, NotFound, Refused
from keycrew.identity import validation
from keycrew.identity.models import User
from keycrew.identity.service_accounts import check_service_account_seat
from keycrew.identity.types import UserType
from keycrew.identity.users import create_user, user_entity
from keycrew.instance.settings import instance_settings
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.paths import find_source, route_taken
from keycrew.namespaces.personal import follow_user
from keycrew.tokens import lifecycle
from keycrew.tokens.issuing import IssuedToken
from keycrew.tokens.lifecycle import TokenFilters
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.personal import issue_personal_token, owned_token_listing

USERNAME_PREFIX = "service_account"
DEFAULT_NAME = "Service account user"
NOT_A_SERVICE_ACCOUNT = "User is not of type Service Account"
TAKEN = "Username has already been taken"
ORDER_BY = ("id", "username")
SORT = ("asc", "desc")


# -- who administers which accounts -------------------------------------------------------------


@dataclass(frozen=True)
class Owner:
    """Where service accounts live: the instance, a group or a project, as a permission-checked
    lookup found it. Only the lookups below build one."""

    # The group or project; None for the instance.
    resource: Resource | None = None

    @property
    def group(self) -> Namespace | None:
        return None if self.resource is None else self.resource.group

    @property
    def project(self) -> Project | None:
        return None if self.resource is None else self.resource.project

    @property
    def kind(self) -> str:
        return "instance" if self.resource is None else self.resource.kind

    def audit_entity(self) -> Entity:
        return Entity.instance() if self.resource is None else self.resource.entity


def instance_owner(ctx: Ctx) -> Owner:
    """The instance's service accounts, for admins. Raises Forbidden for everyone else."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    return Owner()


def group_owner(ctx: Ctx, ref: str | int) -> Owner:
    """A group's service accounts, for its Owners and admins.

    Raises NotFound("Group") when the actor may not see the group, Forbidden below Owner.
    """
    group = Resource(find_group(ctx, ref))
    if group.level_of(ctx) < group.admin_level:
        raise Forbidden()
    return Owner(group)


def project_owner(ctx: Ctx, ref: str | int) -> Owner:
    """A project's service accounts, for its Owners, Maintainers and admins.

    Raises NotFound("Project") when the actor may not see the project, Forbidden below Maintainer.
    """
    project = Resource(find_project(ctx, ref))
    if project.level_of(ctx) < project.admin_level:
        raise Forbidden()
    return Owner(project)


def find_service_account(ctx: Ctx, owner: Owner, user_id: int) -> User:
    """The service account ``user_id`` of ``owner``.

    Group: a user the group did not provision is NotFound("User"); one it did that is not a service
    account is Invalid (GitLab's order). Project: anything but its own service accounts is
    NotFound("User"). Instance: any user, Invalid if not a service account.
    """
    user = ctx.db.get(User, user_id) if 0 < user_id <= MAX_ID else None
    if user is None:
        raise NotFound("User")
    if owner.group is not None and user.provisioned_by_group_id != owner.group.id:
        raise NotFound("User")
    if owner.project is not None and (
        user.provisioned_by_project_id != owner.project.id or user.type is not UserType.SERVICE_ACCOUNT
    ):
        raise NotFound("User")
    if user.type is not UserType.SERVICE_ACCOUNT:
        # The instance endpoint words it as GitLab's update service does.
        raise Invalid("User is not a service account" if owner.kind == "instance" else NOT_A_SERVICE_ACCOUNT)
    return user


def service_accounts_query(
    owner: Owner, *, order_by: str | None = None, sort: str | None = None
) -> Select[Any]:
    """The service accounts of ``owner`` (the instance lists all of them), ordered by ``order_by``
    (id or username, default id) and ``sort`` (default desc). Raises BadParameter otherwise."""
    order_by = order_by or "id"
    sort = sort or "desc"
    if order_by not in ORDER_BY:
        raise BadParameter("order_by does not have a valid value")
    if sort not in SORT:
        raise BadParameter("sort does not have a valid value")
    query = select(User).where(User.user_type == int(UserType.SERVICE_ACCOUNT))
    if owner.group is not None:
        query = query.where(User.provisioned_by_group_id == owner.group.id)
    elif owner.project is not None:
        query = query.where(User.provisioned_by_project_id == owner.project.id)
    column = User.id if order_by == "id" else User.username_lower
    ordered = column.asc() if sort == "asc" else column.desc()
    return query.order_by(ordered, User.id.asc() if sort == "asc" else User.id.desc())


# -- creating, changing, deleting ---------------------------------------------------------------


def _present(value: str | None) -> str | None:
    """Rails' ``presence``: a blank value counts as not given."""
    return value if value is not None and value.strip() else None


def _sentence(messages: list[str]) -> str:
    """Rails' ``to_sentence``."""
    if len(messages) <= 2:
        return " and ".join(messages)
    return ", ".join(messages[:-1]) + ", and " + messages[-1]


def _full_messages(errors: dict[str, list[str]]) -> list[str]:
    return [f"{field.capitalize()} {message}" for field, messages in errors.items() for message in messages]


def _username_prefix(owner: Owner) -> str:
    if owner.group is not None:
        return f"{USERNAME_PREFIX}_group_{owner.group.id}"
    if owner.project is not None:
        return f"{USERNAME_PREFIX}_project_{owner.project.id}"
    return USERNAME_PREFIX


def _email_domain(ctx: Ctx) -> str:
    return f"noreply.{ctx.instance.host}"


def _username_free(ctx: Ctx, username: str) -> bool:
    taken = ctx.db.scalar(select(User.id).where(User.username_lower == username.lower()))
    return taken is None and not route_taken(ctx.db, username)


def _email_free(ctx: Ctx, email: str, except_id: int | None = None) -> bool:
    query = select(User.id).where(User.email == email.lower())
    if except_id is not None:
        query = query.where(User.id != except_id)
    return ctx.db.scalar(query) is None


def _generated_identity(ctx: Ctx, owner: Owner) -> tuple[str, str]:
    """``<prefix>_<32 hex>`` and ``<username>@noreply.<host>``, neither of them taken."""
    prefix, domain = _username_prefix(owner), _email_domain(ctx)
    while True:
        username = f"{prefix}_{secrets.token_hex(16)}"
        email = f"{username}@{domain}"
        if _username_free(ctx, username) and _email_free(ctx, email):
            return username, email


def _identity_errors(ctx: Ctx, *, username: str, email: str, name: str) -> list[str]:
    errors: dict[str, list[str]] = {}
    if e := validation.email_errors(email):
        errors["email"] = e
    elif not _email_free(ctx, email):
        errors["email"] = ["has already been taken"]
    if e := validation.username_errors(username):
        errors["username"] = e
    elif not _username_free(ctx, username):
        errors["username"] = ["has already been taken"]
    if e := validation.display_name_errors(name):
        errors["name"] = e
    return _full_messages(errors)


def create_service_account(
    ctx: Ctx,
    owner: Owner,
    *,
    name: str | None = None,
    username: str | None = None,
    email: str | None = None,
) -> User:
    """Create a service account of ``owner`` (from instance_owner/group_owner/project_owner).

    Blank values are generated: name "Service account user", username
    ``service_account[_group_<id>|_project_<id>]_<32 hex>``, e-mail ``<username>@noreply.<host>``.
    Returns the new user (external, confirmed, with its personal namespace).

    Raises Invalid("User does not have permission to create a service account in this group.")
    for a subgroup (only top-level groups own service accounts) or, unless the actor is an
    admin, while allow_top_level_group_owners_to_create_service_accounts is off; Forbidden(NO_SEATS) when the
    license allows no more, Invalid with GitLab's sentence of errors for a bad or taken username
    or e-mail.
    """
    if owner.group is not None and (
        owner.group.parent_id is not None
        or not (
            ctx.actor.is_admin
            or instance_settings(ctx).allow_top_level_group_owners_to_create_service_accounts
        )
    ):
        # Top-level group Owners create their group's service accounts only while the instance
        # setting allows it; admins always may.
        raise Invalid("User does not have permission to create a service account in this group.")
    check_service_account_seat(ctx)
    name = _present(name) or DEFAULT_NAME
    username, email = _present(username), _present(email)
    if username is None:
        username, generated_email = _generated_identity(ctx, owner)
        email = email or generated_email
    elif email is None:
        email = f"{username}@{_email_domain(ctx)}"
    if messages := _identity_errors(ctx, username=username, email=email, name=name):
        raise Invalid(_sentence(messages))
    try:
        # A savepoint: a concurrent request that took the same username or e-mail makes this a
        # 400, not a failed transaction.
        with ctx.db.begin_nested():
            user = create_user(
                ctx,
                username=username,
                email=email,
                name=name,
                password=None,
                user_type=UserType.SERVICE_ACCOUNT,
                external=True,
            )
            user.provisioned_by_group_id = None if owner.group is None else owner.group.id
            user.provisioned_by_project_id = None if owner.project is None else owner.project.id
            ctx.db.flush()
    except IntegrityError:
        messages = _identity_errors(ctx, username=username, email=email, name=name)
        raise Invalid(_sentence(messages) or TAKEN) from None
    record(
        ctx,
        Event.SERVICE_ACCOUNT_CREATED,
        owner.audit_entity(),
        target=Target("User", user.id, user.username),
        provisioned_by=owner.kind,
    )
    return user


def update_service_account(
    ctx: Ctx,
    user: User,
    *,
    name: str | None = None,
    username: str | None = None,
    email: str | None = None,
) -> User:
    """Change a service account found with find_service_account; blank values are ignored.

    This instance sends no confirmation mail, so a new e-mail address applies at once. The
    personal namespace follows a new username. Returns the user. Raises Invalid with GitLab's
    sentence of errors for a bad or taken username or e-mail.
    """
    changes: dict[str, str] = {}
    name, username, email = _present(name), _present(username), _present(email)
    if name is not None and name != user.name:
        changes["name"] = name
    if username is not None and username != user.username:
        changes["username"] = username
    if email is not None and email.lower() != user.email:
        changes["email"] = email.lower()
    if not changes:
        return user
    if messages := _update_errors(ctx, user, changes):
        raise Invalid(". ".join(messages))
    # Every given field, changed or not (what GitLab's service-account update reports).
    diff = Changes({key: {"from": getattr(user, key), "to": value} for key, value in changes.items()})
    old_username, old_name = user.username, user.name
    try:
        # A savepoint: a concurrent request that took the same username or e-mail makes this a
        # 400, not a failed transaction.
        with ctx.db.begin_nested():
            for key, value in changes.items():
                setattr(user, key, value)
            user.username_lower = user.username.lower()
            user.updated_at = ctx.now()
            if "username" in changes or "name" in changes:
                follow_user(ctx, user.id, user.username, user.name, old_username, old_name)
            ctx.db.flush()
    except IntegrityError:
        raise Invalid(". ".join(_update_errors(ctx, user, changes)) or TAKEN) from None
    record_update(ctx, Event.SERVICE_ACCOUNT_UPDATED, user_entity(user), diff)
    return user


def _update_errors(ctx: Ctx, user: User, changes: dict[str, str]) -> list[str]:
    errors: dict[str, list[str]] = {}
    if (email := changes.get("email")) is not None:
        if e := validation.email_errors(email):
            errors["email"] = e
        elif not _email_free(ctx, email, except_id=user.id):
            errors["email"] = ["has already been taken"]
    if (username := changes.get("username")) is not None:
        if e := validation.username_errors(username):
            errors["username"] = e
        elif ctx.db.scalar(
            select(User.id).where(User.username_lower == username.lower(), User.id != user.id)
        ) is not None or _route_of_another(ctx, user, username):
            errors["username"] = ["has already been taken"]
    if (name := changes.get("name")) is not None and (e := validation.display_name_errors(name)):
        errors["name"] = e
    return _full_messages(errors)


def _route_of_another(ctx: Ctx, user: User, path: str) -> bool:
    """Whether ``path`` is taken by something other than ``user``'s own personal namespace."""
    route = find_source(ctx.db, path)
    if route is None:
        return False
    namespace = ctx.db.get(Namespace, route.source_id) if route.source_type == "Namespace" else None
    return not (namespace is not None and namespace.kind == "user" and namespace.owner_id == user.id)


def delete_service_account(ctx: Ctx, user: User, *, hard_delete: bool = False) -> None:
    """Delete a service account found with find_service_account, now.

    Soft (default): what it authored moves to the Ghost User; ``hard_delete`` removes it. Raises
    Conflict when it is the sole Owner of a group and ``hard_delete`` is not given.
    """
    # The permission was checked by the lookup that found the owner (group Owner, project
    # Maintainer, admin); the users API's admin-only rule does not apply here.
    destroy_user(ctx, user, hard_delete=hard_delete, skip_authorization=True)


# -- their personal access tokens ---------------------------------------------------------------


def create_service_account_token(
    ctx: Ctx,
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.date | None = None,
    description: str | None = None,
) -> IssuedToken:
    """Issue a personal access token for a service account found with find_service_account.

    Any scope GitLab offers personal tokens is accepted but the admin-only ones, which only an
    administrator may give, and only to an administrator's token (``grantable_scopes``: a service
    account is none). Returns the token with its value (shown once). Raises
    MissingParameter/BadParameter for name and scopes, Invalid for the expiry or description,
    Refused("Not permitted to create") when the account is blocked.
    """
    if user.is_blocked:
        raise Refused("Not permitted to create")
    return issue_personal_token(
        ctx,
        user,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
        description=description,
        service_account=True,
    )


def service_account_tokens_query(user: User) -> Select[Any]:
    """The service account's personal access tokens (impersonation tokens are not listed)."""
    return select(PersonalAccessToken).where(
        PersonalAccessToken.user_id == user.id, PersonalAccessToken.impersonation.is_(False)
    )


def service_account_token_listing(ctx: Ctx, user: User, filters: TokenFilters) -> Listing:
    """``service_account_tokens_query`` with ``filters``, as rows for ``token_view``, built once
    per shape: a user's own tokens, as they list them themselves."""
    return owned_token_listing(ctx, user.id, filters)


def find_service_account_token(ctx: Ctx, user: User, token_id: int) -> PersonalAccessToken:
    """One of the service account's tokens. Raises NotFound("Personal Access Token")."""
    token = ctx.db.get(PersonalAccessToken, token_id) if 0 < token_id <= MAX_ID else None
    if token is None or token.user_id != user.id or token.impersonation:
        raise NotFound("Personal Access Token")
    return token


# Service-account tokens are personal access tokens: the same lifecycle.
revoke_service_account_token = lifecycle.revoke_or_refuse
rotate_service_account_token = lifecycle.rotate
