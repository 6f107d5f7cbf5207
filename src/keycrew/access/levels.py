"""GitLab's access levels and visibility levels."""

from __future__ import annotations

from enum import IntEnum, StrEnum


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


class Visibility(StrEnum):
    PRIVATE = "private"
    INTERNAL = "internal"
    PUBLIC = "public"

    @property
    def level(self) -> int:
        return {"private": 0, "internal": 10, "public": 20}[self.value]

    @classmethod
    def from_level(cls, level: int) -> Visibility:
        return {0: cls.PRIVATE, 10: cls.INTERNAL, 20: cls.PUBLIC}[level]


class SourceType(StrEnum):
    """What a membership or route belongs to (GitLab's polymorphic source_type values)."""

    NAMESPACE = "Namespace"
    PROJECT = "Project"
