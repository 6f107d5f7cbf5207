"""A project or a group, as what memberships, access tokens, deploy tokens and service accounts
belong to: one abstraction for the rules that differ between the two."""

from __future__ import annotations

from dataclasses import dataclass

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import effective_group_level, effective_project_level, namespace_chain
from keycrew.audit.service import Entity
from keycrew.context import Ctx
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project


@dataclass(frozen=True)
class Resource:
    """A project, or a group (a namespace of kind "group")."""

    obj: Project | Namespace

    @classmethod
    def of(cls, obj: Project | Namespace) -> Resource:
        return cls(obj)

    @classmethod
    def either(cls, project: Project | None, group: Namespace | None) -> Resource:
        """The one of ``project`` and ``group`` that is given (exactly one must be)."""
        if (project is None) == (group is None):
            raise ValueError("exactly one of a project or a group")
        obj = project if project is not None else group
        assert obj is not None
        return cls(obj)

    @property
    def is_project(self) -> bool:
        return isinstance(self.obj, Project)

    @property
    def project(self) -> Project | None:
        return self.obj if isinstance(self.obj, Project) else None

    @property
    def group(self) -> Namespace | None:
        return None if isinstance(self.obj, Project) else self.obj

    @property
    def source_type(self) -> SourceType:
        """GitLab's polymorphic source_type of memberships and routes."""
        return SourceType.PROJECT if self.is_project else SourceType.NAMESPACE

    @property
    def id(self) -> int:
        return self.obj.id

    @property
    def full_path(self) -> str:
        return self.obj.full_path

    @property
    def kind(self) -> str:
        """ "project" or "group", as GitLab words its messages."""
        return "project" if self.is_project else "group"

    @property
    def entity(self) -> Entity:
        """Where audit events about this resource belong."""
        return Entity("Project" if self.is_project else "Group", self.obj.id, self.obj.full_path)

    @property
    def admin_level(self) -> AccessLevel:
        """The level that administers it (members, access tokens, deploy tokens): a project's
        Maintainers, a group's Owners."""
        return AccessLevel.MAINTAINER if self.is_project else AccessLevel.OWNER

    def level_of(self, ctx: Ctx) -> int:
        """The actor's effective level here (admins count as Owners)."""
        if isinstance(self.obj, Project):
            return effective_project_level(ctx.reads, ctx.actor, self.obj, ctx.today())
        return effective_group_level(ctx.reads, ctx.actor, self.obj, ctx.today())

    def inherited_from(self) -> list[Namespace]:
        """The groups whose members inherit into this resource, nearest first."""
        if isinstance(self.obj, Project):
            ns = self.obj.namespace
            return namespace_chain(ns) if ns.is_group else []
        return self.obj.ancestors()
