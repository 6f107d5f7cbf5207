"""GitLab's user types and states, with the exact integers its API and database use."""

from __future__ import annotations

from enum import IntEnum, StrEnum


class UserType(IntEnum):
    HUMAN = 0
    SUPPORT_BOT = 1
    ALERT_BOT = 2
    VISUAL_REVIEW_BOT = 3
    SERVICE_USER = 4
    GHOST = 5
    PROJECT_BOT = 6
    MIGRATION_BOT = 7
    SECURITY_BOT = 8
    AUTOMATION_BOT = 9
    SECURITY_POLICY_BOT = 10
    ADMIN_BOT = 11
    # 12 (suggested_reviewers_bot) and 14 (llm_bot) were retired by GitLab and are never reused.
    SERVICE_ACCOUNT = 13
    PLACEHOLDER = 15
    DUO_CODE_REVIEW_BOT = 16
    IMPORT_USER = 17

    @property
    def is_internal(self) -> bool:
        return self not in NON_INTERNAL_TYPES

    @property
    def is_bot(self) -> bool:
        return self in BOT_TYPES


NON_INTERNAL_TYPES = frozenset(
    {UserType.HUMAN, UserType.PROJECT_BOT, UserType.SERVICE_USER, UserType.SERVICE_ACCOUNT}
)
INTERNAL_TYPES = frozenset(t for t in UserType if t not in NON_INTERNAL_TYPES)
# GitLab's BOT_USER_TYPES: what the API's `bot` field reports. Ghost, placeholders and import
# users are internal but not bots; service accounts are bots but not internal.
BOT_TYPES = frozenset(
    {
        UserType.ALERT_BOT,
        UserType.PROJECT_BOT,
        UserType.SUPPORT_BOT,
        UserType.VISUAL_REVIEW_BOT,
        UserType.MIGRATION_BOT,
        UserType.SECURITY_BOT,
        UserType.AUTOMATION_BOT,
        UserType.SECURITY_POLICY_BOT,
        UserType.ADMIN_BOT,
        UserType.SERVICE_ACCOUNT,
        UserType.DUO_CODE_REVIEW_BOT,
    }
)
# Internal users of which the instance has exactly one (find-or-create by type).
SINGLETON_TYPES = frozenset(
    {
        UserType.GHOST,
        UserType.SUPPORT_BOT,
        UserType.ALERT_BOT,
        UserType.VISUAL_REVIEW_BOT,
        UserType.MIGRATION_BOT,
        UserType.SECURITY_BOT,
        UserType.AUTOMATION_BOT,
        UserType.ADMIN_BOT,
        UserType.DUO_CODE_REVIEW_BOT,
    }
)


class UserState(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    DEACTIVATED = "deactivated"
    BANNED = "banned"
    BLOCKED_PENDING_APPROVAL = "blocked_pending_approval"
