"""/api/v4/bulk_imports: GitLab's direct transfer API (start, list, inspect and cancel a migration
of groups and projects from another GitLab or keycrew instance), on keycrew.imports.bulk_imports.

Every route answers 404 unless an admin turned ``bulk_import_enabled`` on, as in GitLab. The
``configuration`` and ``entities`` come as JSON (python-gitlab, GitLab's curl recipes) or, for one
entity, as form fields (``configuration[url]``, ``entities[][source_full_path]``...).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from keycrew.api.deps import Params, api_ctx, params_dep, principal_dep, runtime_of, unit_of_work
from keycrew.api.entities.bulk_imports import bulk_import, entity, failure
from keycrew.api.errors import json_error
from keycrew.api.pagination import paginate_page, paginate_query
from keycrew.api.params import path_id
from keycrew.context import Ctx
from keycrew.errors import BadParameter, FeatureDisabled, MissingParameter, RateLimited, Unprocessable
from keycrew.identity import validation
from keycrew.imports import bulk_imports
from keycrew.imports.bulk import BulkImportEntity, BulkImportStatus
from keycrew.instance.settings import settings_view
from keycrew.tokens.principal import Principal
from keycrew.webhooks import urls

router = APIRouter()


STATUSES = tuple(status.value for status in BulkImportStatus)
UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {"description": "The source, its token or a destination refused"}
}
# The same as form fields (GitLab's curl recipes with --data), for one entity.
FORM_CONFIGURATION = {"url": "configuration[url]", "access_token": "configuration[access_token]"}
FORM_ENTITY = {
    field: f"entities[][{field}]"
    for field in (
        "source_type",
        "source_full_path",
        "destination_slug",
        "destination_name",
        "destination_namespace",
        "migrate_projects",
        "migrate_memberships",
    )
}


def _enabled(ctx: Ctx) -> None:
    if not settings_view(ctx).bulk_import_enabled:
        raise FeatureDisabled()


def _not_relative(key: str, example: str) -> str:
    return (
        f"{key} must be a relative path and not include protocol, sub-domain, or domain information. "
        f"For example, '{example}/full/path' not 'https://example.com/{example}/full/path'"
    )


def _configuration(params: Params) -> tuple[str, str]:
    raw = params.raw("configuration")
    if raw is None:  # form fields: configuration[url], configuration[access_token]
        raw = {field: params.raw(key) for field, key in FORM_CONFIGURATION.items() if params.has(key)}
        if not raw:
            raise MissingParameter("configuration is missing")
    if not isinstance(raw, dict):
        raise BadParameter("configuration is invalid")
    values: list[str] = []
    for key in ("url", "access_token"):
        value = raw.get(key)
        if value is None or value == "":
            raise MissingParameter(f"configuration[{key}] is missing")
        if not isinstance(value, str):
            raise BadParameter(f"configuration[{key}] is invalid")
        values.append(value)
    return values[0], values[1]


def _raw_entities(params: Params) -> list[Any]:
    raw = params.raw("entities")
    if raw is None:  # form fields: entities[][source_type]... (one entity)
        found = {field: params.raw(key) for field, key in FORM_ENTITY.items() if params.has(key)}
        if not found:
            raise MissingParameter("entities is missing")
        return [found]
    if isinstance(raw, dict):
        raw = list(raw.values())
    if not isinstance(raw, list):
        raise BadParameter("entities is invalid")
    if not raw:
        raise BadParameter("entities is empty")
    return raw


def _flag(item: dict[str, Any], key: str, name: str) -> bool:
    value = item.get(key)
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "t", "on"):
        return True
    if text in ("false", "0", "no", "f", "off"):
        return False
    raise BadParameter(f"{name} is invalid")


def _text(item: dict[str, Any], key: str, name: str) -> str | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadParameter(f"{name} is invalid")
    return value


def _entity_request(index: int, item: Any) -> bulk_imports.EntityRequest:
    prefix = f"entities[{index}]"
    if not isinstance(item, dict):
        raise BadParameter(f"{prefix} is invalid")
    source_type = _text(item, "source_type", f"{prefix}[source_type]")
    if source_type is None:
        raise MissingParameter(f"{prefix}[source_type] is missing")
    if source_type not in bulk_imports.SOURCE_TYPES:
        raise BadParameter(f"{prefix}[source_type] does not have a valid value")
    source_path = _text(item, "source_full_path", f"{prefix}[source_full_path]")
    if not source_path:
        raise MissingParameter(f"{prefix}[source_full_path] is missing")
    if not bulk_imports.RELATIVE_PATH.match(source_path):
        raise BadParameter(_not_relative(f"{prefix}[source_full_path]", "source"))
    slug = _text(item, "destination_slug", f"{prefix}[destination_slug]")
    name = _text(item, "destination_name", f"{prefix}[destination_name]")
    if slug is not None and name is not None:
        raise BadParameter(f"{prefix}[destination_slug], {prefix}[destination_name] are mutually exclusive")
    chosen = slug if slug is not None else name
    if not chosen:
        raise MissingParameter(
            f"{prefix}[destination_slug], {prefix}[destination_name] are missing, "
            "at least one parameter must be provided"
        )
    namespace = _text(item, "destination_namespace", f"{prefix}[destination_namespace]")
    if namespace is None:
        raise MissingParameter(f"{prefix}[destination_namespace] is missing")
    namespace = namespace.strip()
    if namespace and not bulk_imports.RELATIVE_PATH.match(namespace):
        raise BadParameter(_not_relative(f"{prefix}[destination_namespace]", "destination"))
    key = f"{prefix}[destination_slug]" if slug is not None else f"{prefix}[destination_name]"
    if source_type == "group_entity":
        problems = validation.namespace_path_errors(chosen, top_level=not namespace)
    else:
        problems = validation.project_path_errors(chosen)
    if problems:
        raise BadParameter(f"{key} {problems[0]}")
    return bulk_imports.EntityRequest(
        source_type=source_type,
        source_full_path=source_path,
        destination_slug=chosen,
        destination_namespace=namespace,
        migrate_projects=_flag(item, "migrate_projects", f"{prefix}[migrate_projects]"),
        migrate_memberships=_flag(item, "migrate_memberships", f"{prefix}[migrate_memberships]"),
    )


def _throttle(request: Request, ctx: Ctx) -> None:
    user_id = ctx.actor.user_id
    if user_id is not None and bulk_imports.over_create_limit(
        runtime_of(request).rate_limiter.store, user_id
    ):
        raise RateLimited()


def _status(params: Params) -> str | None:
    return params.choice("status", STATUSES) if params.has("status") else None


def _sort(params: Params, default: str) -> str:
    value = params.choice("sort", ("asc", "desc")) if params.has("sort") else None
    return value or default


def _entities_page(ctx: Ctx) -> Any:
    def render(rows: list[BulkImportEntity]) -> list[dict[str, Any]]:
        failures = bulk_imports.failures_of(ctx, [row.id for row in rows])
        return [entity(row, failures[row.id]) for row in rows]

    return render


@router.post("/bulk_imports", status_code=201, responses=UNPROCESSABLE)
def create(request: Request, principal: Principal = principal_dep(), params: Params = params_dep()) -> Any:
    """Three steps, so that no transaction (on SQLite: the write lock) is held while the source
    answers: check what this instance knows, ask the source, then write."""
    with unit_of_work(request, principal) as ctx:
        _enabled(ctx)
        url, token = _configuration(params)
        wanted = [_entity_request(index, item) for index, item in enumerate(_raw_entities(params))]
        _throttle(request, ctx)
        settings = settings_view(ctx)
        try:
            urls.check(
                url,
                allow_local=settings.allow_local_requests_from_web_hooks_and_services,
                instance_host=ctx.instance.host,
                resolve_now=True,
            )
            bulk_imports.check_destinations(ctx, wanted, source_url=url)
        except urls.BlockedUrl as exc:
            return json_error(422, {"message": f"URL is blocked: {exc.message}"})
        except Unprocessable as exc:
            return json_error(422, {"message": exc.message})
    try:
        source_url, version = bulk_imports.ask_source(url, token, wanted)
        with unit_of_work(request, principal) as ctx:
            created = bulk_imports.create_import(ctx, source_url, version, token, wanted)
            return JSONResponse(bulk_import(created), status_code=201)
    except Unprocessable as exc:
        return json_error(422, {"message": exc.message})


@router.get("/bulk_imports")
def list_imports(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    _enabled(ctx)
    query = bulk_imports.imports_query(ctx, status=_status(params), sort=_sort(params, "desc"))
    return paginate_query(request, ctx.db, params, query, bulk_import)


@router.get("/bulk_imports/entities")
def list_all_entities(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    _enabled(ctx)
    query = bulk_imports.entities_query(ctx, status=_status(params), sort=_sort(params, "desc"))
    return paginate_page(request, ctx.db, params, query, _entities_page(ctx))


@router.get("/bulk_imports/{import_id}")
def get_import(import_id: str, ctx: Ctx = api_ctx()) -> Any:
    _enabled(ctx)
    return bulk_import(bulk_imports.find_import(ctx, path_id(import_id, "import_id")))


@router.get("/bulk_imports/{import_id}/entities")
def list_entities(
    import_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    _enabled(ctx)
    found = bulk_imports.find_import(ctx, path_id(import_id, "import_id"))
    query = bulk_imports.entities_query(
        ctx, bulk_import=found, status=_status(params), sort=_sort(params, "asc")
    )
    return paginate_page(request, ctx.db, params, query, _entities_page(ctx))


@router.get("/bulk_imports/{import_id}/entities/{entity_id}")
def get_entity(import_id: str, entity_id: str, ctx: Ctx = api_ctx()) -> Any:
    _enabled(ctx)
    found = bulk_imports.find_import(ctx, path_id(import_id, "import_id"))
    row = bulk_imports.find_entity(ctx, found, path_id(entity_id, "entity_id"))
    return entity(row, bulk_imports.failures_of(ctx, [row.id])[row.id])


@router.get("/bulk_imports/{import_id}/entities/{entity_id}/failures")
def get_entity_failures(
    import_id: str, entity_id: str, request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()
) -> Response:
    _enabled(ctx)
    found = bulk_imports.find_import(ctx, path_id(import_id, "import_id"))
    row = bulk_imports.find_entity(ctx, found, path_id(entity_id, "entity_id"))
    return paginate_query(request, ctx.db, params, bulk_imports.failures_query(row), failure)


@router.post("/bulk_imports/{import_id}/cancel")
def cancel(import_id: str, ctx: Ctx = api_ctx()) -> Any:
    _enabled(ctx)
    return bulk_import(bulk_imports.cancel_import(ctx, path_id(import_id, "import_id")))
