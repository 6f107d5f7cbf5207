"""Web UI: a project's and a group's Settings > Webhooks, and Admin > System hooks (list, add,
edit, delete, test, and each hook's delivery log with request, response and duration)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from keycrew.access.lookup import find_group, find_project
from keycrew.access.resources import Resource
from keycrew.errors import KeycrewError, NotFound
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of
from keycrew.webhooks import delivery, payloads, samples, service
from keycrew.webhooks.models import SYSTEM, WebHook, WebHookLog
from keycrew.webhooks.service import HookFields, Parent

router = APIRouter()

HOOKS = "/-/hooks"
ADMIN_HOOKS = "/admin/hooks"
LOG_ROWS = 50

EVENT_LABELS = {
    "push_events": "Push events",
    "tag_push_events": "Tag push events",
    "merge_requests_events": "Merge request events",
    "repository_update_events": "Repository update events",
    "issues_events": "Issue events",
    "confidential_issues_events": "Confidential issue events",
    "note_events": "Comment events",
    "confidential_note_events": "Confidential comment events",
    "pipeline_events": "Pipeline events",
    "wiki_page_events": "Wiki page events",
    "deployment_events": "Deployment events",
    "feature_flag_events": "Feature flag events",
    "job_events": "Job events",
    "releases_events": "Release events",
    "milestone_events": "Milestone events",
    "emoji_events": "Emoji events",
    "resource_access_token_events": "Project or group access token events",
    "resource_deploy_token_events": "Deploy token events",
    "vulnerability_events": "Vulnerability events",
    "subgroup_events": "Subgroup events",
    "project_events": "Project events",
    "member_events": "Member events",
}


def _base(parent: Parent) -> str:
    if parent.project is not None:
        return f"/{parent.project.full_path}{HOOKS}"
    if parent.group is not None:
        return f"/groups/{parent.group.full_path}{HOOKS}"
    return ADMIN_HOOKS


def _project(page: Page, full_path: str) -> Parent:
    page.require_user()
    return Parent(project=find_project(page.ctx, full_path.strip("/")))


def _group(page: Page, full_path: str) -> Parent:
    page.require_user()
    return Parent(group=find_group(page.ctx, full_path.strip("/")))


def _system(page: Page) -> Parent:
    page.require_admin_mode()
    return Parent()


def _level(page: Page, parent: Parent) -> int:
    if parent.project is not None:
        return Resource(parent.project).level_of(page.ctx)
    if parent.group is not None:
        return Resource(parent.group).level_of(page.ctx)
    return 0


def _fields(form: FormData, kind: str) -> HookFields:
    return HookFields(
        url=form.text("url"),
        name=form.text("name"),
        description=form.text("description"),
        token=form.optional("token") or None,
        enable_ssl_verification=form.flag("enable_ssl_verification"),
        events={name: form.flag(name) for name in service.EVENTS[kind]},
        push_events_branch_filter=form.text("push_events_branch_filter"),
        branch_filter_strategy=form.text("branch_filter_strategy") or "wildcard",
    )


def _triggers(parent: Parent) -> list[str]:
    if parent.kind == SYSTEM:
        return []
    triggers = list(service.TEST_TRIGGERS)
    if parent.project is not None:
        triggers += list(service.PROJECT_ONLY_TEST_TRIGGERS)
    return triggers


def _render_list(
    page: Page,
    parent: Parent,
    *,
    error: str | None = None,
    draft: HookFields | None = None,
    status: int = 200,
) -> Response:
    hooks = service.list_hooks(page.ctx, parent)
    return page.render(
        "hooks/hooks.html",
        status=status,
        title="System hooks" if parent.kind == SYSTEM else "Webhooks",
        project=parent.project,
        group=parent.group,
        level=_level(page, parent),
        action=_base(parent),
        hooks=hooks,
        now=page.ctx.now(),
        alert_status=service.alert_status,
        events=service.EVENTS[parent.kind],
        defaults=service.DEFAULT_ON[parent.kind],
        labels=EVENT_LABELS,
        draft=draft,
        error=error,
    )


def _render_hook(
    page: Page, parent: Parent, hook: WebHook, *, error: str | None = None, status: int = 200
) -> Response:
    logs = list(
        page.ctx.db.scalars(
            select(WebHookLog)
            .where(WebHookLog.hook_id == hook.id)
            .order_by(WebHookLog.id.desc())
            .limit(LOG_ROWS)
        )
    )
    return page.render(
        "hooks/hook.html",
        status=status,
        title=f"Webhook {hook.name or hook.id}",
        project=parent.project,
        group=parent.group,
        level=_level(page, parent),
        base=_base(parent),
        hook=hook,
        status_text=service.alert_status(hook, page.ctx.now()),
        events=service.EVENTS[parent.kind],
        labels=EVENT_LABELS,
        triggers=_triggers(parent),
        logs=logs,
        error=error,
    )


def _hook_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise NotFound("Hook")
    return int(raw)


def _index(page: Page, parent: Parent) -> Response:
    return _render_list(page, parent)


def _create(page: Page, parent: Parent, form: FormData) -> Response:
    fields = _fields(form, parent.kind)
    try:
        with page.savepoint():
            hook = service.create_hook(page.ctx, parent, fields)
    except KeycrewError as exc:
        return _render_list(page, parent, error=describe(exc), draft=fields, status=status_of(exc))
    return page.notice(f"{_base(parent)}/{hook.id}", "The webhook was added.")


def _show(page: Page, parent: Parent, hook_id: str) -> Response:
    return _render_hook(page, parent, service.find_hook(page.ctx, parent, _hook_id(hook_id)))


def _update(page: Page, parent: Parent, hook_id: str, form: FormData) -> Response:
    found = service.find_hook(page.ctx, parent, _hook_id(hook_id))
    try:
        with page.savepoint():
            service.update_hook(page.ctx, parent, found.id, _fields(form, parent.kind))
    except KeycrewError as exc:
        page.ctx.db.refresh(found)
        return _render_hook(page, parent, found, error=describe(exc), status=status_of(exc))
    return page.notice(f"{_base(parent)}/{found.id}", "The webhook was saved.")


def _delete(page: Page, parent: Parent, hook_id: str) -> Response:
    service.delete_hook(page.ctx, parent, _hook_id(hook_id))
    return page.notice(_base(parent), "The webhook was deleted.")


def _test(page: Page, parent: Parent, hook_id: str, form: FormData) -> Response:
    hook = service.find_hook(page.ctx, parent, _hook_id(hook_id))
    if parent.kind == SYSTEM:
        trigger, payload = "system_hooks", payloads.SYSTEM_HOOK_SAMPLE
    else:
        name = form.text("trigger") or "push_events"
        triggers = service.TEST_TRIGGERS | service.PROJECT_ONLY_TEST_TRIGGERS
        if name not in _triggers(parent):
            return _render_hook(page, parent, hook, error="Choose an event to test.", status=400)
        try:
            payload = samples.sample(page.ctx, parent, name)
        except KeycrewError as exc:
            return _render_hook(page, parent, hook, error=describe(exc), status=422)
        trigger = triggers[name]
    outcome = delivery.run_now(page.ctx, hook, trigger, payload, test=True)
    if outcome.success:
        message = f"Hook executed successfully: HTTP {outcome.status}"
    else:
        message = f"Hook execution failed: {outcome.message()}"
    return page.notice(f"{_base(parent)}/{hook.id}", message)


# -- project ----------------------------------------------------------------------------------
@router.get("/groups/{full_path:path}" + HOOKS)
def group_hooks(full_path: str, page: Page = page_dep()) -> Response:
    return _index(page, _group(page, full_path))


@router.post("/groups/{full_path:path}" + HOOKS)
def create_group_hook(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    return _create(page, _group(page, full_path), form)


@router.get("/groups/{full_path:path}" + HOOKS + "/{hook_id}")
def group_hook(full_path: str, hook_id: str, page: Page = page_dep()) -> Response:
    return _show(page, _group(page, full_path), hook_id)


@router.post("/groups/{full_path:path}" + HOOKS + "/{hook_id}")
def update_group_hook(
    full_path: str, hook_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _update(page, _group(page, full_path), hook_id, form)


@router.post("/groups/{full_path:path}" + HOOKS + "/{hook_id}/delete")
def delete_group_hook(full_path: str, hook_id: str, page: Page = form_dep()) -> Response:
    return _delete(page, _group(page, full_path), hook_id)


@router.post("/groups/{full_path:path}" + HOOKS + "/{hook_id}/test")
def try_group_hook(
    full_path: str, hook_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _test(page, _group(page, full_path), hook_id, form)


@router.get(ADMIN_HOOKS)
def system_hooks(page: Page = page_dep()) -> Response:
    return _index(page, _system(page))


@router.post(ADMIN_HOOKS)
def create_system_hook(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    return _create(page, _system(page), form)


@router.get(ADMIN_HOOKS + "/{hook_id}")
def system_hook(hook_id: str, page: Page = page_dep()) -> Response:
    return _show(page, _system(page), hook_id)


@router.post(ADMIN_HOOKS + "/{hook_id}")
def update_system_hook(hook_id: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    return _update(page, _system(page), hook_id, form)


@router.post(ADMIN_HOOKS + "/{hook_id}/delete")
def delete_system_hook(hook_id: str, page: Page = form_dep()) -> Response:
    return _delete(page, _system(page), hook_id)


@router.post(ADMIN_HOOKS + "/{hook_id}/test")
def try_system_hook(hook_id: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    return _test(page, _system(page), hook_id, form)


@router.get("/{full_path:webpath}" + HOOKS)
def project_hooks(full_path: str, page: Page = page_dep()) -> Response:
    return _index(page, _project(page, full_path))


@router.post("/{full_path:webpath}" + HOOKS)
def create_project_hook(
    full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _create(page, _project(page, full_path), form)


@router.get("/{full_path:webpath}" + HOOKS + "/{hook_id}")
def project_hook(full_path: str, hook_id: str, page: Page = page_dep()) -> Response:
    return _show(page, _project(page, full_path), hook_id)


@router.post("/{full_path:webpath}" + HOOKS + "/{hook_id}")
def update_project_hook(
    full_path: str, hook_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _update(page, _project(page, full_path), hook_id, form)


@router.post("/{full_path:webpath}" + HOOKS + "/{hook_id}/delete")
def delete_project_hook(full_path: str, hook_id: str, page: Page = form_dep()) -> Response:
    return _delete(page, _project(page, full_path), hook_id)


@router.post("/{full_path:webpath}" + HOOKS + "/{hook_id}/test")
def try_project_hook(
    full_path: str, hook_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _test(page, _project(page, full_path), hook_id, form)
