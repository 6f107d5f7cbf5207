"""Web UI: a top-level group's Settings > Compliance frameworks (Owners: create, edit, delete, set
the default that GitLab Admin Bot applies to each new project below the group)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Response

from keycrew.access import compliance
from keycrew.access.compliance import ComplianceFramework
from keycrew.access.lookup import find_group
from keycrew.access.resources import Resource
from keycrew.errors import Forbidden, KeycrewError, NotFound
from keycrew.namespaces.models import Namespace, chain
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of

router = APIRouter()

SETTINGS = "/-/settings/compliance_frameworks"
DEFAULT_COLOR = "#1068bf"


def _url(group: Namespace) -> str:
    return f"/groups/{group.full_path}{SETTINGS}"


@dataclass
class _Draft:
    """What the create form holds: empty at first, the posted values after a refusal."""

    name: str = ""
    description: str = ""
    color: str = DEFAULT_COLOR
    default: bool = False


def _group(page: Page, full_path: str) -> Namespace:
    page.require_user()
    return find_group(page.ctx, full_path.strip("/"))


def _render(
    page: Page,
    group: Namespace,
    *,
    draft: _Draft | None = None,
    error: str | None = None,
    editing: int | None = None,
    edit_error: str | None = None,
    status: int = 200,
) -> Response:
    ctx = page.ctx
    root = chain(group)[-1]
    frameworks: list[ComplianceFramework] = []
    if group.parent_id is None:
        # Below Owner this raises Forbidden: the UI answers with its 403 page.
        frameworks = compliance.list_frameworks(ctx, group)
    elif not compliance.can_manage(ctx, group):
        raise Forbidden()
    return page.render(
        "groups/compliance_frameworks.html",
        status=status,
        title=f"Compliance frameworks · {group.full_name}",
        group=group,
        root=root,
        level=Resource(group).level_of(ctx),
        action=_url(group),
        frameworks=frameworks,
        draft=draft or _Draft(),
        error=error,
        editing=editing,
        edit_error=edit_error,
    )


def _framework(page: Page, group: Namespace, framework_id: str) -> ComplianceFramework:
    if not framework_id.isascii() or not framework_id.isdigit() or len(framework_id) > 12:
        raise NotFound("Compliance framework")
    return compliance.find_framework(page.ctx, group, int(framework_id))


@router.get("/groups/{full_path:path}" + SETTINGS)
def compliance_frameworks(full_path: str, page: Page = page_dep()) -> Response:
    return _render(page, _group(page, full_path))


@router.post("/groups/{full_path:path}" + SETTINGS)
def create_compliance_framework(
    full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    group = _group(page, full_path)
    draft = _Draft(
        name=form.text("name"),
        description=form.text("description"),
        color=form.text("color"),
        default=form.flag("default"),
    )
    try:
        with page.savepoint():
            framework = compliance.create_framework(
                page.ctx,
                group,
                name=draft.name,
                description=draft.description,
                color=draft.color,
                default=draft.default,
            )
    except KeycrewError as exc:
        return _render(page, group, draft=draft, error=describe(exc), status=status_of(exc))
    return page.notice(_url(group), f"Added the compliance framework {framework.name}.")


@router.post("/groups/{full_path:path}" + SETTINGS + "/{framework_id}")
def update_compliance_framework(
    full_path: str, framework_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    group = _group(page, full_path)
    framework = _framework(page, group, framework_id)
    try:
        with page.savepoint():
            compliance.update_framework(
                page.ctx,
                group,
                framework,
                name=form.text("name"),
                description=form.text("description"),
                color=form.text("color"),
                default=form.flag("default"),
            )
    except KeycrewError as exc:
        return _render(page, group, editing=framework.id, edit_error=describe(exc), status=status_of(exc))
    return page.notice(_url(group), f"Saved the compliance framework {framework.name}.")


@router.post("/groups/{full_path:path}" + SETTINGS + "/{framework_id}/default")
def make_default_compliance_framework(full_path: str, framework_id: str, page: Page = form_dep()) -> Response:
    group = _group(page, full_path)
    framework = _framework(page, group, framework_id)
    compliance.update_framework(page.ctx, group, framework, default=True)
    return page.notice(
        _url(group), f"{framework.name} is now the default for new projects in {group.full_path}."
    )


@router.post("/groups/{full_path:path}" + SETTINGS + "/{framework_id}/delete")
def delete_compliance_framework(full_path: str, framework_id: str, page: Page = form_dep()) -> Response:
    group = _group(page, full_path)
    framework = _framework(page, group, framework_id)
    name = framework.name
    compliance.delete_framework(page.ctx, group, framework)
    return page.notice(_url(group), f"Deleted the compliance framework {name}.")
