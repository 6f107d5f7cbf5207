"""Hooks: who may manage which, their fields and rules, queueing deliveries, and auto-disabling.

Project hooks belong to a project (Maintainer and above), group hooks to a group (Owner), system
hooks to the instance (admins). Every change writes its audit event in its transaction.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from keycrew.access.levels import AccessLevel
from keycrew.access.policy import effective_group_level, effective_project_level, namespace_chain
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.errors import BadParameter, Forbidden, NotFound, Unprocessable
from keycrew.instance.settings import settings_view
from keycrew.namespaces.models import Namespace, Project
from keycrew.webhooks import secrets, urls
from keycrew.webhooks.models import GROUP, PENDING, PROJECT, SYSTEM, WebHook, WebHookDelivery, WebHookLog

HOOK = "Hook"

# The *_events flags of each kind of hook, with GitLab's defaults (push_events on, except on
# system hooks, which send repository_update events by default).
COMMON_EVENTS = ("push_events", "tag_push_events", "merge_requests_events", "repository_update_events")
RESOURCE_EVENTS = (
    "issues_events",
    "confidential_issues_events",
    "note_events",
    "confidential_note_events",
    "pipeline_events",
    "wiki_page_events",
    "deployment_events",
    "feature_flag_events",
    "job_events",
    "releases_events",
    "milestone_events",
    "emoji_events",
    "resource_access_token_events",
)
EVENTS: dict[str, tuple[str, ...]] = {
    PROJECT: (*COMMON_EVENTS, *RESOURCE_EVENTS, "resource_deploy_token_events", "vulnerability_events"),
    GROUP: (*COMMON_EVENTS, *RESOURCE_EVENTS, "subgroup_events", "project_events", "member_events"),
    SYSTEM: COMMON_EVENTS,
}
DEFAULT_ON: dict[str, frozenset[str]] = {
    PROJECT: frozenset({"push_events"}),
    GROUP: frozenset({"push_events"}),
    SYSTEM: frozenset({"repository_update_events"}),
}
BRANCH_FILTER_STRATEGIES = ("wildcard", "regex", "all_branches")

# The test endpoint's triggers (``POST .../hooks/:hook_id/test/:trigger``) and GitLab's hook names.
TEST_TRIGGERS: dict[str, str] = {
    "push_events": "push_hooks",
    "tag_push_events": "tag_push_hooks",
    "issues_events": "issue_hooks",
    "confidential_issues_events": "confidential_issue_hooks",
    "note_events": "note_hooks",
    "merge_requests_events": "merge_request_hooks",
    "job_events": "job_hooks",
    "pipeline_events": "pipeline_hooks",
    "wiki_page_events": "wiki_page_hooks",
    "releases_events": "release_hooks",
    "milestone_events": "milestone_hooks",
    "emoji_events": "emoji_hooks",
    "resource_access_token_events": "resource_access_token_hooks",
}
PROJECT_ONLY_TEST_TRIGGERS = {"resource_deploy_token_events": "resource_deploy_token_hooks"}

# Auto-disabling (GitLab's WebHooks::AutoDisabling): temporarily after more than 3 failures in a
# row, for 1 minute * 2^(failures - 3), at most a day; permanently at the 40th.
FAILURE_THRESHOLD = 3
PERMANENT_FAILURES = 40
MAX_BACKOFF = dt.timedelta(days=1)
# How long the delivery log keeps a request, and how many at most per hook.
LOG_RETENTION = dt.timedelta(days=7)
LOG_LIMIT = 500
RESPONSE_BODY_LIMIT = 8 * 1024

_VARIABLE_KEY = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_HEADER_KEY = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def event_header(trigger: str) -> str:
    """GitLab's X-Gitlab-Event for a trigger: ``push_hooks`` → ``Push Hook``."""
    base = trigger.removesuffix("_hooks")
    return " ".join(word.capitalize() for word in base.split("_")) + " Hook"


# -- permissions and lookup -----------------------------------------------------------------
def _check_project(ctx: Ctx, project: Project) -> None:
    if effective_project_level(ctx.reads, ctx.actor, project, ctx.today()) < AccessLevel.MAINTAINER:
        raise Forbidden()


def _check_group(ctx: Ctx, group: Namespace) -> None:
    if effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) < AccessLevel.OWNER:
        raise Forbidden()


def _check_admin(ctx: Ctx) -> None:
    if not ctx.actor.is_admin:
        raise Forbidden()


@dataclass(frozen=True)
class Parent:
    """What a hook belongs to: a project, a group, or the instance (both None)."""

    project: Project | None = None
    group: Namespace | None = None

    @property
    def kind(self) -> str:
        return PROJECT if self.project is not None else GROUP if self.group is not None else SYSTEM

    def check(self, ctx: Ctx) -> None:
        if self.project is not None:
            _check_project(ctx, self.project)
        elif self.group is not None:
            _check_group(ctx, self.group)
        else:
            _check_admin(ctx)

    def entity(self) -> Entity:
        if self.project is not None:
            return Entity("Project", self.project.id, self.project.full_path)
        if self.group is not None:
            return Entity("Group", self.group.id, self.group.full_path)
        return Entity.instance()

    def where(self) -> Any:
        if self.project is not None:
            return (WebHook.type == PROJECT) & (WebHook.project_id == self.project.id)
        if self.group is not None:
            return (WebHook.type == GROUP) & (WebHook.group_id == self.group.id)
        return WebHook.type == SYSTEM

    def rate_key(self) -> str:
        if self.project is not None:
            return f"project:{self.project.id}"
        if self.group is not None:
            return f"group:{self.group.id}"
        return "instance"


def list_hooks(ctx: Ctx, parent: Parent) -> list[WebHook]:
    parent.check(ctx)
    return list(ctx.db.scalars(select(WebHook).where(parent.where()).order_by(WebHook.id)))


def find_hook(ctx: Ctx, parent: Parent, hook_id: int, *, checked: bool = False) -> WebHook:
    if not checked:
        parent.check(ctx)
    hook = ctx.db.scalar(select(WebHook).where(parent.where(), WebHook.id == hook_id))
    if hook is None:
        raise NotFound(HOOK)
    return hook


# -- fields ----------------------------------------------------------------------------------
@dataclass
class HookFields:
    """What a create or update gives (None: not given)."""

    url: str | None = None
    name: str | None = None
    description: str | None = None
    token: str | None = None
    enable_ssl_verification: bool | None = None
    events: dict[str, bool] | None = None
    push_events_branch_filter: str | None = None
    branch_filter_strategy: str | None = None
    custom_webhook_template: str | None = None
    url_variables: list[dict[str, Any]] | None = None
    custom_headers: list[dict[str, Any]] | None = None

    def empty(self) -> bool:
        return all(getattr(self, name) in (None, {}) for name in self.__dataclass_fields__)


def allow_local(ctx: Ctx, kind: str) -> bool:
    view = settings_view(ctx)
    if kind == SYSTEM:
        return bool(view.allow_local_requests_from_system_hooks)
    return bool(view.allow_local_requests_from_web_hooks_and_services)


def _pairs(items: list[dict[str, Any]], what: str, key_pattern: re.Pattern[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise BadParameter(f"{what} is invalid")
        key = item["key"]
        if not key_pattern.match(key):
            raise BadParameter(f"{what}[key] is invalid")
        value = item.get("value")
        if value is not None and not isinstance(value, str | int | float):
            raise BadParameter(f"{what}[value] is invalid")
        found[key] = None if value is None else str(value)
    return found


def _merge(current: dict[str, str], given: dict[str, str | None]) -> dict[str, str]:
    """GitLab merges variables and headers: a key with a value sets it, one without removes it."""
    merged = dict(current)
    for key, value in given.items():
        if value is None or value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _branch_filter_ok(strategy: str, pattern: str | None) -> bool:
    if strategy == "regex" and pattern:
        try:
            re.compile(pattern)
        except re.error:
            return False
    return True


def branch_matches(hook: WebHook, ref: str) -> bool:
    """Whether a push to ``ref`` passes the hook's branch filter (tags always pass)."""
    if not ref.startswith("refs/heads/"):
        return True
    branch = ref.removeprefix("refs/heads/")
    pattern = hook.push_events_branch_filter
    if hook.branch_filter_strategy == "all_branches" or not pattern:
        return True
    if hook.branch_filter_strategy == "regex":
        try:
            return re.search(pattern, branch) is not None
        except re.error:
            return False
    return fnmatch.fnmatchcase(branch, pattern)


def _apply(ctx: Ctx, hook: WebHook, fields: HookFields) -> list[str]:
    """Set the given fields on ``hook``; the names of what changed (secrets named, never shown)."""
    key = ctx.instance.secret_key
    changed: list[str] = []
    for name in ("name", "description", "custom_webhook_template", "push_events_branch_filter"):
        value = getattr(fields, name)
        if value is not None and value != getattr(hook, name):
            setattr(hook, name, value)
            changed.append(name)
    if fields.url is not None and fields.url != hook.url:
        hook.url = fields.url.strip()
        changed.append("url")
    if fields.enable_ssl_verification is not None:
        if fields.enable_ssl_verification != hook.enable_ssl_verification:
            changed.append("enable_ssl_verification")
        hook.enable_ssl_verification = fields.enable_ssl_verification
    if fields.branch_filter_strategy is not None:
        if fields.branch_filter_strategy not in BRANCH_FILTER_STRATEGIES:
            raise BadParameter("branch_filter_strategy does not have a valid value")
        if fields.branch_filter_strategy != hook.branch_filter_strategy:
            changed.append("branch_filter_strategy")
        hook.branch_filter_strategy = fields.branch_filter_strategy
    if fields.events:
        events = dict(hook.events)
        for name, on in fields.events.items():
            if bool(events.get(name)) != on:
                changed.append(name)
            events[name] = on
        hook.events = events
    if fields.token is not None:
        hook.encrypted_token = secrets.encrypt(key, fields.token) if fields.token else None
        changed.append("token")
    if fields.url_variables is not None:
        merged = _merge(
            secrets.decrypt_map(key, hook.encrypted_url_variables),
            _pairs(fields.url_variables, "url_variables", _VARIABLE_KEY),
        )
        hook.encrypted_url_variables = secrets.encrypt_map(key, merged)
        changed.append("url_variables")
    if fields.custom_headers is not None:
        merged = _merge(
            secrets.decrypt_map(key, hook.encrypted_custom_headers),
            _pairs(fields.custom_headers, "custom_headers", _HEADER_KEY),
        )
        hook.encrypted_custom_headers = secrets.encrypt_map(key, merged)
        changed.append("custom_headers")
    return changed


def _validate(ctx: Ctx, hook: WebHook) -> None:
    if not _branch_filter_ok(hook.branch_filter_strategy, hook.push_events_branch_filter):
        raise Unprocessable("Invalid branch filter given")
    variables = secrets.decrypt_map(ctx.instance.secret_key, hook.encrypted_url_variables)
    try:
        url = interpolate(hook.url, variables)
    except KeyError:
        raise Unprocessable(urls.INVALID_URL) from None
    urls.validate_for_save(url, allow_local=allow_local(ctx, hook.type), instance_host=ctx.instance.host)


def interpolate(url: str, variables: dict[str, str]) -> str:
    """The URL with its ``{name}`` placeholders filled; KeyError for a missing variable."""
    return re.sub(r"\{([A-Za-z0-9_]+)\}", lambda m: variables[m.group(1)], url)


def create_hook(ctx: Ctx, parent: Parent, fields: HookFields) -> WebHook:
    """Add a hook. Raises Forbidden, Unprocessable (``Invalid url given``...), BadParameter."""
    parent.check(ctx)
    kind = parent.kind
    now = ctx.now()
    hook = WebHook(
        type=kind,
        project_id=None if parent.project is None else parent.project.id,
        group_id=None if parent.group is None else parent.group.id,
        url="",
        name=None,
        description=None,
        enable_ssl_verification=True,
        events={name: name in DEFAULT_ON[kind] for name in EVENTS[kind]},
        branch_filter_strategy="wildcard",
        recent_failures=0,
        backoff_count=0,
        permanently_disabled=False,
        created_by_id=ctx.actor.user_id,
        created_at=now,
        updated_at=now,
    )
    _apply(ctx, hook, fields)
    _validate(ctx, hook)
    ctx.db.add(hook)
    ctx.db.flush()
    record(
        ctx,
        _event("created"),
        parent.entity(),
        target=Target(_target_type(kind), hook.id, urls.mask_userinfo(hook.url)),
    )
    return hook


def update_hook(ctx: Ctx, parent: Parent, hook_id: int, fields: HookFields) -> WebHook:
    """Change a hook (GitLab: 400 ``No parameters provided`` when nothing is given)."""
    hook = find_hook(ctx, parent, hook_id)
    if fields.empty():
        raise BadParameter("No parameters provided")
    changed = _apply(ctx, hook, fields)
    _validate(ctx, hook)
    hook.updated_at = ctx.now()
    ctx.db.flush()
    record(
        ctx,
        _event("updated"),
        parent.entity(),
        target=Target(_target_type(hook.type), hook.id, urls.mask_userinfo(hook.url)),
        changed=changed or None,
    )
    return hook


def set_entry(ctx: Ctx, parent: Parent, hook_id: int, which: str, key: str, value: str | None) -> WebHook:
    """Set (``value``) or remove (None) one URL variable or custom header of a hook (GitLab's
    ``PUT|DELETE .../hooks/:hook_id/url_variables|custom_headers/:key``). Raises NotFound for a
    key to remove that is not there, BadParameter for a bad key."""
    hook = find_hook(ctx, parent, hook_id)
    pattern = _VARIABLE_KEY if which == "url_variables" else _HEADER_KEY
    if not pattern.match(key):
        raise BadParameter("key is invalid")
    secret_key = ctx.instance.secret_key
    column = "encrypted_url_variables" if which == "url_variables" else "encrypted_custom_headers"
    current = secrets.decrypt_map(secret_key, getattr(hook, column))
    if value is None:
        if key not in current:
            raise NotFound("Key")
        del current[key]
    else:
        current[key] = value
    setattr(hook, column, secrets.encrypt_map(secret_key, current))
    if which == "url_variables":
        _validate(ctx, hook)
    hook.updated_at = ctx.now()
    ctx.db.flush()
    record(
        ctx,
        Event.HOOK_UPDATED,
        parent.entity(),
        target=Target(_target_type(hook.type), hook.id, urls.mask_userinfo(hook.url)),
        changed=[which],
    )
    return hook


def delete_hook(ctx: Ctx, parent: Parent, hook_id: int) -> None:
    hook = find_hook(ctx, parent, hook_id)
    record(
        ctx,
        _event("deleted"),
        parent.entity(),
        target=Target(_target_type(hook.type), hook.id, urls.mask_userinfo(hook.url)),
    )
    ctx.db.delete(hook)
    ctx.db.flush()


def _target_type(kind: str) -> str:
    return {PROJECT: "ProjectHook", GROUP: "GroupHook", SYSTEM: "SystemHook"}[kind]


_EVENTS = {"created": Event.HOOK_CREATED, "updated": Event.HOOK_UPDATED, "deleted": Event.HOOK_DELETED}


def _event(what: str) -> Event:
    return _EVENTS[what]


# -- state -----------------------------------------------------------------------------------
def alert_status(hook: WebHook, now: dt.datetime) -> str:
    if hook.permanently_disabled:
        return "disabled"
    if hook.disabled_until is not None and hook.disabled_until > now:
        return "temporarily_disabled"
    return "executable"


def executable(hook: WebHook, now: dt.datetime) -> bool:
    return alert_status(hook, now) == "executable"


def note_success(hook: WebHook) -> None:
    hook.recent_failures = 0
    hook.backoff_count = 0
    hook.disabled_until = None
    hook.permanently_disabled = False


def note_failure(hook: WebHook, now: dt.datetime) -> None:
    """GitLab's auto-disabling; system hooks are never disabled."""
    if hook.type == SYSTEM:
        return
    hook.recent_failures += 1
    if hook.recent_failures >= PERMANENT_FAILURES:
        hook.permanently_disabled = True
        hook.disabled_until = None
    elif hook.recent_failures > FAILURE_THRESHOLD:
        hook.backoff_count += 1
        backoff = dt.timedelta(minutes=2 ** (hook.recent_failures - FAILURE_THRESHOLD))
        hook.disabled_until = now + min(backoff, MAX_BACKOFF)


# -- queue -----------------------------------------------------------------------------------
_EVENT_UUID = "keycrew.webhook_event_uuid"


def event_uuid(ctx: Ctx) -> str:
    """X-Gitlab-Event-UUID: one per originating transaction, shared by all its deliveries."""
    transaction = ctx.db.get_transaction()
    marker = id(transaction)
    held = ctx.db.info.get(_EVENT_UUID)
    if held is None or held[0] != marker:
        held = (marker, str(uuid.uuid4()))
        ctx.db.info[_EVENT_UUID] = held
    return str(held[1])


def queue(ctx: Ctx, hook: WebHook, trigger: str, payload: dict[str, Any]) -> WebHookDelivery:
    """Queue one delivery of ``payload`` to ``hook`` in the current transaction."""
    now = ctx.now()
    delivery = WebHookDelivery(
        hook_id=hook.id,
        event_uuid=event_uuid(ctx),
        idempotency_key=str(uuid.uuid4()),
        trigger=trigger,
        event_header="System Hook" if hook.type == SYSTEM else event_header(trigger),
        payload=payload,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    ctx.db.add(delivery)
    return delivery


def project_hooks(ctx: Ctx, project: Project, flag: str) -> list[WebHook]:
    hooks = ctx.db.scalars(
        select(WebHook).where(WebHook.type == PROJECT, WebHook.project_id == project.id).order_by(WebHook.id)
    )
    return [h for h in hooks if h.events.get(flag)]


def group_hooks(ctx: Ctx, group: Namespace | None, flag: str) -> list[WebHook]:
    """The hooks of ``group`` and of every group above it with ``flag`` on."""
    if group is None or group.kind != "group":
        return []
    chain = [ns.id for ns in namespace_chain(group)]
    hooks = ctx.db.scalars(
        select(WebHook).where(WebHook.type == GROUP, WebHook.group_id.in_(chain)).order_by(WebHook.id)
    )
    return [h for h in hooks if h.events.get(flag)]


def system_hooks(ctx: Ctx, flag: str | None = None) -> list[WebHook]:
    hooks = ctx.db.scalars(select(WebHook).where(WebHook.type == SYSTEM).order_by(WebHook.id))
    return [h for h in hooks if flag is None or h.events.get(flag)]


# -- the delivery log ------------------------------------------------------------------------
def add_log(ctx: Ctx, log: WebHookLog) -> None:
    """Keep one request in the log, and forget what is older than the retention (per hook)."""
    ctx.db.add(log)
    ctx.db.flush()
    ctx.db.execute(
        delete(WebHookLog)
        .where(WebHookLog.hook_id == log.hook_id, WebHookLog.created_at < ctx.now() - LOG_RETENTION)
        .execution_options(synchronize_session=False)
    )
    cutoff = ctx.db.scalar(
        select(WebHookLog.id)
        .where(WebHookLog.hook_id == log.hook_id)
        .order_by(WebHookLog.id.desc())
        .offset(LOG_LIMIT)
        .limit(1)
    )
    if cutoff is not None:
        ctx.db.execute(
            delete(WebHookLog)
            .where(WebHookLog.hook_id == log.hook_id, WebHookLog.id <= cutoff)
            .execution_options(synchronize_session=False)
        )


def hook_logs(ctx: Ctx, parent: Parent, hook_id: int, status: str | None = None) -> Any:
    """The query of a hook's log, newest first; ``status``: ``successful``, ``client_failure``,
    ``server_failure`` or a status code (GitLab's filter)."""
    hook = find_hook(ctx, parent, hook_id)
    query = select(WebHookLog).where(WebHookLog.hook_id == hook.id).order_by(WebHookLog.id.desc())
    if status is not None:
        codes = {
            "successful": [str(c) for c in range(200, 300)],
            "client_failure": [str(c) for c in range(400, 500)],
            "server_failure": [str(c) for c in range(500, 600)],
        }.get(status)
        if codes is None:
            if not status.isdigit():
                raise BadParameter("status does not have a valid value")
            codes = [status]
        query = query.where(WebHookLog.response_status.in_(codes))
    return query


def find_log(ctx: Ctx, parent: Parent, hook_id: int, log_id: int) -> tuple[WebHook, WebHookLog]:
    hook = find_hook(ctx, parent, hook_id)
    log = ctx.db.scalar(select(WebHookLog).where(WebHookLog.hook_id == hook.id, WebHookLog.id == log_id))
    if log is None:
        raise NotFound("Web hook log")
    return hook, log
