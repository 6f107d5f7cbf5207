"""/api/v4 routes: project hooks, group hooks and system hooks, their tests and delivery logs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from keycrew.access.lookup import find_group, find_project
from keycrew.api.deps import Params, api_ctx, params_dep, runtime_of
from keycrew.api.entities.hooks import hook, hook_log
from keycrew.api.errors import json_error
from keycrew.api.pagination import paginate_list, paginate_query
from keycrew.api.params import path_id
from keycrew.context import Ctx
from keycrew.errors import BadParameter, NotFound, RateLimited, Unprocessable
from keycrew.webhooks import delivery, payloads, samples, service
from keycrew.webhooks.service import HookFields, Parent

router = APIRouter()

# GitLab's 422s: a URL or branch filter refused at save, a test or resend the receiver failed.
REFUSED: dict[int | str, dict[str, Any]] = {422: {"description": "Invalid url given, or the receiver failed"}}

PROJECT_HOOKS = "/projects/{project_id}/hooks"
GROUP_HOOKS = "/groups/{group_id}/hooks"
SYSTEM_HOOKS = "/hooks"
# GitLab's web_hook_test limit: 5 tests a minute per parent and user.
TEST_LIMIT = 5
TEST_PERIOD = 60
# Every *_events flag of any kind of hook (each kind takes its own, service.EVENTS).
HOOK_EVENTS = tuple(dict.fromkeys(name for names in service.EVENTS.values() for name in names))


def _render(ctx: Ctx, row: Any) -> dict[str, Any]:
    return hook(row, ctx.now(), ctx.instance.secret_key)


def _pairs(value: Any, name: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, dict):  # url_variables[0][key]=... parsed as a mapping of indexes
        value = list(value.values())
    if not isinstance(value, list):
        raise BadParameter(f"{name} is invalid")
    return value


def _fields(params: Params, kind: str) -> HookFields:
    allowed = service.EVENTS[kind]
    events: dict[str, bool] = {}
    for name in HOOK_EVENTS:
        if name in allowed and params.has(name):
            events[name] = bool(params.boolean(name))
    return HookFields(
        url=params.text("url"),
        name=params.text("name"),
        description=params.text("description"),
        token=params.text("token"),
        enable_ssl_verification=params.boolean("enable_ssl_verification"),
        events=events,
        push_events_branch_filter=params.text("push_events_branch_filter"),
        branch_filter_strategy=params.text("branch_filter_strategy", blank_is_absent=True),
        custom_webhook_template=params.text("custom_webhook_template"),
        url_variables=_pairs(params.raw("url_variables"), "url_variables"),
        custom_headers=_pairs(params.raw("custom_headers"), "custom_headers"),
    )


def _unprocessable(exc: Unprocessable) -> JSONResponse:
    """GitLab's ``error!(message, 422)``: the message alone."""
    return json_error(422, {"message": exc.message})


def _list(request: Request, ctx: Ctx, params: Params, parent: Parent) -> Response:
    rows = service.list_hooks(ctx, parent)
    return paginate_list(request, params, rows, lambda r: _render(ctx, r))


def _create(ctx: Ctx, params: Params, parent: Parent) -> Any:
    params.req_text("url")
    try:
        row = service.create_hook(ctx, parent, _fields(params, parent.kind))
    except Unprocessable as exc:
        return _unprocessable(exc)
    return JSONResponse(_render(ctx, row), status_code=201)


def _update(ctx: Ctx, params: Params, parent: Parent, hook_id: str) -> Any:
    try:
        row = service.update_hook(ctx, parent, path_id(hook_id, "hook_id"), _fields(params, parent.kind))
    except Unprocessable as exc:
        return _unprocessable(exc)
    return _render(ctx, row)


def _throttle(request: Request, ctx: Ctx, parent: Parent) -> None:
    store = runtime_of(request).rate_limiter.store
    count, _end = store.hit(f"web_hook_test:{parent.rate_key()}:{ctx.actor.user_id}", TEST_PERIOD)
    if count > TEST_LIMIT:
        raise RateLimited()


def _test(request: Request, ctx: Ctx, parent: Parent, hook_id: str, trigger: str) -> Any:
    row = service.find_hook(ctx, parent, path_id(hook_id, "hook_id"))
    triggers = dict(service.TEST_TRIGGERS)
    if parent.project is not None:
        triggers |= service.PROJECT_ONLY_TEST_TRIGGERS
    if trigger not in triggers:
        raise BadParameter("trigger does not have a valid value")
    _throttle(request, ctx, parent)
    try:
        payload = samples.sample(ctx, parent, trigger)
    except Unprocessable as exc:
        return _unprocessable(exc)
    outcome = delivery.run_now(ctx, row, triggers[trigger], payload, test=True)
    if outcome.success:
        return JSONResponse({"message": "201 Created"}, status_code=201)
    return json_error(422, {"message": outcome.message()})


def _events(request: Request, ctx: Ctx, params: Params, parent: Parent, hook_id: str) -> Response:
    query = service.hook_logs(
        ctx, parent, path_id(hook_id, "hook_id"), params.text("status", blank_is_absent=True)
    )
    return paginate_query(request, ctx.db, params, query, hook_log)


def _resend(request: Request, ctx: Ctx, parent: Parent, hook_id: str, log_id: str) -> Any:
    row, log = service.find_log(ctx, parent, path_id(hook_id, "hook_id"), path_id(log_id, "hook_log_id"))
    _throttle(request, ctx, parent)
    outcome = delivery.resend(ctx, row, log)
    if outcome.success:
        return JSONResponse({"response_status": outcome.status}, status_code=201)
    return json_error(422, {"message": outcome.message()})


# -- project hooks ---------------------------------------------------------------------------
def _project(ctx: Ctx, project_id: str) -> Parent:
    return Parent(project=find_project(ctx, project_id))


@router.get(PROJECT_HOOKS)
def list_project_hooks(
    project_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    return _list(request, ctx, params, _project(ctx, project_id))


@router.post(PROJECT_HOOKS, status_code=201, responses=REFUSED)
def create_project_hook(project_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Any:
    return _create(ctx, params, _project(ctx, project_id))


@router.get(PROJECT_HOOKS + "/{hook_id}")
def get_project_hook(project_id: str, hook_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return _render(ctx, service.find_hook(ctx, _project(ctx, project_id), path_id(hook_id, "hook_id")))


@router.put(PROJECT_HOOKS + "/{hook_id}", responses=REFUSED)
def update_project_hook(
    project_id: str, hook_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Any:
    return _update(ctx, params, _project(ctx, project_id), hook_id)


@router.delete(PROJECT_HOOKS + "/{hook_id}", status_code=204)
def delete_project_hook(project_id: str, hook_id: str, ctx: Ctx = api_ctx()) -> Response:
    service.delete_hook(ctx, _project(ctx, project_id), path_id(hook_id, "hook_id"))
    return Response(status_code=204)


@router.post(PROJECT_HOOKS + "/{hook_id}/test/{trigger}", status_code=201, responses=REFUSED)
def run_project_hook_test(
    project_id: str, hook_id: str, trigger: str, request: Request, ctx: Ctx = api_ctx()
) -> Any:
    return _test(request, ctx, _project(ctx, project_id), hook_id, trigger)


@router.get(PROJECT_HOOKS + "/{hook_id}/events")
def project_hook_events(
    project_id: str, hook_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    return _events(request, ctx, params, _project(ctx, project_id), hook_id)


@router.post(PROJECT_HOOKS + "/{hook_id}/events/{log_id}/resend", status_code=201, responses=REFUSED)
def resend_project_hook_event(
    project_id: str, hook_id: str, log_id: str, request: Request, ctx: Ctx = api_ctx()
) -> Any:
    return _resend(request, ctx, _project(ctx, project_id), hook_id, log_id)


# -- group hooks -----------------------------------------------------------------------------
def _group(ctx: Ctx, group_id: str) -> Parent:
    return Parent(group=find_group(ctx, group_id))


@router.get(GROUP_HOOKS)
def list_group_hooks(
    group_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    return _list(request, ctx, params, _group(ctx, group_id))


@router.post(GROUP_HOOKS, status_code=201, responses=REFUSED)
def create_group_hook(group_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Any:
    return _create(ctx, params, _group(ctx, group_id))


@router.get(GROUP_HOOKS + "/{hook_id}")
def get_group_hook(group_id: str, hook_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return _render(ctx, service.find_hook(ctx, _group(ctx, group_id), path_id(hook_id, "hook_id")))


@router.put(GROUP_HOOKS + "/{hook_id}", responses=REFUSED)
def update_group_hook(
    group_id: str, hook_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Any:
    return _update(ctx, params, _group(ctx, group_id), hook_id)


@router.delete(GROUP_HOOKS + "/{hook_id}", status_code=204)
def delete_group_hook(group_id: str, hook_id: str, ctx: Ctx = api_ctx()) -> Response:
    service.delete_hook(ctx, _group(ctx, group_id), path_id(hook_id, "hook_id"))
    return Response(status_code=204)


@router.post(GROUP_HOOKS + "/{hook_id}/test/{trigger}", status_code=201, responses=REFUSED)
def run_group_hook_test(
    group_id: str, hook_id: str, trigger: str, request: Request, ctx: Ctx = api_ctx()
) -> Any:
    return _test(request, ctx, _group(ctx, group_id), hook_id, trigger)


@router.get(GROUP_HOOKS + "/{hook_id}/events")
def group_hook_events(
    group_id: str, hook_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    return _events(request, ctx, params, _group(ctx, group_id), hook_id)


@router.post(GROUP_HOOKS + "/{hook_id}/events/{log_id}/resend", status_code=201, responses=REFUSED)
def resend_group_hook_event(
    group_id: str, hook_id: str, log_id: str, request: Request, ctx: Ctx = api_ctx()
) -> Any:
    return _resend(request, ctx, _group(ctx, group_id), hook_id, log_id)


# -- system hooks ----------------------------------------------------------------------------
SYSTEM = Parent()


@router.get(SYSTEM_HOOKS)
def list_system_hooks(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    return _list(request, ctx, params, SYSTEM)


@router.post(SYSTEM_HOOKS, status_code=201, responses=REFUSED)
def create_system_hook(ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Any:
    return _create(ctx, params, SYSTEM)


@router.get(SYSTEM_HOOKS + "/{hook_id}")
def get_system_hook(hook_id: str, ctx: Ctx = api_ctx()) -> dict[str, Any]:
    return _render(ctx, service.find_hook(ctx, SYSTEM, path_id(hook_id, "hook_id")))


@router.put(SYSTEM_HOOKS + "/{hook_id}", responses=REFUSED)
def update_system_hook(hook_id: str, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Any:
    return _update(ctx, params, SYSTEM, hook_id)


@router.delete(SYSTEM_HOOKS + "/{hook_id}", status_code=204)
def delete_system_hook(hook_id: str, ctx: Ctx = api_ctx()) -> Response:
    service.delete_hook(ctx, SYSTEM, path_id(hook_id, "hook_id"))
    return Response(status_code=204)


@router.post(SYSTEM_HOOKS + "/{hook_id}", status_code=201)
def run_system_hook_test(hook_id: str, ctx: Ctx = api_ctx()) -> Any:
    """GitLab's system hook test: sends a fixed ``project_create`` sample and answers it (201)."""
    row = service.find_hook(ctx, SYSTEM, path_id(hook_id, "hook_id"))
    delivery.run_now(ctx, row, "system_hooks", payloads.SYSTEM_HOOK_SAMPLE, test=True)
    return JSONResponse(payloads.SYSTEM_HOOK_SAMPLE, status_code=201)


# -- URL variables and custom headers, one key at a time ---------------------------------------
ENTRIES = "/{hook_id}/{which}/{key}"


def _entry(ctx: Ctx, parent: Parent, hook_id: str, which: str, key: str, value: str | None) -> Response:
    if which not in ("url_variables", "custom_headers"):
        raise NotFound("")
    try:
        service.set_entry(ctx, parent, path_id(hook_id, "hook_id"), which, key, value)
    except Unprocessable as exc:
        return _unprocessable(exc)
    return Response(status_code=204)


@router.put(PROJECT_HOOKS + ENTRIES, status_code=204, responses=REFUSED)
def set_project_hook_entry(
    project_id: str, hook_id: str, which: str, key: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    return _entry(ctx, _project(ctx, project_id), hook_id, which, key, params.req_text("value"))


@router.delete(PROJECT_HOOKS + ENTRIES, status_code=204)
def delete_project_hook_entry(
    project_id: str, hook_id: str, which: str, key: str, ctx: Ctx = api_ctx()
) -> Response:
    return _entry(ctx, _project(ctx, project_id), hook_id, which, key, None)


@router.put(GROUP_HOOKS + ENTRIES, status_code=204, responses=REFUSED)
def set_group_hook_entry(
    group_id: str, hook_id: str, which: str, key: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    return _entry(ctx, _group(ctx, group_id), hook_id, which, key, params.req_text("value"))


@router.delete(GROUP_HOOKS + ENTRIES, status_code=204)
def delete_group_hook_entry(
    group_id: str, hook_id: str, which: str, key: str, ctx: Ctx = api_ctx()
) -> Response:
    return _entry(ctx, _group(ctx, group_id), hook_id, which, key, None)


@router.put(SYSTEM_HOOKS + ENTRIES, status_code=204, responses=REFUSED)
def set_system_hook_entry(
    hook_id: str, which: str, key: str, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    return _entry(ctx, SYSTEM, hook_id, which, key, params.req_text("value"))


@router.delete(SYSTEM_HOOKS + ENTRIES, status_code=204)
def delete_system_hook_entry(hook_id: str, which: str, key: str, ctx: Ctx = api_ctx()) -> Response:
    return _entry(ctx, SYSTEM, hook_id, which, key, None)
