"""Placeholder users: one per source user per destination top-level group, as GitLab makes them.

A source user's contributions are attributed to their placeholder until an Owner reassigns them.
Beyond the plan's placeholder limit the group's Import User stands in instead, and GitLab
Migration Bot authors what no available source user wrote (the source's Ghost User, a deleted or
blocked source user)."""

from __future__ import annotations

import secrets
import string
import zlib
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from keycrew.access.seats import billable_users_count
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Actor, Ctx
from keycrew.errors import Invalid
from keycrew.identity.internal import internal_user
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.imports.models import GITLAB_MIGRATION, ImportSourceUser, NamespaceImportUser, SourceUserStatus
from keycrew.instance.settings import Plan, instance_settings
from keycrew.namespaces.models import Namespace
from keycrew.namespaces.paths import route_taken
from keycrew.namespaces.personal import build_personal_namespace

# GitLab's User::MAX_USERNAME_LENGTH, and the room it leaves for the rest of a placeholder's name.
MAX_USERNAME_LENGTH = 255
_SOURCE_USERNAME_ROOM = MAX_USERNAME_LENGTH - 55
_ATTEMPTS = 5

# GitLab's placeholder limits per top-level group (plan limits import_placeholder_user_limit_tier_1
# to _4 on GitLab.com): by plan, then by the tier of the license's seats.
PLACEHOLDER_LIMITS: dict[Plan, tuple[int, int, int, int]] = {
    Plan.FREE: (200, 200, 200, 200),
    Plan.PREMIUM: (500, 2000, 4000, 6000),
    Plan.ULTIMATE: (1000, 4000, 6000, 8000),
}
# The seat counts at which tiers 1, 2 and 3 end (GitLab's EE limit names by licensed seats).
TIER_BOUNDS = (100, 500, 1000)


class AuthorReason(StrEnum):
    """Why an imported item is attributed to the user ``author_for`` chose."""

    PLACEHOLDER = "placeholder"
    REASSIGNED = "reassigned"
    # Beyond the placeholder limit, or imported into a personal namespace: the Import User.
    PLACEHOLDER_LIMIT = "placeholder_limit"
    PERSONAL_NAMESPACE = "personal_namespace"
    # GitLab Migration Bot: the source author is not available.
    SOURCE_GHOST_USER = "source_ghost_user"
    SOURCE_USER_DELETED = "source_user_deleted"
    SOURCE_USER_BLOCKED = "source_user_blocked"


# Source user states in which their contributions go to Migration Bot.
UNAVAILABLE_STATES = frozenset({"blocked", "banned", "ldap_blocked", "blocked_pending_approval"})


@dataclass(frozen=True)
class SourceAuthor:
    """A user as the source's API shows them (``id``, ``name``, ``username``, ``state``,
    ``user_type``)."""

    identifier: str
    name: str | None = None
    username: str | None = None
    state: str = "active"
    user_type: str | None = None


@dataclass(frozen=True)
class Attribution:
    """Who an imported item is attributed to, and why."""

    user: User
    reason: AuthorReason
    source_user: ImportSourceUser | None = None


def normalized_hostname(url: str) -> str:
    """The source's base URL as GitLab keeps it: scheme://host[:port], lower-cased."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("source_hostname is not a valid URL")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme.lower()}://{host}" + (f":{parts.port}" if parts.port else "")


def root_of(ctx: Ctx, namespace: Namespace) -> Namespace:
    """The top-level namespace above ``namespace`` (itself if it has no parent)."""
    root = namespace
    while root.parent_id is not None:
        parent = ctx.db.get(Namespace, root.parent_id)
        if parent is None:
            break
        root = parent
    return root


# -- naming ----------------------------------------------------------------------------------------


def placeholder_name(source_name: str | None, import_type: str = GITLAB_MIGRATION) -> str:
    if not source_name:
        return f"Placeholder {import_type} Source User"
    return f"Placeholder {source_name[:127]}"


def placeholder_username_base(
    namespace_path: str,
    source_user_identifier: str,
    source_username: str | None,
    import_type: str = GITLAB_MIGRATION,
) -> str:
    """``<username, letters and digits only>_placeholder_<CRC32 of group path and source id, base 36>``
    (the import type instead of an unusable username); a counter follows when it is taken."""
    segment = "".join(c for c in (source_username or "") if c.isascii() and c.isalnum())[
        :_SOURCE_USERNAME_ROOM
    ]
    random_segment = _base36(zlib.crc32((namespace_path + source_user_identifier).encode()))
    return f"{segment or import_type}_placeholder_{random_segment}"


def _base36(value: int) -> str:
    digits = string.digits + string.ascii_lowercase
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if value == 0:
            return out


def _free_username_and_email(ctx: Ctx, base: str) -> tuple[str, str]:
    """``base``, then ``base1``, ``base2``...: the first free as a username, a path and, at
    ``noreply.<host>``, an e-mail address (GitLab's UsernameAndEmailGenerator)."""
    n = 0
    while True:
        candidate = base if n == 0 else f"{base}{n}"
        email = f"{candidate}@noreply.{ctx.instance.host}".lower()
        taken = (
            route_taken(ctx.db, candidate)
            or ctx.db.scalar(select(User.id).where(User.username_lower == candidate.lower()))
            or ctx.db.scalar(select(User.id).where(User.email == email))
        )
        if not taken:
            return candidate, email
        n += 1


def _new_internal(ctx: Ctx, user_type: UserType, username: str, email: str, name: str) -> User:
    now = ctx.now()
    user = User(
        username=username,
        username_lower=username.lower(),
        name=name,
        email=email,
        password_digest=None,
        user_type=int(user_type),
        state="active",
        admin=False,
        private_profile=False,
        confirmed_at=now,
        can_create_group=False,
        projects_limit=0,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(user)
    ctx.db.flush()
    build_personal_namespace(ctx, user.id, user.username, user.name)
    return user


def migration_bot(ctx: Ctx) -> User:
    return internal_user(ctx, UserType.MIGRATION_BOT)


def _as_migration_bot(ctx: Ctx) -> Ctx:
    return ctx.as_actor(Actor(user=migration_bot(ctx), ip=ctx.actor.ip, via="system"))


# -- limits ----------------------------------------------------------------------------------------


def placeholder_limit(ctx: Ctx) -> int:
    """How many placeholders one top-level group may have under the instance's plan: the plan's
    numbers at the tier of the license's paid seats (the billable users when seats are unlimited)."""
    settings = instance_settings(ctx)
    seats = settings.seats if settings.seats is not None else billable_users_count(ctx)
    tier = sum(1 for bound in TIER_BOUNDS if seats > bound)
    return PLACEHOLDER_LIMITS[Plan(settings.plan)][tier]


def placeholder_count(ctx: Ctx, namespace: Namespace) -> int:
    """The placeholder users of ``namespace``'s source users (the Import User not counted)."""
    return int(
        ctx.db.scalar(
            select(func.count(func.distinct(ImportSourceUser.placeholder_user_id)))
            .join(User, User.id == ImportSourceUser.placeholder_user_id)
            .where(
                ImportSourceUser.namespace_id == namespace.id,
                User.user_type == int(UserType.PLACEHOLDER),
            )
        )
        or 0
    )


def limit_reached(ctx: Ctx, namespace: Namespace) -> bool:
    limit = placeholder_limit(ctx)
    return limit > 0 and placeholder_count(ctx, namespace) >= limit


# -- the Import User -------------------------------------------------------------------------------


def _import_user_of(ctx: Ctx, namespace: Namespace) -> User | None:
    return ctx.db.scalars(
        select(User)
        .join(NamespaceImportUser, NamespaceImportUser.user_id == User.id)
        .where(NamespaceImportUser.namespace_id == namespace.id)
    ).first()


def import_user(ctx: Ctx, namespace: Namespace) -> User:
    """The Import User of ``namespace``'s top-level namespace, created on first need (one per
    namespace even under concurrent first use: the loser reads the winner's)."""
    root = root_of(ctx, namespace)
    for _attempt in range(_ATTEMPTS):
        found = _import_user_of(ctx, root)
        if found is not None:
            return found
        try:
            with ctx.db.begin_nested():
                suffix = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(4))
                username, email = _free_username_and_email(ctx, f"import_user_{root.path}_{suffix}")
                user = _new_internal(ctx, UserType.IMPORT_USER, username, email, "Import User")
                ctx.db.add(NamespaceImportUser(namespace_id=root.id, user_id=user.id))
                ctx.db.flush()
                record(
                    _as_migration_bot(ctx),
                    Event.IMPORT_USER_CREATED,
                    Entity("Group" if root.is_group else "Namespace", root.id, root.full_path),
                    target=Target("User", user.id, user.username),
                )
            return user
        except IntegrityError:
            continue
    raise RuntimeError(f"could not create the Import User of {root.full_path}")


# -- source users ----------------------------------------------------------------------------------


def find_source_user(
    ctx: Ctx,
    namespace: Namespace,
    *,
    source_hostname: str,
    source_user_identifier: str,
    import_type: str = GITLAB_MIGRATION,
) -> ImportSourceUser | None:
    root = root_of(ctx, namespace)
    return ctx.db.scalars(
        select(ImportSourceUser).where(
            ImportSourceUser.namespace_id == root.id,
            ImportSourceUser.source_hostname == normalized_hostname(source_hostname),
            ImportSourceUser.source_user_identifier == str(source_user_identifier),
            ImportSourceUser.import_type == import_type,
        )
    ).first()


def find_or_create_source_user(
    ctx: Ctx,
    namespace: Namespace,
    *,
    source_hostname: str,
    source_user_identifier: str,
    source_name: str | None,
    source_username: str | None,
    import_type: str = GITLAB_MIGRATION,
) -> ImportSourceUser:
    """The source user of ``namespace``'s top-level namespace, with the placeholder that stands in
    for them: made now if they are new (the top-level group's Import User instead beyond the
    plan's placeholder limit or in a personal namespace). Two importers asking at once get one:
    a unique constraint settles it, the loser's savepoint is rolled back and it reads the winner's."""
    root = root_of(ctx, namespace)
    hostname = normalized_hostname(source_hostname)
    identifier = str(source_user_identifier).strip()
    if not identifier:
        raise Invalid("source_user_identifier is missing")
    for _attempt in range(_ATTEMPTS):
        found = find_source_user(
            ctx, root, source_hostname=hostname, source_user_identifier=identifier, import_type=import_type
        )
        if found is not None:
            return found
        try:
            with ctx.db.begin_nested():
                now = ctx.now()
                source_user = ImportSourceUser(
                    namespace_id=root.id,
                    source_user_identifier=identifier,
                    source_hostname=hostname,
                    source_name=(source_name or None) and source_name[:255],
                    source_username=(source_username or None) and source_username[:255],
                    status=SourceUserStatus.PENDING_REASSIGNMENT.value,
                    import_type=import_type,
                    created_at=now,
                    updated_at=now,
                )
                ctx.db.add(source_user)
                ctx.db.flush()
                if not root.is_group or limit_reached(ctx, root):
                    stand_in = import_user(ctx, root)
                else:
                    stand_in = _create_placeholder(ctx, root, source_user)
                source_user.placeholder_user_id = stand_in.id
                ctx.db.flush()
            return source_user
        except IntegrityError:
            continue
    raise RuntimeError("could not create the source user")


def _create_placeholder(ctx: Ctx, root: Namespace, source_user: ImportSourceUser) -> User:
    base = placeholder_username_base(
        root.path, source_user.source_user_identifier, source_user.source_username, source_user.import_type
    )
    username, email = _free_username_and_email(ctx, base)
    user = _new_internal(
        ctx,
        UserType.PLACEHOLDER,
        username,
        email,
        placeholder_name(source_user.source_name, source_user.import_type),
    )
    record(
        _as_migration_bot(ctx),
        Event.PLACEHOLDER_USER_CREATED,
        Entity("Group", root.id, root.full_path),
        target=Target("User", user.id, user.username),
        source_user_id=source_user.id,
        source_hostname=source_user.source_hostname,
        source_user_identifier=source_user.source_user_identifier,
        import_type=source_user.import_type,
    )
    return user


# -- attribution -----------------------------------------------------------------------------------


def author_for(
    ctx: Ctx,
    namespace: Namespace,
    source: SourceAuthor | None,
    *,
    source_hostname: str,
    import_type: str = GITLAB_MIGRATION,
) -> Attribution:
    """Who authors an imported item whose source author is ``source`` (None: the source no longer
    has them): GitLab Migration Bot when the author is unavailable (deleted, the source's Ghost
    User, blocked), else the user their source user maps to (the reassigned user once reassignment
    completed, their placeholder, or the Import User beyond the limit)."""
    if source is None:
        return Attribution(migration_bot(ctx), AuthorReason.SOURCE_USER_DELETED)
    if source.user_type == "ghost":
        return Attribution(migration_bot(ctx), AuthorReason.SOURCE_GHOST_USER)
    if source.state in UNAVAILABLE_STATES:
        return Attribution(migration_bot(ctx), AuthorReason.SOURCE_USER_BLOCKED)
    source_user = find_or_create_source_user(
        ctx,
        namespace,
        source_hostname=source_hostname,
        source_user_identifier=source.identifier,
        source_name=source.name,
        source_username=source.username,
        import_type=import_type,
    )
    if source_user.status == SourceUserStatus.COMPLETED.value and source_user.reassign_to_user_id is not None:
        reassigned = ctx.db.get(User, source_user.reassign_to_user_id)
        if reassigned is not None:
            return Attribution(reassigned, AuthorReason.REASSIGNED, source_user)
    stand_in = ctx.db.get(User, source_user.placeholder_user_id) if source_user.placeholder_user_id else None
    if stand_in is None:
        # The stand-in was deleted: the Import User keeps the contribution (never lost).
        stand_in = import_user(ctx, namespace)
        source_user.placeholder_user_id = stand_in.id
        source_user.updated_at = ctx.now()
        ctx.db.flush()
    if stand_in.user_type == int(UserType.PLACEHOLDER):
        return Attribution(stand_in, AuthorReason.PLACEHOLDER, source_user)
    root = root_of(ctx, namespace)
    reason = AuthorReason.PLACEHOLDER_LIMIT if root.is_group else AuthorReason.PERSONAL_NAMESPACE
    return Attribution(stand_in, reason, source_user)
