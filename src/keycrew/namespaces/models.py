"""The namespace tree: routes (every full path), namespaces (groups and personal ones), projects."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    inspect,
    select,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, object_session, relationship

from keycrew.db.base import Base, UTCDateTime


class Route(Base):
    """The full path of a namespace or project; one table so that paths never clash across kinds."""

    __tablename__ = "routes"
    __table_args__ = (UniqueConstraint("source_type", "source_id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source_type: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(1024))
    path_lower: Mapped[str] = mapped_column(String(1024), unique=True)
    name: Mapped[str] = mapped_column(String(2048))


class Namespace(Base):
    """A group (kind "group") or a user's personal namespace (kind "user")."""

    __tablename__ = "namespaces"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255))
    full_path: Mapped[str] = mapped_column(String(1024))
    full_name: Mapped[str] = mapped_column(String(2048))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    visibility_level: Mapped[int] = mapped_column(Integer, default=0)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # GitLab's namespace setting "Users can create project access tokens and group access tokens
    # in this group": set on top-level groups, it rules everything below them.
    resource_access_token_creation_allowed: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=true()
    )

    # Loaded when first used (a lookup in the session's identity map when the parent is already
    # there); ``chain`` loads a namespace's ancestors in one query.
    parent: Mapped[Namespace | None] = relationship(remote_side=[id])

    @property
    def is_group(self) -> bool:
        return self.kind == "group"

    def ancestors(self) -> list[Namespace]:
        """This namespace's parents, nearest first (see ``chain`` to load them in one query)."""
        chain: list[Namespace] = []
        node = self.parent
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain

    @property
    def root(self) -> Namespace:
        node = self
        while node.parent is not None:
            node = node.parent
        return node


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        # GitLab's default list orders: the newest or most recently active first, 20 at a time.
        Index("ix_projects_created_at_id", "created_at", "id"),
        Index("ix_projects_last_activity_at_id", "last_activity_at", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(255))
    full_path: Mapped[str] = mapped_column(String(1024))
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"), index=True)
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    description: Mapped[str] = mapped_column(Text, default="")
    visibility_level: Mapped[int] = mapped_column(Integer, default=0)
    default_branch: Mapped[str] = mapped_column(String(255), default="main")
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    # Counter for per-project issue numbers, bumped in the creating transaction.
    last_issue_iid: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_activity_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    namespace: Mapped[Namespace] = relationship(lazy="joined")


def path_prefixes(full_path: str) -> list[str]:
    """The full paths of the namespaces above ``full_path``, nearest first ("a/b/c" -> a/b, a)."""
    parts = full_path.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def chain(ns: Namespace) -> list[Namespace]:
    """The namespace and its ancestors, nearest first.

    The ancestors are read in one query by their full paths, into the session, before the
    ``parent`` links are followed: following them then finds each parent in the session without a
    query, and should a full path not name the parent (a move half-way through a transaction),
    the link still loads the real parent.
    """
    session = object_session(ns)
    if session is not None and ns.parent_id is not None and "parent" in inspect(ns).unloaded:
        session.scalars(select(Namespace).where(Namespace.full_path.in_(path_prefixes(ns.full_path)))).all()
    return [ns, *ns.ancestors()]
