"""GitLab's access levels."""

from __future__ import annotations

from enum import IntEnum


class AccessLevel(IntEnum):
    NO_ACCESS = 0
    MINIMAL_ACCESS = 5
    GUEST = 10
    PLANNER = 15
    REPORTER = 20
    DEVELOPER = 30
    MAINTAINER = 40
    OWNER = 50

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").title()


# Levels a membership may hold (0 is "no access", not a membership).
MEMBER_LEVELS = frozenset(level for level in AccessLevel if level > AccessLevel.NO_ACCESS)
