"""Every model of every package, so that ``Base.metadata`` knows the whole schema (Alembic, tests).

Only the migrations import this module: no package below needs the others' models."""

from keycrew.access.links import GroupGroupLink, ProjectGroupLink
from keycrew.access.models import Member
from keycrew.activity.models import ActivityEvent, PushEventPayload
from keycrew.audit.models import AuditEvent
from keycrew.db.base import Base
from keycrew.identity.models import User, UserSession
from keycrew.instance.models import InstanceSettings, RateLimitOverride
from keycrew.namespaces.models import Namespace, Project, Route
from keycrew.outbox.models import OutboxMessage
from keycrew.packages.models import Package, PackageFile
from keycrew.records.models import Issue, Note
from keycrew.tokens.models import DeployToken, PersonalAccessToken

__all__ = [
    "ActivityEvent",
    "AuditEvent",
    "Base",
    "DeployToken",
    "GroupGroupLink",
    "InstanceSettings",
    "Issue",
    "Member",
    "Namespace",
    "Note",
    "OutboxMessage",
    "Package",
    "PackageFile",
    "PersonalAccessToken",
    "Project",
    "ProjectGroupLink",
    "PushEventPayload",
    "RateLimitOverride",
    "Route",
    "User",
    "UserSession",
]
