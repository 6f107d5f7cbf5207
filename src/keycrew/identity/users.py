"""Use cases on users: create (as the system or an admin) and update. Lifecycle is in lifecycle.py,
deletion (which crosses packages) in keycrew.actions.deletion."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from keycrew.audit.events import Event
from keycrew.audit.service import Changes, Entity, Target, record, record_update
from keycrew.context import Ctx
from keycrew.db.base import MAX_INT
from keycrew.errors import Conflict, Forbidden, Invalid, MissingParameter
from keycrew.identity import validation
from keycrew.identity.admins import keep_an_admin
from keycrew.identity.models import User, UserSession
from keycrew.identity.passwords import MIN_LENGTH, hash_password
from keycrew.identity.queries import lock_user
from keycrew.identity.types import UserState, UserType
from keycrew.instance.settings import instance_settings
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace
from keycrew.namespaces.paths import find_source, route_taken
from keycrew.namespaces.personal import build_personal_namespace, follow_user

BIO_MAX = 255
NOTE_MAX = 1000
DEFAULT_PROJECTS_LIMIT = 100000


def check_new_identity(ctx: Ctx, *, username: str, email: str, name: str, password: str | None) -> None:
    """Raise Invalid with GitLab's per-field messages if a new user's identity is not acceptable."""

    errors: dict[str, list[str]] = {}
    if e := validation.username_errors(username):
        errors["username"] = e
    elif ctx.db.scalar(select(User.id).where(User.username_lower == username.lower())) or route_taken(
        ctx.db, username
    ):
        errors["username"] = ["has already been taken"]
    if e := validation.email_errors(email):
        errors["email"] = e
    elif ctx.db.scalar(select(User.id).where(User.email == email.lower())):
        errors["email"] = ["has already been taken"]
    if e := validation.display_name_errors(name):
        errors["name"] = e
    if password is not None and len(password) < MIN_LENGTH:
        errors["password"] = [f"is too short (minimum is {MIN_LENGTH} characters)"]
    if errors:
        raise Invalid("", errors)


def create_user(
    ctx: Ctx,
    *,
    username: str,
    email: str,
    name: str,
    password: str | None = None,
    admin: bool = False,
    user_type: UserType = UserType.HUMAN,
    external: bool = False,
    confirmed: bool = True,
    private_profile: bool = False,
    can_create_group: bool = True,
    projects_limit: int = 100000,
    bio: str = "",
    note: str | None = None,
    state: UserState = UserState.ACTIVE,
) -> User:
    """Create a user with their personal namespace. Raises Invalid on a bad or taken identity."""

    check_new_identity(ctx, username=username, email=email, name=name, password=password)
    now = ctx.now()
    user = User(
        username=username,
        username_lower=username.lower(),
        name=name,
        email=email.lower(),
        password_digest=None if password is None else hash_password(password),
        user_type=int(user_type),
        state=state.value,
        admin=admin,
        external=external,
        private_profile=private_profile,
        can_create_group=can_create_group,
        projects_limit=projects_limit,
        bio=bio,
        note=note,
        confirmed_at=now if confirmed else None,
        created_by_id=ctx.actor.user_id,
        created_at=now,
        updated_at=now,
    )
    try:
        # A savepoint: a concurrent request may take the same username, e-mail or path between
        # the checks above and this insert; the unique indexes decide and we answer 400.
        with ctx.db.begin_nested():
            ctx.db.add(user)
            ctx.db.flush()
            build_personal_namespace(ctx, user.id, user.username, user.name)
            ctx.db.flush()
    except IntegrityError:
        check_new_identity(ctx, username=username, email=email, name=name, password=password)
        raise Invalid("", {"username": ["has already been taken"]}) from None
    record(
        ctx,
        Event.USER_CREATED,
        Entity("User", user.id, user.username),
        target=Target("User", user.id, user.username),
        user_type=int(user_type),
        admin=admin or None,
    )
    return user


def user_entity(user: User) -> Entity:
    return Entity("User", user.id, user.username)


def _require_admin(ctx: Ctx) -> None:
    if not ctx.actor.is_admin:
        raise Forbidden()


def _email_taken(ctx: Ctx, email: str, except_id: int | None = None) -> bool:
    query = select(User.id).where(User.email == email.lower())
    if except_id is not None:
        query = query.where(User.id != except_id)
    return ctx.db.scalar(query) is not None


def _username_taken(ctx: Ctx, username: str, except_id: int | None = None) -> bool:
    query = select(User.id).where(User.username_lower == username.lower())
    if except_id is not None:
        query = query.where(User.id != except_id)
    return ctx.db.scalar(query) is not None


def _profile_errors(bio: str | None, note: str | None, projects_limit: int | None) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if bio is not None and len(bio) > BIO_MAX:
        errors["bio"] = [f"is too long (maximum is {BIO_MAX} characters)"]
    if note is not None and len(note) > NOTE_MAX:
        errors["note"] = [f"is too long (maximum is {NOTE_MAX} characters)"]
    if projects_limit is not None and projects_limit < 0:
        errors["projects_limit"] = ["must be greater than or equal to 0"]
    elif projects_limit is not None and projects_limit > MAX_INT:
        errors["projects_limit"] = [f"must be less than or equal to {MAX_INT}"]
    return errors


@dataclass(frozen=True)
class NewUser:
    """POST /users input. At least one of password, reset_password, force_random_password."""

    username: str | None
    email: str | None
    name: str | None
    password: str | None = None
    reset_password: bool = False
    force_random_password: bool = False
    skip_confirmation: bool = False
    admin: bool = False
    external: bool = False
    bio: str | None = None
    note: str | None = None
    projects_limit: int | None = None
    can_create_group: bool | None = None
    private_profile: bool | None = None


def admin_create_user(ctx: Ctx, new: NewUser) -> User:
    """An admin creates a user (GitLab's POST /users).

    Raises Forbidden (not an admin), MissingParameter (Grape's "x is missing"), Conflict (e-mail
    or username of another user: GitLab answers 409 there), Invalid (per-field messages).
    """
    _require_admin(ctx)
    missing: list[str] = []
    if new.email is None:
        missing.append("email is missing")
    if new.password is None and not new.reset_password and not new.force_random_password:
        missing.append(
            "password, reset_password, force_random_password are missing, "
            "at least one parameter must be provided"
        )
    if new.name is None:
        missing.append("name is missing")
    if new.username is None:
        missing.append("username is missing")
    if missing:
        raise MissingParameter(", ".join(missing))
    assert new.email is not None
    assert new.username is not None
    assert new.name is not None
    email, username, name = new.email, new.username, new.name
    if _email_taken(ctx, email):
        raise Conflict("Email has already been taken")
    if _username_taken(ctx, username):
        raise Conflict("Username has already been taken")
    if errors := _profile_errors(new.bio, new.note, new.projects_limit):
        raise Invalid("", errors)
    # reset_password would mail a reset link; keycrew sends no mail, so both flags leave the
    # account with a random password nobody knows until an admin sets one.
    password = new.password if new.password is not None else secrets.token_urlsafe(24)
    try:
        return create_user(
            ctx,
            username=username,
            email=email,
            name=name,
            password=password,
            admin=new.admin,
            external=new.external,
            # Confirmed when created unless the instance asks for e-mail confirmation
            # (email_confirmation_setting soft or hard) and the admin did not skip it.
            confirmed=new.skip_confirmation or instance_settings(ctx).email_confirmation_setting == "off",
            private_profile=bool(new.private_profile),
            can_create_group=True if new.can_create_group is None else new.can_create_group,
            projects_limit=(
                instance_settings(ctx).default_projects_limit
                if new.projects_limit is None
                else new.projects_limit
            ),
            bio=new.bio or "",
            note=new.note,
        )
    except Invalid:
        # GitLab checks for conflicts after a failed save: a race lost to another request is 409.
        if _email_taken(ctx, email):
            raise Conflict("Email has already been taken") from None
        if _username_taken(ctx, username):
            raise Conflict("Username has already been taken") from None
        raise


# Attributes PUT /users/:id may change.
UPDATABLE = (
    "name",
    "email",
    "username",
    "admin",
    "external",
    "bio",
    "note",
    "projects_limit",
    "can_create_group",
    "private_profile",
    "password",
)


def update_user(ctx: Ctx, user: User, changes: dict[str, Any]) -> User:
    """An admin changes ``user`` (GitLab's PUT /users/:id). ``changes`` holds only given attributes.

    Internal users (Ghost and the bots) can be changed by nobody, and the last active
    administrator cannot lose the admin flag (identity/admins.py). Raises Forbidden, Conflict
    (e-mail or username of another user), Invalid (per-field messages).
    """
    _require_admin(ctx)
    if user.is_internal:
        raise Forbidden("Internal users cannot be modified")
    if changes.get("admin") is False:
        keep_an_admin(ctx, user, "demoted")
    user = lock_user(ctx, user)
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    email, username = changes.get("email"), changes.get("username")
    if email is not None and _email_taken(ctx, email, except_id=user.id):
        raise Conflict("Email has already been taken")
    if username is not None and _username_taken(ctx, username, except_id=user.id):
        raise Conflict("Username has already been taken")
    errors = _update_errors(ctx, user, changes)
    if errors:
        raise Invalid("", errors)
    old_username, old_name = user.username, user.name
    diff = Changes()
    for key, value in changes.items():
        if key == "password":
            user.password_digest = hash_password(value)
            diff["password"] = "changed"
            continue
        if key == "email":
            value = value.lower()
        if diff.note(key, getattr(user, key), value):
            setattr(user, key, value)
    if "username" in diff:
        user.username_lower = user.username.lower()
    if not diff:
        return user
    user.updated_at = ctx.now()
    try:
        with ctx.db.begin_nested():
            if "username" in diff or "name" in diff:
                follow_user(ctx, user.id, user.username, user.name, old_username, old_name)
            ctx.db.flush()
    except IntegrityError:
        # Lost a race for the e-mail, username or path to a concurrent request.
        if email is not None and _email_taken(ctx, email, except_id=user.id):
            raise Conflict("Email has already been taken") from None
        if username is not None and _username_taken(ctx, username, except_id=user.id):
            raise Conflict("Username has already been taken") from None
        raise Invalid("", {"username": ["has already been taken"]}) from None
    # A new password signs the user out everywhere, as a block does: whoever holds a session opened
    # with the old one (or stole its cookie) must sign in again.
    ended = end_sessions(ctx, user) if "password" in diff else 0
    record_update(
        ctx, Event.USER_UPDATED, user_entity(user), diff, **({"sessions_ended": ended} if ended else {})
    )
    return user


def end_sessions(ctx: Ctx, user: User) -> int:
    """End every web session of ``user`` at once (their rows go: each request reads its session
    from the database, so every worker and node refuses the cookie from now on). Returns how many
    there were; the caller's audit event says why."""
    result = ctx.db.execute(delete(UserSession).where(UserSession.user_id == user.id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _update_errors(ctx: Ctx, user: User, changes: dict[str, Any]) -> dict[str, list[str]]:

    errors: dict[str, list[str]] = {}
    username = changes.get("username")
    if username is not None:
        route = find_source(ctx.db, username)
        if e := validation.username_errors(username):
            errors["username"] = e
        elif route is not None and not _is_own_route(ctx, user, route):
            # A group or another project's path: usernames and paths share one namespace.
            errors["username"] = ["has already been taken"]
    if (email := changes.get("email")) is not None and (e := validation.email_errors(email)):
        errors["email"] = e
    if (name := changes.get("name")) is not None and (e := validation.display_name_errors(name)):
        errors["name"] = e
    password = changes.get("password")
    if password is not None and len(password) < MIN_LENGTH:
        errors["password"] = [f"is too short (minimum is {MIN_LENGTH} characters)"]
    errors.update(_profile_errors(changes.get("bio"), changes.get("note"), changes.get("projects_limit")))
    return errors


def _is_own_route(ctx: Ctx, user: User, route: Any) -> bool:

    if route.source_type != SourceType.NAMESPACE.value:
        return False
    ns = ctx.db.get(Namespace, route.source_id)
    return ns is not None and ns.kind == "user" and ns.owner_id == user.id
