"""Web UI: a project's or group's Settings > Access tokens (project and group bots' tokens)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import find_group, find_project
from keycrew.actions import resource_tokens as rt
from keycrew.context import Ctx
from keycrew.errors import BadParameter, KeycrewError
from keycrew.identity.models import User
from keycrew.instance.settings import instance_settings
from keycrew.namespaces.models import Project
from keycrew.notifications.recipients import resource_managers, wants_mail
from keycrew.tokens.expiry import expiry_policy
from keycrew.tokens.lifecycle import TokenFilters, filtered, recently_inactive
from keycrew.tokens.scopes import RESOURCE_BOT_SCOPES, described
from keycrew.tokens.succession import rotation_choices
from keycrew.web import rotation, token_table
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of
from keycrew.web.security import Flash
from keycrew.web.templating import level_name
from keycrew.web.token_forms import FormErrors, role_choices

router = APIRouter()

TEMPLATE = "tokens/access_tokens.html"


def _resource(page: Page, kind: str, full_path: str) -> rt.Resource:
    page.require_user()
    path = full_path.strip("/")
    found = find_project(page.ctx, path) if kind == "project" else find_group(page.ctx, path)
    return rt.Resource.of(found)


def _base_url(resource: rt.Resource) -> str:
    if isinstance(resource.obj, Project):
        return f"/{resource.obj.full_path}/-/settings/access_tokens"
    return f"/groups/{resource.obj.full_path}/-/settings/access_tokens"


def _level(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        raise BadParameter("access_level does not have a valid value")
    return int(value)


def _show(
    page: Page,
    resource: rt.Resource,
    *,
    status: int = 200,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    failed: rotation.FailedRotation | None = None,
    errors: FormErrors | None = None,
) -> Response:
    ctx = page.ctx
    today = ctx.today()
    query = rt.tokens_query(ctx, resource)  # only those who may manage tokens get this far
    active = list(ctx.db.scalars(filtered(query, TokenFilters(state="active"), today)))
    inactive = list(ctx.db.scalars(recently_inactive(rt.tokens_query(ctx, resource), today)))
    levels = rt.token_levels(ctx, resource, active + inactive)
    policy = expiry_policy(ctx)
    grantable = rt.grantable_levels(ctx, resource)
    default_level = rt.DEFAULT_LEVEL if rt.DEFAULT_LEVEL in grantable else grantable[-1]
    form = {
        "name": "",
        "description": "",
        "expires_at": policy.default.isoformat(),
        "access_level": str(int(default_level)),
        "scopes": [],
    } | (values or {})
    return page.render(
        TEMPLATE,
        status=status,
        title=f"{resource.kind.capitalize()} access tokens",
        resource=resource,
        obj=resource.obj,
        kind=resource.kind,
        base_url=_base_url(resource),
        level=resource.level_of(ctx),
        **_token_tables(page, resource, active, inactive, levels),
        levels=levels,
        grantable=[(int(level), level.label) for level in grantable],
        roles=role_choices(grantable, resource.kind),
        checked_role=_checked_role(form["access_level"], grantable, default_level),
        errors=errors,
        form_open=bool(errors) or page.request.query_params.get("new") == "1",
        inherited_notice=instance_settings(ctx).resource_access_token_notify_inherited,
        mail_to=_expiry_recipients(ctx, resource),
        scope_choices=described(RESOURCE_BOT_SCOPES),
        form=form,
        min_date=policy.earliest.isoformat(),
        max_date=policy.latest.isoformat(),
        expiry_required=policy.required,
        error=error,
        today=today,
        creation_allowed=rt.creation_allowed(ctx, resource),
        rotation_choices=rotation_choices(ctx),
        failed=failed,
    )


def _checked_role(value: Any, grantable: tuple[AccessLevel, ...], default: AccessLevel) -> int:
    """The role the form shows chosen: the one posted if it is on offer, else the default."""
    offered = [int(level) for level in grantable]
    return int(value) if str(value).isdigit() and int(value) in offered else int(default)


def _expiry_recipients(ctx: Ctx, resource: rt.Resource) -> list[User]:
    """Who the notifier e-mails about these bots' expiring tokens (its own rule: a project's Owners
    and Maintainers, a group's Owners, with the inherited setting; those who may and want mail)."""
    obj = resource.project or resource.group
    assert obj is not None
    inherited = instance_settings(ctx).resource_access_token_notify_inherited
    return wants_mail(ctx, resource_managers(ctx, obj, inherited=inherited), obj)


def _token_tables(
    page: Page, resource: rt.Resource, active: list[Any], inactive: list[Any], levels: dict[int, int]
) -> dict[str, Any]:
    """The token tables (active, recently inactive) as the query string asks, and their filters."""
    kind = resource.kind
    return token_table.holder_context(
        page.ctx,
        page.request.query_params,
        _base_url(resource),
        active=(
            token_table.TableSpec(
                "active-heading",
                f"Active {kind} access tokens",
                f"This {kind} has no active access tokens.",
                columns=("role",),
            ),
            active,
        ),
        inactive=(
            token_table.TableSpec(
                "inactive-heading",
                f"Inactive {kind} access tokens",
                "No token became inactive recently.",
                note="Rotated, revoked or expired in the last 30 days. Their bot users stay, so that "
                "what they did keeps its author.",
                actions=False,
                columns=("role",),
            ),
            inactive,
        ),
        role_of=lambda token: level_name(levels.get(token.user_id, 0)),
    )


def _token_id(raw: str) -> str:
    if not raw.isdigit():
        raise BadParameter("token_id is invalid")
    return raw


def _register(kind: str, prefix: str) -> None:
    base = prefix + "/-/settings/access_tokens"

    @router.get(base, name=f"web_{kind}_access_tokens")
    def show(full_path: str, page: Page = page_dep()) -> Response:
        return _show(page, _resource(page, kind, full_path))

    @router.post(base, name=f"web_create_{kind}_access_token")
    def create(full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
        resource = _resource(page, kind, full_path)
        name, description = form.text("name"), form.text("description")
        expires_at, access_level, scopes = (
            form.text("expires_at"),
            form.text("access_level"),
            form.values("scopes"),
        )
        values: dict[str, Any] = {
            "name": name,
            "description": description,
            "expires_at": expires_at,
            "access_level": access_level,
            "scopes": scopes,
        }
        # Every problem the form can tell at once, then the use case's word.
        errors = FormErrors()
        errors.check_name(name)
        policy = expiry_policy(page.ctx)
        expiry = errors.check_expiry(expires_at, earliest=policy.earliest, latest=policy.latest)
        errors.check_scopes(scopes)
        if errors:
            return _show(page, resource, status=400, errors=errors, values=values)
        try:
            with page.savepoint():
                issued, _bot_level = rt.create_resource_token(
                    page.ctx,
                    resource,
                    name=name,
                    scopes=scopes,
                    access_level=_level(access_level),
                    expires_at=expiry,
                    description=description or None,
                )
        except KeycrewError as exc:
            errors.refusal(exc)
            return _show(page, resource, status=status_of(exc), errors=errors, values=values)
        message = f"Your new {resource.kind} access token “{issued.token.name}” has been created."
        return page.redirect(_base_url(resource), Flash("notice", message, secret=issued.value))

    @router.post(base + "/{token_id}/rotate", name=f"web_rotate_{kind}_access_token")
    def rotate(
        full_path: str, token_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
    ) -> Response:
        resource = _resource(page, kind, full_path)
        raw = form.text("expires_at")
        expiry, problem = rotation.checked_expiry(page.ctx, raw)
        if problem is not None:  # the date, told before asking: the form again, the reason by it
            token = rt.find_resource_token(page.ctx, resource, _token_id(token_id))
            failed = rotation.failed(token, f"{_base_url(resource)}/{token.id}/rotate", raw, problem)
            return _show(page, resource, status=400, failed=failed)
        try:
            with page.savepoint():
                token = rt.find_resource_token(page.ctx, resource, _token_id(token_id))
                issued, _bot_level = rt.rotate_resource_token(page.ctx, resource, token, expires_at=expiry)
        except KeycrewError as exc:
            if rotation.expiry_refusal(exc):  # the date: the form again, the reason next to it
                token = rt.find_resource_token(page.ctx, resource, _token_id(token_id))
                action = f"{_base_url(resource)}/{token.id}/rotate"
                failed = rotation.failed(token, action, raw, exc)
                return _show(page, resource, status=status_of(exc), failed=failed)
            return _show(page, resource, status=status_of(exc), error=describe(exc))
        message = rotation.rotated_message(
            f"The token “{issued.token.name}” has been rotated: the old value no longer works.", issued.token
        )
        return page.redirect(_base_url(resource), Flash("notice", message, secret=issued.value))

    @router.post(base + "/{token_id}/revoke", name=f"web_revoke_{kind}_access_token")
    def revoke(full_path: str, token_id: str, page: Page = form_dep()) -> Response:
        resource = _resource(page, kind, full_path)
        try:
            with page.savepoint():
                token = rt.find_resource_token(page.ctx, resource, _token_id(token_id))
                name = token.name
                rt.revoke_resource_token(page.ctx, resource, token)
        except KeycrewError as exc:
            return _show(page, resource, status=status_of(exc), error=describe(exc))
        return page.notice(_base_url(resource), f"The token “{name}” has been revoked.")


_register("project", "/{full_path:webpath}")
_register("group", "/groups/{full_path:path}")
