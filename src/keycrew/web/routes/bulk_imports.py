"""Web UI for direct transfer: the Import group form (GitLab's New group > Import group), the
Import history page where each migrated group and project shows its progress, and an entity's
failures.

The form calls the use cases of ``POST /bulk_imports`` (keycrew.imports.bulk_imports) in the same
three steps as the API: check the destination in a first short unit, ask the source with no
transaction open (it may take seconds; on SQLite a held transaction is the write lock), then
write in a second unit, which checks the destination again. So this route takes the form without
the page dependency and opens its units itself (``form_unit``). Every page answers 404 unless an
admin turned ``bulk_import_enabled`` on.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select

from keycrew.access import groups as group_cases
from keycrew.access.levels import AccessLevel
from keycrew.errors import FeatureDisabled, KeycrewError, NotFound, Unprocessable
from keycrew.identity import validation
from keycrew.imports import bulk_imports
from keycrew.imports.bulk import ENDED, BulkImport, BulkImportEntity, BulkImportFailure, BulkImportStatus
from keycrew.instance.settings import settings_view
from keycrew.namespaces.models import Namespace
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, form_unit, page_dep
from keycrew.web.errors import describe, status_of
from keycrew.web.security import Flash
from keycrew.web.token_forms import FormErrors
from keycrew.web.token_table import relative
from keycrew.webhooks import urls

router = APIRouter()

NEW = "/import/bulk_imports/new"
HISTORY = "/import/bulk_imports/history"
PER_PAGE = 20
TOP_LEVEL = ""

# The form's fields, in the order the error summary lists them; the control of each.
FIELDS = (
    "url",
    "access_token",
    "source_type",
    "source_full_path",
    "destination_namespace",
    "destination_slug",
)
TARGETS = {
    "url": "import-url",
    "access_token": "import-token",
    "source_type": "import-type-group_entity",
    "source_full_path": "import-source",
    "destination_namespace": "import-namespace",
    "destination_slug": "import-slug",
}
KINDS = {"group_entity": "Group", "project_entity": "Project"}
STATUS_WORDS = {
    BulkImportStatus.CREATED.value: "Created",
    BulkImportStatus.STARTED.value: "Started",
    BulkImportStatus.FINISHED.value: "Finished",
    BulkImportStatus.FAILED.value: "Failed",
    BulkImportStatus.CANCELED.value: "Canceled",
    BulkImportStatus.TIMEOUT.value: "Timeout",
}
STATUS_BADGES = {
    BulkImportStatus.CREATED.value: "",
    BulkImportStatus.STARTED.value: "badge-pending",
    BulkImportStatus.FINISHED.value: "badge-active",
    BulkImportStatus.FAILED.value: "badge-failed",
    BulkImportStatus.CANCELED.value: "",
    BulkImportStatus.TIMEOUT.value: "badge-failed",
}
# The relations of an entity's stats, in the order they are copied, as the page names them.
RELATIONS = {
    "group": "Group",
    "project": "Project",
    "members": "Members",
    "issues": "Issues",
    "notes": "Notes",
    "repository": "Repository",
    "packages": "Packages",
}
TOO_MANY = "You have started six migrations in the last minute: wait a minute, then try again."


# -- shared -----------------------------------------------------------------------------------------


def _enabled(page: Page) -> None:
    """The pages exist only while an admin allows direct transfer (GitLab: 404 otherwise)."""
    if not settings_view(page.ctx).bulk_import_enabled:
        raise FeatureDisabled()


def _id(raw: str | None, thing: str) -> int:
    if not raw or not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise NotFound(thing)
    return int(raw)


def _number(raw: str | None) -> int:
    if not raw or not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        return 1
    return max(1, int(raw))


# -- the Import group form ------------------------------------------------------------------------


@dataclass
class Draft:
    """What the form holds (the token only to send on: it is never put back in the page)."""

    url: str = ""
    access_token: str = field(default="", repr=False)
    source_type: str = "group_entity"
    source_full_path: str = ""
    destination_namespace: str = TOP_LEVEL
    destination_slug: str = ""
    migrate_projects: bool = True
    migrate_memberships: bool = True

    @classmethod
    def of(cls, form: FormData) -> Draft:
        return cls(
            url=form.text("url").rstrip("/"),
            access_token=form.text("access_token"),
            source_type=form.text("source_type"),
            source_full_path=form.text("source_full_path").strip("/"),
            destination_namespace=form.text("destination_namespace").strip("/"),
            destination_slug=form.text("destination_slug"),
            migrate_projects=form.flag("migrate_projects"),
            migrate_memberships=form.flag("migrate_memberships"),
        )

    def check(self) -> FormErrors:
        """Every problem the form can see by itself, at once, each by its field (the use cases
        stay the final word)."""
        errors = FormErrors()
        if not self.url:
            errors.add("url", "Source instance URL can't be blank")
        elif not self.url.lower().startswith(("http://", "https://")):
            errors.add("url", "Source instance URL must start with http:// or https://")
        if not self.access_token:
            errors.add("access_token", "Access token can't be blank")
        if self.source_type not in KINDS:
            errors.add("source_type", "Choose what to import: a group or a project")
        if not self.source_full_path:
            errors.add("source_full_path", "Source full path can't be blank")
        elif not bulk_imports.RELATIVE_PATH.match(self.source_full_path):
            errors.add(
                "source_full_path",
                "Source full path must be the path on the source, such as 'platform/api', "
                "without the instance's address",
            )
        if self.destination_namespace and not bulk_imports.RELATIVE_PATH.match(self.destination_namespace):
            errors.add("destination_namespace", "Choose a destination from the list")
        elif self.source_type == "project_entity" and not self.destination_namespace:
            errors.add("destination_namespace", "A project goes into a group or your personal namespace")
        if not self.destination_slug:
            errors.add("destination_slug", "Destination path can't be blank")
        elif self.source_type in KINDS:
            if self.source_type == "group_entity":
                problems = validation.namespace_path_errors(
                    self.destination_slug, top_level=not self.destination_namespace
                )
            else:
                problems = validation.project_path_errors(self.destination_slug)
            if problems:
                errors.add("destination_slug", f"Destination path {problems[0]}".rstrip("."))
        return errors

    def entity(self) -> bulk_imports.EntityRequest:
        return bulk_imports.EntityRequest(
            source_type=self.source_type,
            source_full_path=self.source_full_path,
            destination_slug=self.destination_slug,
            destination_namespace=self.destination_namespace,
            migrate_projects=self.migrate_projects,
            migrate_memberships=self.migrate_memberships,
        )


@dataclass(frozen=True)
class Destination:
    value: str
    label: str


def _destinations(page: Page) -> list[Destination]:
    """Where the person may import to: the top level (groups; if they may create groups), their
    personal namespace (projects), and every group where they are Maintainer or more (the same
    groups the New group form offers as parents)."""
    user = page.require_user()
    found: list[Destination] = []
    if user.can_create_group or page.ctx.actor.is_admin:
        found.append(Destination(TOP_LEVEL, "(top level: a new top-level group)"))
    found.append(Destination(user.username, f"{user.username} (your personal namespace, projects only)"))
    query = group_cases.groups_query(page.ctx, min_access_level=AccessLevel.MAINTAINER)
    groups: list[Namespace] = list(page.ctx.db.scalars(query.limit(500)))
    found.extend(Destination(group.full_path, group.full_path) for group in groups)
    return found


def _render_form(page: Page, draft: Draft, errors: FormErrors | None = None, status: int = 200) -> Response:
    return page.render(
        "imports/new_transfer.html",
        status=status,
        title="Import group",
        draft=draft,
        errors=errors or FormErrors(),
        targets=TARGETS,
        kinds=KINDS,
        destinations=_destinations(page),
        history_url=HISTORY,
        form_url=NEW,
    )


def _refusal(draft: Draft, exc: KeycrewError) -> FormErrors:
    """A use case's refusal next to the field it concerns (GitLab's message, which names it)."""
    errors = FormErrors()
    message = describe(exc).rstrip(".")
    wanted = draft.entity()
    if isinstance(exc, urls.BlockedUrl):
        errors.add("url", f"URL is blocked: {exc.message}".rstrip("."))
    elif exc.message == bulk_imports.destination_taken(wanted.destination_full_path):
        errors.add("destination_slug", message)
    elif exc.message == bulk_imports.destination_invalid(wanted.destination_namespace):
        errors.add("destination_namespace", message)
    elif exc.message == bulk_imports.SCOPE_FAILURE:
        errors.add("access_token", message)
    elif exc.message == bulk_imports.source_missing(wanted.entity_type.value, wanted.source_full_path):
        errors.add("source_full_path", message)
    elif exc.message == bulk_imports.INVALID_URL or exc.message.startswith("the source"):
        # The source could not be asked (its address is wrong, it is down, it is no GitLab).
        errors.add("url", message[:1].upper() + message[1:])
    elif "Destination" in exc.message:
        # Another rule about where the copy goes (e.g. not into the source group itself).
        errors.add("destination_namespace", message)
    else:
        errors.general.append(message[:1].upper() + message[1:])
    return errors


def _over_limit(page: Page) -> bool:
    return bulk_imports.over_create_limit(page.runtime.rate_limiter.store, page.require_user().id)


def _first_unit(page: Page, draft: Draft) -> Response | None:
    """What can be refused without the source; None when the source may be asked."""
    _enabled(page)
    page.require_user()
    errors = draft.check()
    if errors:
        return _render_form(page, draft, errors, 422)
    if _over_limit(page):
        errors.general.append(TOO_MANY)
        return _render_form(page, draft, errors, 429)
    try:
        urls.check(
            draft.url,
            allow_local=settings_view(page.ctx).allow_local_requests_from_web_hooks_and_services,
            instance_host=page.ctx.instance.host,
            resolve_now=True,
        )
        bulk_imports.check_destinations(page.ctx, [draft.entity()], source_url=draft.url)
    except Unprocessable as exc:
        return _render_form(page, draft, _refusal(draft, exc), 422)
    return None


def _ask_source(draft: Draft) -> tuple[str, str | None] | Unprocessable:
    """The source's normalised URL and version, or its refusal. No transaction is open here."""
    try:
        return bulk_imports.ask_source(draft.url, draft.access_token, [draft.entity()])
    except Unprocessable as exc:
        return exc


@router.get(NEW)
def new(page: Page = page_dep()) -> Response:
    _enabled(page)
    page.require_user()
    return _render_form(page, Draft())


@router.post(NEW)
def create(request: Request, form: FormData = form_dep_data()) -> Response:
    draft = Draft.of(form)
    with form_unit(request, form) as page:
        refused = _first_unit(page, draft)
        if refused is not None:
            return refused
    asked = _ask_source(draft)
    with form_unit(request, form) as page:
        _enabled(page)
        page.require_user()
        if isinstance(asked, Unprocessable):
            return _render_form(page, draft, _refusal(draft, asked), 422)
        source_url, version = asked
        try:
            with page.savepoint():
                bulk_imports.create_import(
                    page.ctx, source_url, version, draft.access_token, [draft.entity()]
                )
        except Unprocessable as exc:
            return _render_form(page, draft, _refusal(draft, exc), 422)
        kind = KINDS[draft.source_type].lower()
        return page.notice(
            HISTORY,
            f"Migration of the {kind} {draft.source_full_path} started: it is copied in the background, "
            "and its progress shows here.",
        )


# -- Import history -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityRow:
    """One group or project of a migration, as the history shows it."""

    entity: BulkImportEntity
    kind: str
    status: str
    status_label: str
    badge: str
    destination_path: str
    destination_url: str | None
    source_url: str
    stats: list[str]
    failures: int
    failures_url: str
    started: str
    started_exact: str
    updated: str
    updated_exact: str


@dataclass(frozen=True)
class MigrationRow:
    bulk_import: BulkImport
    entities: list[EntityRow]
    cancelable: bool


def _stats(entity: BulkImportEntity) -> list[str]:
    """ "Issues 40/40" for each relation copied so far: imported of what the source has."""
    found = bulk_imports.stats_of(entity)
    words: list[str] = []
    for key, label in RELATIONS.items():
        value = found.get(key)
        if isinstance(value, dict) and isinstance(value.get("source"), int):
            words.append(f"{label} {int(value.get('imported') or 0)}/{value['source']}")
    return words


def _moment(value: dt.datetime) -> str:
    value = value.astimezone(dt.UTC)
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"


def _entity_row(
    bulk_import: BulkImport, entity: BulkImportEntity, failures: int, now: dt.datetime
) -> EntityRow:
    path = bulk_imports.destination_full_path(entity)
    made = entity.project_id if entity.entity_type == "project" else entity.namespace_id
    link = (f"/{path}" if entity.entity_type == "project" else f"/groups/{path}") if made else None
    return EntityRow(
        entity=entity,
        kind="Project" if entity.entity_type == "project" else "Group",
        status=entity.status,
        status_label=STATUS_WORDS.get(entity.status, entity.status.capitalize()),
        badge=STATUS_BADGES.get(entity.status, ""),
        destination_path=path,
        destination_url=link,
        source_url=f"{bulk_import.source_url}/{entity.source_full_path}",
        stats=_stats(entity),
        failures=failures,
        failures_url=f"/import/bulk_imports/{bulk_import.id}/failures?entity_id={entity.id}",
        started=relative(entity.created_at, now),
        started_exact=_moment(entity.created_at),
        updated=relative(entity.updated_at, now),
        updated_exact=_moment(entity.updated_at),
    )


def _history_link(number: int) -> str:
    return HISTORY + (f"?{urlencode({'page': number})}" if number > 1 else "")


@router.get(HISTORY)
def history(request: Request, page: Page = page_dep()) -> Response:
    _enabled(page)
    page.require_user()
    ctx = page.ctx
    query = bulk_imports.imports_query(ctx, sort="desc")
    total = int(ctx.db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)
    pages = max(1, math.ceil(total / PER_PAGE))
    number = min(_number(request.query_params.get("page")), pages)
    imports = list(ctx.db.scalars(query.limit(PER_PAGE).offset((number - 1) * PER_PAGE)))
    by_import: dict[int, list[BulkImportEntity]] = {row.id: [] for row in imports}
    if imports:
        rows = ctx.db.scalars(
            bulk_imports.entities_query(ctx, sort="asc").where(
                BulkImportEntity.bulk_import_id.in_(list(by_import))
            )
        )
        for row in rows:
            by_import[row.bulk_import_id].append(row)
    failures = bulk_imports.failures_of(ctx, [e.id for rows in by_import.values() for e in rows])
    now = ctx.now()
    migrations = [
        MigrationRow(
            bulk_import=item,
            entities=[_entity_row(item, e, len(failures[e.id]), now) for e in by_import[item.id]],
            cancelable=BulkImportStatus(item.status) not in ENDED,
        )
        for item in imports
    ]
    pager = {
        "total": total,
        "number": number,
        "pages": pages,
        "first": (number - 1) * PER_PAGE + 1 if imports else 0,
        "last": (number - 1) * PER_PAGE + len(imports),
        "previous": _history_link(number - 1) if number > 1 else None,
        "next": _history_link(number + 1) if number < pages else None,
    }
    return page.render(
        "imports/history.html",
        title="Import history",
        migrations=migrations,
        pager=pager,
        number=number,
        history_url=_history_link(number),
        form_url=NEW,
    )


@router.post("/import/bulk_imports/{import_id}/cancel")
def cancel(import_id: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    _enabled(page)
    page.require_user()
    back = _history_link(_number(form.text("page")))
    try:
        with page.savepoint():
            done = bulk_imports.cancel_import(page.ctx, _id(import_id, "BulkImport"))
    except KeycrewError as exc:
        if status_of(exc) == 404:
            raise
        return page.redirect(back, Flash("alert", describe(exc)))
    if done.status != BulkImportStatus.CANCELED.value:
        return page.notice(back, f"Migration {done.id} had already ended: nothing to cancel.")
    return page.notice(back, f"Migration {done.id} canceled: what was already copied stays.")


# -- an entity's failures ---------------------------------------------------------------------------


@router.get("/import/bulk_imports/{import_id}/failures")
def failures_page(import_id: str, request: Request, page: Page = page_dep()) -> Response:
    _enabled(page)
    page.require_user()
    ctx = page.ctx
    found = bulk_imports.find_import(ctx, _id(import_id, "BulkImport"))
    entity = bulk_imports.find_entity(
        ctx, found, _id(request.query_params.get("entity_id"), "BulkImports::Entity")
    )
    rows: list[BulkImportFailure] = list(ctx.db.scalars(bulk_imports.failures_query(entity).limit(500)))
    return page.render(
        "imports/failures.html",
        title=f"Failures of {entity.source_full_path}",
        bulk_import=found,
        entity=entity,
        kind="Project" if entity.entity_type == "project" else "Group",
        destination_path=bulk_imports.destination_full_path(entity),
        failures=rows,
        moment=_moment,
        history_url=HISTORY,
    )


__all__ = ["HISTORY", "NEW", "router"]
