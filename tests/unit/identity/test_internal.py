"""Rule: internal users are found or created on first need, exactly one per kind, with GitLab's
usernames, names and e-mails, and never take a seat (keycrew/identity/internal.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from keycrew.access.seats import is_billable
from keycrew.audit.events import Event
from keycrew.identity.internal import GHOST_BIO, KINDS, admin_bot, ghost, internal_user
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.instance.settings import Plan, set_license
from keycrew.namespaces.models import Namespace
from tests.unit import factories
from tests.unit.conftest import HOST, World

# GitLab's usernames, e-mails and names of its internal users (Users::Internal).
GITLAB_INTERNAL_USERS = {
    UserType.GHOST: ("ghost", "ghost@example.com", "Ghost User"),
    UserType.ALERT_BOT: ("alert-bot", f"alert@{HOST}", "GitLab Alert Bot"),
    UserType.MIGRATION_BOT: ("migration-bot", f"noreply+gitlab-migration-bot@{HOST}", "GitLab Migration Bot"),
    UserType.SECURITY_BOT: ("GitLab-Security-Bot", f"security-bot@{HOST}", "GitLab Security Bot"),
    UserType.SUPPORT_BOT: ("support-bot", f"support@{HOST}", "GitLab Support Bot"),
    UserType.AUTOMATION_BOT: ("automation-bot", f"automation@{HOST}", "GitLab Automation Bot"),
    UserType.ADMIN_BOT: ("GitLab-Admin-Bot", f"admin-bot@{HOST}", "GitLab Admin Bot"),
    UserType.VISUAL_REVIEW_BOT: ("visual-review-bot", f"visual_review@{HOST}", "Gitlab Visual Review Bot"),
    UserType.DUO_CODE_REVIEW_BOT: ("GitLabDuo", f"gitlab-duo@{HOST}", "GitLab Duo"),
}


def _count(world: World, user_type: UserType) -> int:
    return int(world.db.scalar(select(func.count(User.id)).where(User.user_type == int(user_type))) or 0)


def test_every_kind_is_covered() -> None:
    assert set(GITLAB_INTERNAL_USERS) == set(KINDS)


@pytest.mark.parametrize("user_type", list(GITLAB_INTERNAL_USERS))
def test_an_internal_user_has_gitlabs_name_and_email(world: World, user_type: UserType) -> None:
    user = internal_user(world.as_root(), user_type)
    assert (user.username, user.email, user.name) == GITLAB_INTERNAL_USERS[user_type]
    assert user.type is user_type
    assert user.is_internal
    assert user.password_digest is None
    assert user.admin is (user_type is UserType.ADMIN_BOT)
    assert user.can_create_group is False
    assert user.projects_limit == 0


@pytest.mark.parametrize("user_type", list(GITLAB_INTERNAL_USERS))
def test_exactly_one_per_kind_is_ever_created(world: World, user_type: UserType) -> None:
    ctx = world.as_root()
    assert _count(world, user_type) == 0
    first = internal_user(ctx, user_type)
    again = internal_user(ctx, user_type)
    assert again.id == first.id
    assert _count(world, user_type) == 1


def test_the_ghost_is_public_unconfirmed_and_explains_itself(world: World) -> None:
    user = ghost(world.as_root())
    assert user.bio == GHOST_BIO
    assert user.private_profile is False
    assert user.confirmed_at is None
    bot = admin_bot(world.as_root())
    assert bot.private_profile is True
    assert bot.confirmed_at == world.clock.now()


def test_an_internal_user_gets_its_personal_namespace(world: World) -> None:
    user = ghost(world.as_root())
    ns = world.db.scalars(select(Namespace).where(Namespace.owner_id == user.id)).one()
    assert (ns.kind, ns.full_path) == ("user", "ghost")


def test_a_taken_username_and_email_get_a_number(world: World) -> None:
    ctx = world.as_root()
    factories.user(ctx, username="ghost", email="ghost@example.com")
    factories.user(ctx, username="ghost1", email="someone@example.com")
    user = ghost(ctx)
    assert (user.username, user.email) == ("ghost2", "ghost1@example.com")


def test_creation_is_audited_as_the_internal_users_own_act(world: World) -> None:
    user = internal_user(world.ctx(world.root, ip="198.51.100.4"), UserType.SUPPORT_BOT)
    (event,) = world.events(Event.INTERNAL_USER_CREATED)
    assert (event.author_id, event.target_id, event.ip_address) == (user.id, user.id, "198.51.100.4")
    assert event.details == {"user_type": int(UserType.SUPPORT_BOT)}
    internal_user(world.as_root(), UserType.SUPPORT_BOT)
    assert len(world.events(Event.INTERNAL_USER_CREATED)) == 1


@pytest.mark.parametrize("plan", list(Plan))
def test_internal_users_are_never_billable(world: World, plan: Plan) -> None:
    ctx = world.as_root()
    set_license(ctx, plan.value, None)
    for user_type in GITLAB_INTERNAL_USERS:
        assert not is_billable(ctx, internal_user(ctx, user_type)), user_type
    # The check can say yes: a plain human is billable on every plan but Ultimate.
    assert is_billable(ctx, factories.user(ctx)) is (plan is not Plan.ULTIMATE)
