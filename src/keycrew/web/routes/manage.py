"""Web UI: New group, New project, and a group's and a project's Settings > General (name, path,
description, visibility; transfer and delete behind a typed confirmation).

Every form calls the use case of the matching API endpoint (POST/PUT/DELETE /groups and /projects,
POST /groups/:id/transfer, PUT /projects/:id/transfer): the UI offers what those allow and shows
their refusals, each next to its field where it names one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from keycrew.access import groups as group_cases
from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import find_group, find_project
from keycrew.access.policy import effective_group_level, effective_project_level
from keycrew.access.projects import personal_namespace
from keycrew.access.resources import Resource
from keycrew.actions import groups as group_actions
from keycrew.actions import projects as project_actions
from keycrew.actions import transfers
from keycrew.errors import Forbidden, Invalid, KeycrewError, NotFound
from keycrew.instance.settings import settings_view
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.records.issues import can_read_issue
from keycrew.records.models import Issue
from keycrew.servicedesk import incoming
from keycrew.servicedesk import settings as service_desk_settings
from keycrew.servicedesk.address import incoming_address
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of

router = APIRouter()

VISIBILITIES = [
    (Visibility.PRIVATE.value, "Private", "Only members can see it."),
    (Visibility.INTERNAL.value, "Internal", "Any signed-in user can see it."),
    (Visibility.PUBLIC.value, "Public", "Anyone can see it, without signing in."),
]
# The form's fields a use case's error may name, mapped to the field that shows it.
FIELDS = {
    "name": "name",
    "path": "path",
    "description": "description",
    "visibility": "visibility",
    "visibility_level": "visibility",
    "namespace": "namespace",
    "namespace_id": "namespace",
    "parent_id": "parent",
    "confirm": "confirm",
    "project_key": "project_key",
}


@dataclass
class Errors:
    """A refusal as the form shows it: a sentence per field, and what names no field."""

    fields: dict[str, str] = field(default_factory=dict)
    general: str | None = None

    @classmethod
    def of(cls, exc: KeycrewError) -> Errors:
        if type(exc) is Invalid and exc.errors:
            found = cls()
            rest: dict[str, list[str]] = {}
            for name, messages in exc.errors.items():
                if name in FIELDS:
                    sentence = describe(Invalid("", {name: messages}))
                    if name == "visibility_level":
                        sentence = " ".join(m if m.endswith(".") else m + "." for m in messages)
                        sentence = sentence[:1].upper() + sentence[1:]
                    key = FIELDS[name]
                    found.fields[key] = (found.fields.get(key, "") + " " + sentence).strip()
                else:
                    rest[name] = messages
            if rest:
                found.general = describe(Invalid("", rest))
            return found
        return cls(general=describe(exc))

    @classmethod
    def at(cls, name: str, message: str) -> Errors:
        return cls(fields={name: message})


def _visibility(form: FormData) -> Visibility | None:
    value = form.text("visibility")
    if not value:
        return None
    try:
        return Visibility(value)
    except ValueError:
        raise Invalid.field("visibility", "is not valid") from None


def _int(value: str) -> int | None:
    if value.isascii() and value.isdigit() and len(value) <= 12:
        return int(value)
    return None


# -- New group ------------------------------------------------------------------------------------


def _parents(page: Page) -> list[Namespace]:
    """The groups the person may create a subgroup in (Maintainer+, as POST /groups requires)."""
    query = group_cases.groups_query(page.ctx, min_access_level=AccessLevel.MAINTAINER)
    return list(page.ctx.db.scalars(query.limit(500)))


def _may_create_top_level(page: Page) -> bool:
    user = page.require_user()
    return bool(user.can_create_group or page.ctx.actor.is_admin)


def _render_new_group(
    page: Page, draft: dict[str, Any], errors: Errors | None = None, status: int = 200
) -> Response:
    return page.render(
        "groups/new.html",
        status=status,
        title="New group",
        draft=draft,
        errors=errors or Errors(),
        parents=_parents(page),
        top_level=_may_create_top_level(page),
        visibilities=VISIBILITIES,
        # Direct transfer ("Import group") is offered only while an admin allows it.
        bulk_import_enabled=settings_view(page.ctx).bulk_import_enabled,
    )


@router.get("/groups/new")
def new_group(parent_id: str | None = None, page: Page = page_dep()) -> Response:
    page.require_user()
    draft = {"name": "", "path": "", "description": "", "visibility": "private", "parent": parent_id or ""}
    return _render_new_group(page, draft)


@router.post("/groups/new")
def create_group(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    page.require_user()
    draft = {
        "name": form.text("name"),
        "path": form.text("path"),
        "description": form.text("description"),
        "visibility": form.text("visibility"),
        "parent": form.text("parent_id"),
    }
    parent_id = _int(draft["parent"]) if draft["parent"] else None
    if draft["parent"] and parent_id is None:
        return _render_new_group(page, draft, Errors.at("parent", "Parent group not found."), 404)
    try:
        with page.savepoint():
            group = group_cases.create_group(
                page.ctx,
                name=draft["name"],
                path=draft["path"],
                parent_id=parent_id,
                visibility=_visibility(form),
                description=draft["description"],
            )
    except KeycrewError as exc:
        return _render_new_group(page, draft, Errors.of(exc), status_of(exc))
    return page.notice(f"/groups/{group.full_path}", f"Group {group.full_name} was created.")


# -- New project ----------------------------------------------------------------------------------


def _project_namespaces(page: Page) -> list[Namespace]:
    """Where the person may create a project: their own namespace, then the groups where they are
    Developer+ (as POST /projects requires)."""
    user = page.require_user()
    own = [personal_namespace(page.ctx, user.id)]
    query = group_cases.groups_query(page.ctx, min_access_level=AccessLevel.DEVELOPER)
    return own + list(page.ctx.db.scalars(query.limit(500)))


def _render_new_project(
    page: Page, draft: dict[str, Any], errors: Errors | None = None, status: int = 200
) -> Response:
    return page.render(
        "projects/new.html",
        status=status,
        title="New project",
        draft=draft,
        errors=errors or Errors(),
        namespaces=_project_namespaces(page),
        visibilities=VISIBILITIES,
    )


@router.get("/projects/new")
def new_project(namespace_id: str | None = None, page: Page = page_dep()) -> Response:
    page.require_user()
    draft = {
        "name": "",
        "path": "",
        "description": "",
        "visibility": "private",
        "namespace": namespace_id or "",
        "readme": True,
    }
    return _render_new_project(page, draft)


@router.post("/projects/new")
def create_project(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    page.require_user()
    draft: dict[str, Any] = {
        "name": form.text("name"),
        "path": form.text("path"),
        "description": form.text("description"),
        "visibility": form.text("visibility"),
        "namespace": form.text("namespace_id"),
        "readme": form.flag("initialize_with_readme"),
    }
    namespace_id = _int(draft["namespace"]) if draft["namespace"] else None
    if draft["namespace"] and namespace_id is None:
        return _render_new_project(page, draft, Errors.at("namespace", "Namespace not found."), 404)
    try:
        with page.savepoint():
            project = project_actions.create_project(
                page.ctx,
                name=draft["name"] or None,
                path=draft["path"] or None,
                namespace_id=namespace_id,
                visibility=_visibility(form),
                description=draft["description"],
                initialize_with_readme=draft["readme"],
            )
    except KeycrewError as exc:
        return _render_new_project(page, draft, Errors.of(exc), status_of(exc))
    return page.notice(f"/{project.full_path}", f"Project {project.name} was created.")


# -- Group > Settings > General -------------------------------------------------------------------


def _owned_group(page: Page, full_path: str) -> Namespace:
    """The group, for its Owners and admins (GitLab's admin_group); others get the 403 page."""
    page.require_user()
    group = find_group(page.ctx, full_path.strip("/"))
    transfers.check_may_transfer_group(page.ctx, group)
    return group


def _group_url(group: Namespace) -> str:
    return f"/groups/{group.full_path}/-/edit"


def _render_group_edit(
    page: Page,
    group: Namespace,
    *,
    draft: dict[str, Any] | None = None,
    errors: Errors | None = None,
    transfer_errors: Errors | None = None,
    delete_errors: Errors | None = None,
    status: int = 200,
) -> Response:
    ctx = page.ctx
    locations = list(ctx.db.scalars(transfers.group_transfer_locations(ctx, group).limit(500)))
    return page.render(
        "groups/edit.html",
        status=status,
        title=f"General settings · {group.full_name}",
        group=group,
        level=effective_group_level(ctx.reads, ctx.actor, group, ctx.today()),
        action=_group_url(group),
        draft=draft
        or {
            "name": group.name,
            "path": group.path,
            "description": group.description or "",
            "visibility": Visibility.from_level(group.visibility_level).value,
        },
        errors=errors or Errors(),
        transfer_errors=transfer_errors or Errors(),
        delete_errors=delete_errors or Errors(),
        locations=locations,
        visibilities=VISIBILITIES,
    )


@router.get("/groups/{full_path:path}/-/edit")
def edit_group(full_path: str, page: Page = page_dep()) -> Response:
    return _render_group_edit(page, _owned_group(page, full_path))


@router.post("/groups/{full_path:path}/-/edit")
def update_group(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    group = _owned_group(page, full_path)
    draft = {
        "name": form.text("name"),
        "path": form.text("path"),
        "description": form.text("description"),
        "visibility": form.text("visibility"),
    }
    try:
        with page.savepoint():
            group_cases.update_group(
                page.ctx,
                group,
                name=draft["name"],
                path=draft["path"],
                description=draft["description"],
                visibility=_visibility(form),
            )
    except KeycrewError as exc:
        page.ctx.db.refresh(group)
        return _render_group_edit(page, group, draft=draft, errors=Errors.of(exc), status=status_of(exc))
    return page.notice(_group_url(group), f"Group {group.full_name} was saved.")


@router.post("/groups/{full_path:path}/-/transfer")
def transfer_group(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    group = _owned_group(page, full_path)
    if form.text("confirm") != group.full_path:
        errors = Errors.at("confirm", f"Type {group.full_path} to confirm.")
        return _render_group_edit(page, group, transfer_errors=errors, status=400)
    target = form.text("parent_id")
    parent_id = _int(target) if target else None
    if target and parent_id is None:
        errors = Errors.at("parent", "Group not found.")
        return _render_group_edit(page, group, transfer_errors=errors, status=404)
    try:
        with page.savepoint():
            transfers.transfer_group(page.ctx, group, parent_id)
    except KeycrewError as exc:
        page.ctx.db.refresh(group)
        return _render_group_edit(page, group, transfer_errors=Errors.of(exc), status=status_of(exc))
    return page.notice(_group_url(group), f"Group {group.name} was moved to {group.full_path}.")


@router.post("/groups/{full_path:path}/-/delete")
def delete_group(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    group = _owned_group(page, full_path)
    if form.text("confirm") != group.full_path:
        errors = Errors.at("confirm", f"Type {group.full_path} to confirm.")
        return _render_group_edit(page, group, delete_errors=errors, status=400)
    name = group.full_name
    try:
        with page.savepoint():
            group_actions.delete_group(page.ctx, group)
    except KeycrewError as exc:
        return _render_group_edit(page, group, delete_errors=Errors.of(exc), status=status_of(exc))
    return page.notice("/", f"Group {name} was deleted.")


# -- Project > Settings > General -----------------------------------------------------------------


def _managed_project(page: Page, full_path: str) -> tuple[Project, int]:
    """The project and the person's level in it, for its Maintainers+ (GitLab's admin_project);
    others get the 403 page."""
    page.require_user()
    ctx = page.ctx
    path = full_path.strip("/")
    if not path or "/-/" in f"/{path}/":
        raise NotFound("Project")
    project = find_project(ctx, path)
    level = effective_project_level(ctx.reads, ctx.actor, project, ctx.today())
    if level < Resource(project).admin_level:
        raise Forbidden()
    return project, level


def _project_url(project: Project) -> str:
    return f"/{project.full_path}/-/edit"


def _project_locations(page: Page, project: Project, level: int) -> list[Namespace]:
    """Where an Owner may move the project: the groups of GET /projects/:id/transfer_locations and
    their own namespace (PUT /projects/:id/transfer takes either)."""
    if level < AccessLevel.OWNER:
        return []
    ctx = page.ctx
    user = page.require_user()
    own = personal_namespace(ctx, user.id)
    found = [] if own.id == project.namespace_id else [own]
    return found + list(ctx.db.scalars(transfers.project_transfer_locations(ctx, project).limit(500)))


def _render_project_edit(
    page: Page,
    project: Project,
    level: int,
    *,
    draft: dict[str, Any] | None = None,
    errors: Errors | None = None,
    transfer_errors: Errors | None = None,
    delete_errors: Errors | None = None,
    desk_errors: Errors | None = None,
    desk_draft: dict[str, Any] | None = None,
    status: int = 200,
) -> Response:
    desk = service_desk_settings.service_desk(page.ctx, page.runtime.settings, project)
    return page.render(
        "projects/edit.html",
        status=status,
        title=f"General settings · {project.name}",
        project=project,
        level=level,
        owner=level >= AccessLevel.OWNER,
        action=_project_url(project),
        draft=draft
        or {
            "name": project.name,
            "path": project.path,
            "description": project.description or "",
            "visibility": Visibility.from_level(project.visibility_level).value,
        },
        errors=errors or Errors(),
        transfer_errors=transfer_errors or Errors(),
        delete_errors=delete_errors or Errors(),
        locations=_project_locations(page, project, level),
        visibilities=VISIBILITIES,
        desk=desk,
        desk_configured=incoming_address(page.runtime.settings) is not None,
        desk_draft=desk_draft
        or {
            "enabled": desk.enabled_flag,
            "project_key": desk.project_key or "",
            "thank_you_template": desk.thank_you_template,
            "new_note_template": desk.new_note_template,
            "new_participant_template": desk.new_participant_template,
        },
        desk_errors=desk_errors or Errors(),
    )


@router.get("/{full_path:webpath}/-/edit")
def edit_project(full_path: str, page: Page = page_dep()) -> Response:
    project, level = _managed_project(page, full_path)
    return _render_project_edit(page, project, level)


@router.post("/{full_path:webpath}/-/edit")
def update_project(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    project, level = _managed_project(page, full_path)
    draft = {
        "name": form.text("name"),
        "path": form.text("path"),
        "description": form.text("description"),
        "visibility": form.text("visibility"),
    }
    try:
        with page.savepoint():
            project_actions.update_project(
                page.ctx,
                project,
                name=draft["name"],
                path=draft["path"],
                description=draft["description"],
                # Below Owner the form shows no visibility: none is sent, none is changed.
                visibility=_visibility(form),
            )
    except KeycrewError as exc:
        page.ctx.db.refresh(project)
        errors = Errors.of(exc)
        return _render_project_edit(page, project, level, draft=draft, errors=errors, status=status_of(exc))
    return page.notice(_project_url(project), f"Project {project.name} was saved.")


@router.post("/{full_path:webpath}/-/service_desk")
def update_service_desk(
    full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    project, level = _managed_project(page, full_path)
    draft = {
        "enabled": form.text("service_desk_enabled") == "true",
        "project_key": form.text("project_key") or "",
        "thank_you_template": form.text("thank_you_template") or "",
        "new_note_template": form.text("new_note_template") or "",
        "new_participant_template": form.text("new_participant_template") or "",
    }
    try:
        with page.savepoint():
            service_desk_settings.update_service_desk(
                page.ctx,
                project,
                enabled=bool(draft["enabled"]),
                project_key=str(draft["project_key"]),
                thank_you_template=str(draft["thank_you_template"]),
                new_note_template=str(draft["new_note_template"]),
                new_participant_template=str(draft["new_participant_template"]),
            )
    except KeycrewError as exc:
        errors = Errors.of(exc)
        return _render_project_edit(
            page, project, level, desk_draft=draft, desk_errors=errors, status=status_of(exc)
        )
    return page.notice(_project_url(project), "Service Desk settings were saved.")


@router.get("/{full_path:webpath}/uploads/{secret}/{filename}")
def service_desk_upload(full_path: str, secret: str, filename: str, page: Page = page_dep()) -> Response:
    """A file that came with a Service Desk e-mail, for those who may read its issue (others: 404).
    Images are shown inline, anything else is downloaded."""
    ctx = page.ctx
    project = find_project(ctx, full_path.strip("/"))
    upload = incoming.find_upload(ctx, project, secret, filename)
    issue = None if upload is None else ctx.db.get(Issue, upload.issue_id)
    if upload is None or issue is None or not can_read_issue(ctx, project, issue):
        raise NotFound("File")
    path = incoming.upload_path(page.runtime.settings, upload)
    if not path.is_file():
        raise NotFound("File")
    image = upload.content_type in incoming.IMAGE_TYPES
    return FileResponse(
        path,
        media_type=upload.content_type if image else "application/octet-stream",
        filename=upload.filename,
        content_disposition_type="inline" if image else "attachment",
    )


@router.post("/{full_path:webpath}/-/transfer")
def transfer_project(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    project, level = _managed_project(page, full_path)
    transfers.check_may_transfer_project(page.ctx, project)
    if form.text("confirm") != project.full_path:
        errors = Errors.at("confirm", f"Type {project.full_path} to confirm.")
        return _render_project_edit(page, project, level, transfer_errors=errors, status=400)
    target = _int(form.text("namespace_id"))
    if target is None:
        errors = Errors.at("namespace", "Choose where to move the project.")
        return _render_project_edit(page, project, level, transfer_errors=errors, status=400)
    try:
        with page.savepoint():
            transfers.transfer_project(page.ctx, project, target)
    except KeycrewError as exc:
        page.ctx.db.refresh(project)
        errors = Errors.of(exc)
        return _render_project_edit(page, project, level, transfer_errors=errors, status=status_of(exc))
    return page.notice(_project_url(project), f"Project {project.name} was moved to {project.full_path}.")


@router.post("/{full_path:webpath}/-/delete")
def delete_project(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    project, level = _managed_project(page, full_path)
    if level < AccessLevel.OWNER:
        raise Forbidden()
    if form.text("confirm") != project.full_path:
        errors = Errors.at("confirm", f"Type {project.full_path} to confirm.")
        return _render_project_edit(page, project, level, delete_errors=errors, status=400)
    name = project.full_path
    try:
        with page.savepoint():
            project_actions.delete_project(page.ctx, project)
    except KeycrewError as exc:
        return _render_project_edit(page, project, level, delete_errors=Errors.of(exc), status=status_of(exc))
    return page.notice("/", f"Project {name} was deleted.")
