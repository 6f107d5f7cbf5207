"""Rule: GitLab's user types keep GitLab's integers, and which of them are internal, bots, or
one-per-instance singletons (keycrew/identity/types.py)."""

from __future__ import annotations

import pytest

from keycrew.identity.internal import KINDS
from keycrew.identity.types import (
    BOT_TYPES,
    INTERNAL_TYPES,
    NON_INTERNAL_TYPES,
    SINGLETON_TYPES,
    UserState,
    UserType,
)

# GitLab's users.user_type enum (app/models/concerns/has_user_type.rb).
GITLAB_VALUES = {
    "HUMAN": 0,
    "SUPPORT_BOT": 1,
    "ALERT_BOT": 2,
    "VISUAL_REVIEW_BOT": 3,
    "SERVICE_USER": 4,
    "GHOST": 5,
    "PROJECT_BOT": 6,
    "MIGRATION_BOT": 7,
    "SECURITY_BOT": 8,
    "AUTOMATION_BOT": 9,
    "SECURITY_POLICY_BOT": 10,
    "ADMIN_BOT": 11,
    "SERVICE_ACCOUNT": 13,
    "PLACEHOLDER": 15,
    "DUO_CODE_REVIEW_BOT": 16,
    "IMPORT_USER": 17,
}


def test_user_types_have_gitlabs_integers() -> None:
    assert {t.name: t.value for t in UserType} == GITLAB_VALUES


@pytest.mark.parametrize("retired", [12, 14])
def test_retired_type_numbers_are_not_reused(retired: int) -> None:
    with pytest.raises(ValueError, match="is not a valid UserType"):
        UserType(retired)


def test_only_humans_project_bots_service_users_and_service_accounts_are_not_internal() -> None:
    expected = {UserType.HUMAN, UserType.PROJECT_BOT, UserType.SERVICE_USER, UserType.SERVICE_ACCOUNT}
    assert expected == NON_INTERNAL_TYPES
    assert set(UserType) - expected == INTERNAL_TYPES
    assert [t for t in UserType if t.is_internal] == sorted(INTERNAL_TYPES)


@pytest.mark.parametrize(
    ("user_type", "internal", "bot"),
    [
        (UserType.HUMAN, False, False),
        (UserType.PROJECT_BOT, False, True),
        (UserType.SERVICE_ACCOUNT, False, True),
        (UserType.SERVICE_USER, False, False),
        (UserType.GHOST, True, False),
        (UserType.PLACEHOLDER, True, False),
        (UserType.IMPORT_USER, True, False),
        (UserType.ADMIN_BOT, True, True),
        (UserType.SUPPORT_BOT, True, True),
        (UserType.DUO_CODE_REVIEW_BOT, True, True),
    ],
)
def test_internal_and_bot_are_independent(user_type: UserType, internal: bool, bot: bool) -> None:
    assert user_type.is_internal is internal
    assert user_type.is_bot is bot


def test_bots_as_the_api_reports_them() -> None:
    assert UserType.GHOST not in BOT_TYPES
    assert UserType.HUMAN not in BOT_TYPES
    assert {UserType.PROJECT_BOT, UserType.SERVICE_ACCOUNT} <= BOT_TYPES


def test_singletons_are_internal_and_each_has_a_kind_to_create_it() -> None:
    assert SINGLETON_TYPES <= INTERNAL_TYPES
    assert set(KINDS) == SINGLETON_TYPES
    # Placeholders and import users come many to an instance; Security Policy Bots one per project.
    assert not {UserType.PLACEHOLDER, UserType.IMPORT_USER, UserType.SECURITY_POLICY_BOT} & SINGLETON_TYPES


def test_user_states_are_gitlabs_words() -> None:
    assert [s.value for s in UserState] == [
        "active",
        "blocked",
        "deactivated",
        "banned",
        "blocked_pending_approval",
    ]
