"""What a route or membership belongs to, and GitLab's visibility levels."""

from __future__ import annotations

from enum import StrEnum


class Visibility(StrEnum):
    PRIVATE = "private"
    INTERNAL = "internal"
    PUBLIC = "public"

    @property
    def level(self) -> int:
        return _LEVELS[self]

    @classmethod
    def from_level(cls, level: int) -> Visibility:
        return _BY_LEVEL[level]


_LEVELS = {Visibility.PRIVATE: 0, Visibility.INTERNAL: 10, Visibility.PUBLIC: 20}
_BY_LEVEL = {level: visibility for visibility, level in _LEVELS.items()}


class SourceType(StrEnum):
    """What a membership or route belongs to (GitLab's polymorphic source_type values)."""

    NAMESPACE = "Namespace"
    PROJECT = "Project"
