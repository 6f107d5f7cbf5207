"""What a route or membership belongs to, and GitLab's visibility levels."""

from __future__ import annotations

from enum import StrEnum


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
