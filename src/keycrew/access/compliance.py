"""Compliance frameworks: labels a top-level group's Owners define (a name, a description, a colour)
and attach to the group's projects; one of them may be the group's default, which GitLab Admin Bot
applies to every project created anywhere below the group, in the project's creating transaction.

The project entity shows the names of a project's frameworks (``compliance_frameworks``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    bindparam,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from keycrew.access.groups import group_entity, lock_namespaces
from keycrew.access.levels import AccessLevel
from keycrew.access.policy import effective_group_level
from keycrew.access.projects import project_entity
from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Actor, Ctx
from keycrew.db.base import MAX_ID, Base, UTCDateTime
from keycrew.db.reads import prepared
from keycrew.errors import Forbidden, Invalid, NotFound
from keycrew.identity.internal import admin_bot
from keycrew.namespaces.models import Namespace, Project, chain

NAME_MAX = 255
DESCRIPTION_MAX = 255
# GitLab's ColorValidator: "#" and three or six hexadecimal digits.
_COLOR = re.compile(r"\A#(?:[0-9A-Fa-f]{3}){1,2}\Z")
NOT_ROOT = "Compliance frameworks can only be managed on a top-level group"


class ComplianceFramework(Base):
    """A framework of a top-level group; at most one per group is its default."""

    __tablename__ = "compliance_frameworks"
    __table_args__ = (
        UniqueConstraint("namespace_id", "name"),
        # One default per group.
        Index(
            "uq_compliance_frameworks_default",
            "namespace_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    description: Mapped[str] = mapped_column(Text)
    color: Mapped[str] = mapped_column(String(7))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ProjectComplianceFramework(Base):
    """A framework applied to a project."""

    __tablename__ = "project_compliance_frameworks"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    framework_id: Mapped[int] = mapped_column(
        ForeignKey("compliance_frameworks.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


# -- reading ------------------------------------------------------------------------------------

_F = ComplianceFramework.__table__.c
_PF = ProjectComplianceFramework.__table__.c
_NAMES = prepared(
    select(_PF.project_id, _F.name)
    .join_from(ProjectComplianceFramework.__table__, ComplianceFramework.__table__, _F.id == _PF.framework_id)
    .where(_PF.project_id.in_(bindparam("ids", expanding=True)))
    .order_by(_PF.project_id, _F.name)
)


def any_frameworks(db: Session) -> bool:
    """Whether the instance has any compliance framework (the cached ``LiveSettings`` fact)."""
    return db.scalar(select(ComplianceFramework.id).limit(1)) is not None


def framework_names(ctx: Ctx, project_ids: list[int]) -> dict[int, list[str]]:
    """The names of each project's frameworks, sorted: one statement, none for no ids or while the
    instance has no framework at all (most instances: then the hot project reads pay nothing)."""
    found: dict[int, list[str]] = defaultdict(list)
    if project_ids and ctx.instance.live().compliance_frameworks:
        for project_id, name in ctx.reads.rows(_NAMES, {"ids": sorted(set(project_ids))}):
            found[int(project_id)].append(str(name))
    return found


def can_manage(ctx: Ctx, group: Namespace) -> bool:
    """Owners of the group (and admins) manage its frameworks."""
    return effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) >= AccessLevel.OWNER


def _require_manager(ctx: Ctx, group: Namespace) -> None:
    if not can_manage(ctx, group):
        raise Forbidden()
    if group.parent_id is not None or not group.is_group:
        raise Forbidden(NOT_ROOT)


def list_frameworks(ctx: Ctx, group: Namespace) -> list[ComplianceFramework]:
    """The frameworks of a top-level group, by name. Raises Forbidden (not an Owner, a subgroup)."""
    _require_manager(ctx, group)
    return list(
        ctx.db.scalars(
            select(ComplianceFramework)
            .where(ComplianceFramework.namespace_id == group.id)
            .order_by(ComplianceFramework.name, ComplianceFramework.id)
        )
    )


def find_framework(ctx: Ctx, group: Namespace, framework_id: int) -> ComplianceFramework:
    """One of the group's frameworks. Raises Forbidden, NotFound("Compliance framework")."""
    _require_manager(ctx, group)
    found = ctx.db.get(ComplianceFramework, framework_id) if 0 < framework_id <= MAX_ID else None
    if found is None or found.namespace_id != group.id:
        raise NotFound("Compliance framework")
    return found


# -- changing -----------------------------------------------------------------------------------


def _errors(
    ctx: Ctx, group: Namespace, name: str, description: str, color: str, except_id: int | None = None
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = ["can't be blank"]
    elif len(name) > NAME_MAX:
        errors["name"] = [f"is too long (maximum is {NAME_MAX} characters)"]
    else:
        taken = select(ComplianceFramework.id).where(
            ComplianceFramework.namespace_id == group.id, ComplianceFramework.name == name
        )
        if except_id is not None:
            taken = taken.where(ComplianceFramework.id != except_id)
        if ctx.db.scalar(taken) is not None:
            errors["name"] = ["has already been taken"]
    if not description.strip():
        errors["description"] = ["can't be blank"]
    elif len(description) > DESCRIPTION_MAX:
        errors["description"] = [f"is too long (maximum is {DESCRIPTION_MAX} characters)"]
    if not color.strip():
        errors["color"] = ["can't be blank"]
    elif not _COLOR.match(color):
        errors["color"] = ["must be a valid color code"]
    return errors


def _lock(ctx: Ctx, group: Namespace) -> None:
    if not lock_namespaces(ctx, [group.id], "change"):
        raise NotFound("Group")


def _clear_default(ctx: Ctx, group: Namespace, except_id: int | None = None) -> None:
    """Take the default flag off the group's other framework, if any (one default per group)."""
    current = ctx.db.scalars(
        select(ComplianceFramework).where(
            ComplianceFramework.namespace_id == group.id, ComplianceFramework.is_default.is_(True)
        )
    ).all()
    for framework in current:
        if framework.id != except_id:
            framework.is_default = False
            framework.updated_at = ctx.now()
    ctx.db.flush()


def _snapshot(framework: ComplianceFramework) -> dict[str, object]:
    return {
        "name": framework.name,
        "description": framework.description,
        "color": framework.color,
        "default": framework.is_default,
    }


def create_framework(
    ctx: Ctx, group: Namespace, *, name: str, description: str, color: str, default: bool = False
) -> ComplianceFramework:
    """Add a framework to a top-level group (its Owners). Raises Forbidden, Invalid (GitLab's
    messages per attribute)."""
    _require_manager(ctx, group)
    _lock(ctx, group)
    name, description, color = name.strip(), description.strip(), color.strip()
    if errors := _errors(ctx, group, name, description, color):
        raise Invalid("", errors)
    if default:
        _clear_default(ctx, group)
    now = ctx.now()
    framework = ComplianceFramework(
        namespace_id=group.id,
        name=name,
        description=description,
        color=color.lower(),
        is_default=default,
        created_at=now,
        updated_at=now,
    )
    ctx.db.add(framework)
    ctx.db.flush()
    record(
        ctx,
        Event.COMPLIANCE_FRAMEWORK_CREATED,
        group_entity(group),
        target=Target("ComplianceManagement::Framework", framework.id, framework.name),
        **_snapshot(framework),
    )
    return framework


def update_framework(
    ctx: Ctx,
    group: Namespace,
    framework: ComplianceFramework,
    *,
    name: str | None = None,
    description: str | None = None,
    color: str | None = None,
    default: bool | None = None,
) -> ComplianceFramework:
    """Change a framework (None: unchanged); ``default=True`` makes it the group's default in place
    of any other. Raises Forbidden, Invalid."""
    _require_manager(ctx, group)
    _lock(ctx, group)
    new_name = framework.name if name is None else name.strip()
    new_description = framework.description if description is None else description.strip()
    new_color = framework.color if color is None else color.strip()
    if errors := _errors(ctx, group, new_name, new_description, new_color, except_id=framework.id):
        raise Invalid("", errors)
    before = _snapshot(framework)
    if default:
        _clear_default(ctx, group, except_id=framework.id)
    framework.name = new_name
    framework.description = new_description
    framework.color = new_color.lower()
    if default is not None:
        framework.is_default = default
    after = _snapshot(framework)
    changes = {key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]}
    if changes:
        framework.updated_at = ctx.now()
        ctx.db.flush()
        record(
            ctx,
            Event.COMPLIANCE_FRAMEWORK_UPDATED,
            group_entity(group),
            target=Target("ComplianceManagement::Framework", framework.id, framework.name),
            changes=changes,
        )
    return framework


def delete_framework(ctx: Ctx, group: Namespace, framework: ComplianceFramework) -> None:
    """Delete a framework; the projects it was applied to lose it. Raises Forbidden."""
    _require_manager(ctx, group)
    _lock(ctx, group)
    projects = ctx.db.scalar(
        select(ProjectComplianceFramework.project_id)
        .where(ProjectComplianceFramework.framework_id == framework.id)
        .limit(1)
    )
    record(
        ctx,
        Event.COMPLIANCE_FRAMEWORK_DELETED,
        group_entity(group),
        target=Target("ComplianceManagement::Framework", framework.id, framework.name),
        **_snapshot(framework),
        applied=projects is not None,
    )
    ctx.db.delete(framework)
    ctx.db.flush()


def apply_default_framework(ctx: Ctx, project: Project) -> ComplianceFramework | None:
    """Apply the default framework of the project's top-level group to ``project``, as GitLab
    Admin Bot (audited as its act), in the caller's transaction: the framework, or None when the
    project is not in a group, the group has no default, or it is applied already."""
    namespace = project.namespace
    if not namespace.is_group:
        return None
    root = chain(namespace)[-1]
    framework = ctx.db.scalar(
        select(ComplianceFramework).where(
            ComplianceFramework.namespace_id == root.id, ComplianceFramework.is_default.is_(True)
        )
    )
    if framework is None:
        return None
    applied = ctx.db.get(ProjectComplianceFramework, (project.id, framework.id))
    if applied is not None:
        return None
    bot_ctx = ctx.as_actor(Actor(user=admin_bot(ctx), ip=ctx.actor.ip, via="system"))
    ctx.db.add(
        ProjectComplianceFramework(project_id=project.id, framework_id=framework.id, created_at=ctx.now())
    )
    ctx.db.flush()
    record(
        bot_ctx,
        Event.COMPLIANCE_FRAMEWORK_APPLIED,
        project_entity(project),
        target=Target("ComplianceManagement::Framework", framework.id, framework.name),
        framework=framework.name,
        default=True,
    )
    return framework


def drop_foreign_frameworks(ctx: Ctx, project_ids: list[int], root_id: int | None) -> list[str]:
    """Take off these projects the frameworks of any top-level group but ``root_id`` (None: a
    personal namespace, so all of them), as GitLab's transfer does when a project leaves its
    top-level group. Returns the names taken off (for the transfer's audit event)."""
    if not project_ids:
        return []
    foreign = select(ComplianceFramework.id)
    if root_id is not None:
        foreign = foreign.where(ComplianceFramework.namespace_id != root_id)
    rows = ctx.db.execute(
        select(ProjectComplianceFramework.project_id, ComplianceFramework.id, ComplianceFramework.name)
        .join(ComplianceFramework, ComplianceFramework.id == ProjectComplianceFramework.framework_id)
        .where(
            ProjectComplianceFramework.project_id.in_(project_ids),
            ProjectComplianceFramework.framework_id.in_(foreign.scalar_subquery()),
        )
    ).all()
    for project_id, framework_id, _name in rows:
        link = ctx.db.get(ProjectComplianceFramework, (int(project_id), int(framework_id)))
        if link is not None:
            ctx.db.delete(link)
    ctx.db.flush()
    return sorted({str(name) for _p, _f, name in rows})
