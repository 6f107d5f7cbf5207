"""Imports every model so that Base.metadata knows the whole schema (Alembic, tests)."""

from keycrew.access.models import Member, Namespace, Project, Route
from keycrew.audit.models import AuditEvent
from keycrew.db.base import Base
from keycrew.identity.models import InstanceSettings, User, UserSession
from keycrew.packages.models import Package, PackageFile
from keycrew.records.models import Issue, Note
from keycrew.tokens.models import DeployToken, PersonalAccessToken

__all__ = [
    "AuditEvent",
    "Base",
    "DeployToken",
    "InstanceSettings",
    "Issue",
    "Member",
    "Namespace",
    "Note",
    "Package",
    "PackageFile",
    "PersonalAccessToken",
    "Project",
    "Route",
    "User",
    "UserSession",
]
