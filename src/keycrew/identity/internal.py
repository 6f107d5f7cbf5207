"""The registry of internal users: found, or created on first need, exactly one per kind."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Actor, Ctx
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.paths import route_taken
from keycrew.namespaces.personal import build_personal_namespace


@dataclass(frozen=True)
class InternalKind:
    user_type: UserType
    username: str
    # %s is the uniquifier ("" first, then 1, 2, ...); {host} the instance's host.
    email: str
    name: str
    bio: str = ""
    admin: bool = False


GHOST_BIO = (
    'This is a "Ghost User", created to hold all issues authored by users that have since been '
    "deleted. This user cannot be removed."
)

KINDS: dict[UserType, InternalKind] = {
    k.user_type: k
    for k in (
        InternalKind(UserType.GHOST, "ghost", "ghost%s@example.com", "Ghost User", GHOST_BIO),
        InternalKind(
            UserType.ALERT_BOT, "alert-bot", "alert%s@{host}", "GitLab Alert Bot", "The GitLab alert bot"
        ),
        InternalKind(
            UserType.MIGRATION_BOT,
            "migration-bot",
            "noreply+gitlab-migration-bot%s@{host}",
            "GitLab Migration Bot",
            "The GitLab migration bot",
        ),
        InternalKind(
            UserType.SECURITY_BOT,
            "GitLab-Security-Bot",
            "security-bot%s@{host}",
            "GitLab Security Bot",
            "System bot that monitors detected vulnerabilities for solutions "
            "and creates merge requests with the fixes.",
        ),
        InternalKind(
            UserType.SUPPORT_BOT,
            "support-bot",
            "support%s@{host}",
            "GitLab Support Bot",
            "The GitLab support bot used for Service Desk",
        ),
        InternalKind(
            UserType.AUTOMATION_BOT,
            "automation-bot",
            "automation%s@{host}",
            "GitLab Automation Bot",
            "The GitLab automation bot used for automated workflows",
        ),
        InternalKind(
            UserType.ADMIN_BOT,
            "GitLab-Admin-Bot",
            "admin-bot%s@{host}",
            "GitLab Admin Bot",
            "The GitLab admin bot used for automated admin tasks",
            admin=True,
        ),
        InternalKind(
            UserType.VISUAL_REVIEW_BOT,
            "visual-review-bot",
            "visual_review%s@{host}",
            "Gitlab Visual Review Bot",
            "The Gitlab Visual Review feedback bot",
        ),
        InternalKind(
            UserType.DUO_CODE_REVIEW_BOT,
            "GitLabDuo",
            "gitlab-duo%s@{host}",
            "GitLab Duo",
            "GitLab Duo bot for handling AI tasks",
        ),
    )
}


def _find(ctx: Ctx, user_type: UserType) -> User | None:
    return ctx.db.scalars(select(User).where(User.user_type == int(user_type)).limit(1)).first()


def _free_username(ctx: Ctx, base: str) -> str:

    candidate, n = base, 0
    while route_taken(ctx.db, candidate) or ctx.db.scalar(
        select(User.id).where(User.username_lower == candidate.lower())
    ):
        n += 1
        candidate = f"{base}{n}"
    return candidate


def _free_email(ctx: Ctx, pattern: str) -> str:
    n = 0
    while True:
        candidate = (pattern % ("" if n == 0 else n)).format(host=ctx.instance.host).lower()
        if not ctx.db.scalar(select(User.id).where(User.email == candidate)):
            return candidate
        n += 1


def internal_user(ctx: Ctx, user_type: UserType) -> User:
    """The instance's one user of ``user_type``, created now if this is its first need.

    Concurrent first use is settled by a partial unique index on ``user_type``: the loser's insert
    fails inside a savepoint and it reads the winner's row instead.
    """
    kind = KINDS[user_type]
    existing = _find(ctx, user_type)
    if existing is not None:
        return existing
    for _attempt in range(5):
        try:
            with ctx.db.begin_nested():
                user = _build(ctx, kind)
                ctx.db.add(user)
                ctx.db.flush()
                # Attributed to the new internal user itself: nobody asked for it by name.
                record(
                    ctx.as_actor(Actor(user=user, ip=ctx.actor.ip, via="system")),
                    Event.INTERNAL_USER_CREATED,
                    Entity("User", user.id, user.username),
                    target=Target("User", user.id, user.username),
                    user_type=int(user_type),
                )
                ctx.db.flush()
            return user
        except IntegrityError:
            existing = _find(ctx, user_type)
            if existing is not None:
                return existing
    raise RuntimeError(f"could not create the internal user {kind.username}")


def _build(ctx: Ctx, kind: InternalKind) -> User:

    now = ctx.now()
    username = _free_username(ctx, kind.username)
    user = User(
        username=username,
        username_lower=username.lower(),
        name=kind.name,
        email=_free_email(ctx, kind.email),
        password_digest=None,
        user_type=int(kind.user_type),
        state="active",
        admin=kind.admin,
        bio=kind.bio,
        private_profile=kind.user_type is not UserType.GHOST,
        confirmed_at=None if kind.user_type is UserType.GHOST else now,
        can_create_group=False,
        projects_limit=0,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(user)
    ctx.db.flush()
    build_personal_namespace(ctx, user.id, user.username, user.name)
    return user


def ghost(ctx: Ctx) -> User:
    return internal_user(ctx, UserType.GHOST)


def admin_bot(ctx: Ctx) -> User:
    return internal_user(ctx, UserType.ADMIN_BOT)
