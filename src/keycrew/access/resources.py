"""A project or a group, as what memberships, access tokens, deploy tokens and service accounts
belong to: one abstraction for the rules that differ between the two.

A resource holds an ORM object (use cases that change something) or a read view
(``keycrew.namespaces.views``, for reads): the rules below work on either; ``project``, ``group``
and ``inherited_from`` give ORM objects and so need one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, bindparam, literal, select

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import effective_group_level, effective_project_level, namespace_chain
from keycrew.audit.service import Entity
from keycrew.context import Ctx
from keycrew.db.reads import Query, Reader, prepared
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project
from keycrew.namespaces.views import NamespaceView, ProjectView

# What a resource holds: a project or a group, as an ORM object or as a read view.
Holder = Project | Namespace | ProjectView | NamespaceView


def _chain_ids() -> Query:
    """The ids of the namespace ``id`` and of every group above it, nearest first."""
    ns = Namespace.__table__
    chain = (
        select(ns.c.id, ns.c.parent_id, literal(0, Integer).label("depth"))
        .where(ns.c.id == bindparam("id"))
        .cte("chain", recursive=True)
    )
    up = ns.alias("up")
    chain = chain.union_all(
        select(up.c.id, up.c.parent_id, chain.c.depth + 1).where(up.c.id == chain.c.parent_id)
    )
    return select(chain.c.id).order_by(chain.c.depth)


_CHAIN_IDS = prepared(_chain_ids())


@dataclass(frozen=True)
class Resource:
    """A project, or a group (a namespace of kind "group")."""

    obj: Holder

    @classmethod
    def of(cls, obj: Holder) -> Resource:
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
        return isinstance(self.obj, Project | ProjectView)

    @property
    def is_view(self) -> bool:
        """Whether it holds a read view rather than an ORM object."""
        return isinstance(self.obj, ProjectView | NamespaceView)

    def _orm(self) -> None:
        if self.is_view:
            raise TypeError("a read view: use cases that change something take the ORM object")

    @property
    def project(self) -> Project | None:
        """The ORM project (None for a group)."""
        self._orm()
        return self.obj if isinstance(self.obj, Project) else None

    @property
    def group(self) -> Namespace | None:
        """The ORM group (None for a project)."""
        self._orm()
        return self.obj if isinstance(self.obj, Namespace) else None

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
        obj = self.obj
        if isinstance(obj, Project | ProjectView):
            return effective_project_level(ctx.reads, ctx.actor, obj, ctx.today())
        return effective_group_level(ctx.reads, ctx.actor, obj, ctx.today())

    def inherited_from(self) -> list[Namespace]:
        """The groups whose members inherit into this resource, nearest first (ORM objects)."""
        self._orm()
        if isinstance(self.obj, Project):
            ns = self.obj.namespace
            return namespace_chain(ns) if ns.is_group else []
        assert isinstance(self.obj, Namespace)
        return self.obj.ancestors()

    def inherited_ids(self, reads: Reader) -> list[int]:
        """The ids of ``inherited_from``'s groups: one statement for what lies above a project's
        subgroup or a subgroup's parent, none otherwise."""
        obj = self.obj
        if isinstance(obj, Project | ProjectView):
            ns = obj.namespace
            if not ns.is_group:
                return []
            nearest, above = [ns.id], ns.parent_id
        else:
            nearest, above = [], obj.parent_id
        return nearest if above is None else nearest + list(reads.scalars(_CHAIN_IDS, {"id": above}))
