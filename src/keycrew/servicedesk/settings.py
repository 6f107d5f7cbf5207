"""A project's Service Desk settings: on or off, its project key, the texts of its e-mail."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import effective_project_level
from keycrew.access.projects import project_entity
from keycrew.access.resources import Resource
from keycrew.audit.events import Event
from keycrew.audit.service import Changes, record_update
from keycrew.config import Settings
from keycrew.context import Ctx
from keycrew.errors import Forbidden, Invalid
from keycrew.namespaces.models import Project
from keycrew.namespaces.views import ProjectLike
from keycrew.servicedesk.address import PROJECT_KEY, incoming_address, project_key_part
from keycrew.servicedesk.models import ServiceDeskSetting

TEMPLATE_MAX = 10_000

# The default texts (GitLab's, in keycrew's words). Placeholders as GitLab's: %{ISSUE_ID} (#iid),
# %{ISSUE_PATH} (group/project#iid), %{ISSUE_URL}, %{ISSUE_TITLE}, %{ISSUE_DESCRIPTION},
# %{NOTE_TEXT} (new notes), %{AUTHOR_NAME} (the note's author), %{SYSTEM_HEADER}, %{UNSUBSCRIBE_URL}.
DEFAULT_THANK_YOU = (
    "Thank you for your support request! We are tracking your request as ticket %{ISSUE_ID}, "
    "and will respond as soon as we can.\n\n"
    "To add more to your request, reply to this e-mail."
)
DEFAULT_NEW_NOTE = "%{AUTHOR_NAME} commented on ticket %{ISSUE_ID}:\n\n%{NOTE_TEXT}"
DEFAULT_NEW_PARTICIPANT = (
    "You have been added to ticket %{ISSUE_ID}: %{ISSUE_TITLE}.\n\n"
    "You will receive e-mail about its updates; reply to this e-mail to add to it."
)
DEFAULTS = {
    "thank_you_template": DEFAULT_THANK_YOU,
    "new_note_template": DEFAULT_NEW_NOTE,
    "new_participant_template": DEFAULT_NEW_PARTICIPANT,
}
PLACEHOLDERS = (
    "ISSUE_ID",
    "ISSUE_PATH",
    "ISSUE_URL",
    "ISSUE_TITLE",
    "ISSUE_DESCRIPTION",
    "NOTE_TEXT",
    "AUTHOR_NAME",
    "SYSTEM_HEADER",
    "UNSUBSCRIBE_URL",
)


@dataclass(frozen=True)
class ServiceDesk:
    """What a project's Service Desk is: ``enabled`` is the project's flag and incoming e-mail
    being configured (GitLab's ``service_desk_enabled``); ``address`` None unless enabled."""

    enabled_flag: bool
    enabled: bool
    address: str | None
    project_key: str | None
    thank_you_template: str
    new_note_template: str
    new_participant_template: str


def describe(settings: Settings, project: ProjectLike, row: ServiceDeskSetting | None) -> ServiceDesk:
    incoming = incoming_address(settings)
    flag = bool(row is not None and row.enabled)
    key = row.project_key if row is not None else None
    enabled = flag and incoming is not None
    address = (
        incoming.format(project_key_part(project.full_path, project.id, key))
        if enabled and incoming is not None
        else None
    )
    return ServiceDesk(
        enabled_flag=flag,
        enabled=enabled,
        address=address,
        project_key=key,
        thank_you_template=(row.thank_you_template if row else None) or DEFAULT_THANK_YOU,
        new_note_template=(row.new_note_template if row else None) or DEFAULT_NEW_NOTE,
        new_participant_template=(row.new_participant_template if row else None) or DEFAULT_NEW_PARTICIPANT,
    )


def service_desk(ctx: Ctx, settings: Settings, project: ProjectLike) -> ServiceDesk:
    """The project's Service Desk as it is now (one query, through ``ctx.reads``)."""
    row = ctx.reads.first(
        select(
            ServiceDeskSetting.enabled,
            ServiceDeskSetting.project_key,
            ServiceDeskSetting.thank_you_template,
            ServiceDeskSetting.new_note_template,
            ServiceDeskSetting.new_participant_template,
        ).where(ServiceDeskSetting.project_id == project.id)
    )
    stored = (
        None
        if row is None
        else ServiceDeskSetting(
            project_id=project.id,
            enabled=bool(row[0]),
            project_key=row[1],
            thank_you_template=row[2],
            new_note_template=row[3],
            new_participant_template=row[4],
        )
    )
    return describe(settings, project, stored)


def enabled_projects(ctx: Ctx, project_ids: Iterable[int]) -> set[int]:
    """Which of these projects have Service Desk switched on (one query)."""
    ids = list(project_ids)
    if not ids:
        return set()
    return set(
        ctx.reads.scalars(
            select(ServiceDeskSetting.project_id).where(
                ServiceDeskSetting.project_id.in_(ids), ServiceDeskSetting.enabled.is_(True)
            )
        )
    )


def substitute(template: str, values: dict[str, str]) -> str:
    """``%{NAME}`` replaced by its value; unknown placeholders stay as written (as GitLab's)."""
    text = template
    for name, value in values.items():
        text = text.replace("%{" + name + "}", value)
    return text


def _template_errors(value: str) -> list[str]:
    if "\x00" in value:
        return ["is invalid"]
    if len(value) > TEMPLATE_MAX:
        return [f"is too long (maximum is {TEMPLATE_MAX} characters)"]
    return []


def update_service_desk(
    ctx: Ctx,
    project: Project,
    *,
    enabled: bool | None = None,
    project_key: str | None = None,
    thank_you_template: str | None = None,
    new_note_template: str | None = None,
    new_participant_template: str | None = None,
) -> ServiceDeskSetting:
    """Change the project's Service Desk settings (Maintainer+, GitLab's admin_project). None
    leaves a value as it is; an empty ``project_key`` or template sets it back to none/the default.
    Raises Forbidden, Invalid (project key: ``[a-z0-9_]``, unique). One audit event when something changed."""
    level = effective_project_level(ctx.reads, ctx.actor, project, ctx.today())
    if level < Resource(project).admin_level:
        raise Forbidden()
    errors: dict[str, list[str]] = {}
    key = None if project_key is None else project_key.strip()
    if key:
        if len(key) > 255 or not PROJECT_KEY.match(key):
            errors["project_key"] = ["can contain only lowercase letters, digits, and '_'."]
        else:
            taken = ctx.db.scalar(
                select(ServiceDeskSetting.project_id).where(
                    ServiceDeskSetting.project_key == key, ServiceDeskSetting.project_id != project.id
                )
            )
            if taken is not None:
                errors["project_key"] = ["has already been taken"]
    templates = {
        "thank_you_template": thank_you_template,
        "new_note_template": new_note_template,
        "new_participant_template": new_participant_template,
    }
    for name, value in templates.items():
        if value is not None and (e := _template_errors(value)):
            errors[name] = e
    if errors:
        raise Invalid("", errors)
    row = ctx.db.get(ServiceDeskSetting, project.id)
    if row is None:
        row = ServiceDeskSetting(project_id=project.id, enabled=False, updated_at=ctx.now())
        ctx.db.add(row)
    changes = Changes()
    if changes.note("service_desk_enabled", row.enabled, enabled):
        row.enabled = bool(enabled)
    if key is not None and (key or None) != row.project_key:
        changes["service_desk_project_key"] = {"from": row.project_key, "to": key or None}
        row.project_key = key or None
    for name, value in templates.items():
        # The default text given back (the form shows it) is kept as "the default".
        text = None if value is None else value.replace("\r\n", "\n").strip()
        stored = None if not text or text == DEFAULTS[name] else text
        if value is not None and stored != getattr(row, name):
            # The texts can be long: the event says which one changed, not to what.
            changes[f"service_desk_{name}"] = {"from": None, "to": None}
            setattr(row, name, stored)
    if changes:
        row.updated_at = ctx.now()
        ctx.db.flush()
        record_update(ctx, Event.PROJECT_UPDATED, project_entity(project), changes)
    return row


def entity_fields(ctx: Ctx, settings: Settings, project: ProjectLike) -> tuple[bool, str | None]:
    """The project entity's ``service_desk_enabled`` and ``service_desk_address`` (the address only
    for those who may triage issues, GitLab's admin_issue: Planner+ and admins)."""
    desk = service_desk(ctx, settings, project)
    if not desk.enabled:
        return False, None
    level = effective_project_level(ctx.reads, ctx.actor, project, ctx.today())
    return True, desk.address if level >= AccessLevel.PLANNER else None


def listing_fields(
    ctx: Ctx, settings: Settings, projects: Sequence[ProjectLike]
) -> dict[int, tuple[bool, str | None]]:
    """``entity_fields`` for a page of a listing in one query: the address only for admins there
    (``GET /projects/:id`` shows it to every Planner+)."""
    incoming = incoming_address(settings)
    if incoming is None or not projects:
        return {}
    rows = ctx.reads.rows(
        select(ServiceDeskSetting.project_id, ServiceDeskSetting.project_key).where(
            ServiceDeskSetting.project_id.in_([p.id for p in projects]), ServiceDeskSetting.enabled.is_(True)
        )
    )
    keys = {int(row[0]): row[1] for row in rows}
    return {
        p.id: (
            True,
            incoming.format(project_key_part(p.full_path, p.id, keys[p.id])) if ctx.actor.is_admin else None,
        )
        for p in projects
        if p.id in keys
    }
