"""Every model of every package, so that ``Base.metadata`` knows the whole schema (Alembic, tests).

Only the migrations import this module: no package below needs the others' models."""

from keycrew.access.compliance import ComplianceFramework, ProjectComplianceFramework
from keycrew.access.inactivity import InactiveProjectWarning
from keycrew.access.links import GroupGroupLink, ProjectGroupLink
from keycrew.access.models import Member
from keycrew.activity.models import ActivityEvent, PushEventPayload
from keycrew.alerts.models import Alert, AlertIntegration, IncidentSettings
from keycrew.audit.models import AuditEvent
from keycrew.db.base import Base
from keycrew.identity.models import User, UserSession
from keycrew.identity.password_reset import PasswordReset
from keycrew.imports.bulk import BulkImport, BulkImportEntity, BulkImportFailure, BulkImportRecord
from keycrew.imports.models import ImportSourceUser, NamespaceImportUser
from keycrew.instance.jobs import JobLease, JobRunRecord
from keycrew.instance.models import InstanceSettings, RateLimitOverride
from keycrew.namespaces.models import Namespace, Project, Route
from keycrew.notifications.models import NotificationSetting
from keycrew.outbox.models import OutboxMessage
from keycrew.packages.models import Package, PackageFile
from keycrew.records.ghost_migrations import GhostUserMigration
from keycrew.records.models import Issue, Note
from keycrew.servicedesk.models import (
    IssueEmailParticipant,
    ServiceDeskMessage,
    ServiceDeskSetting,
    ServiceDeskUpload,
)
from keycrew.tokens.models import DeployToken, PersonalAccessToken
from keycrew.tokens.usage import TokenUsageDay, TokenUsageIp, TokenUsageScope
from keycrew.webhooks.models import WebHook, WebHookDelivery, WebHookLog

__all__ = [
    "ActivityEvent",
    "Alert",
    "AlertIntegration",
    "AuditEvent",
    "Base",
    "BulkImport",
    "BulkImportEntity",
    "BulkImportFailure",
    "BulkImportRecord",
    "ComplianceFramework",
    "DeployToken",
    "GhostUserMigration",
    "GroupGroupLink",
    "ImportSourceUser",
    "InactiveProjectWarning",
    "IncidentSettings",
    "InstanceSettings",
    "Issue",
    "IssueEmailParticipant",
    "JobLease",
    "JobRunRecord",
    "Member",
    "Namespace",
    "NamespaceImportUser",
    "Note",
    "NotificationSetting",
    "OutboxMessage",
    "Package",
    "PackageFile",
    "PasswordReset",
    "PersonalAccessToken",
    "Project",
    "ProjectComplianceFramework",
    "ProjectGroupLink",
    "PushEventPayload",
    "RateLimitOverride",
    "Route",
    "ServiceDeskMessage",
    "ServiceDeskSetting",
    "ServiceDeskUpload",
    "TokenUsageDay",
    "TokenUsageIp",
    "TokenUsageScope",
    "User",
    "UserSession",
    "WebHook",
    "WebHookDelivery",
    "WebHookLog",
]
