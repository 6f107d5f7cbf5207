"""Web UI: a project's and a group's Settings > Deploy tokens (create, show once, revoke)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Response

from keycrew.access.lookup import find_group, find_project
from keycrew.access.resources import Resource
from keycrew.errors import KeycrewError, NotFound
from keycrew.tokens import deploy
from keycrew.tokens.models import DeployToken
from keycrew.tokens.scopes import DEPLOY_SCOPES, described
from keycrew.web import token_table
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import status_of
from keycrew.web.security import Flash
from keycrew.web.token_forms import FormErrors

router = APIRouter()

SETTINGS = "/-/settings/deploy_tokens"


def _url(holder: Resource) -> str:
    """The deploy tokens page of the project or group."""
    if holder.project is not None:
        return f"/{holder.project.full_path}{SETTINGS}"
    return f"/groups/{holder.full_path}{SETTINGS}"


def _title(holder: Resource) -> str:
    if holder.group is not None:
        return holder.group.full_name
    return holder.obj.name


@dataclass
class _Draft:
    """What the create form holds: empty at first, the posted values after a refusal."""

    name: str = ""
    username: str = ""
    expires_at: str = ""
    scopes: list[str] = field(default_factory=list)


def _project(page: Page, full_path: str) -> Resource:
    page.require_user()
    return Resource(find_project(page.ctx, full_path.strip("/")))


def _group(page: Page, full_path: str) -> Resource:
    page.require_user()
    return Resource(find_group(page.ctx, full_path.strip("/")))


def _render(
    page: Page,
    holder: Resource,
    *,
    draft: _Draft | None = None,
    error: str | None = None,
    status: int = 200,
    errors: FormErrors | None = None,
) -> Response:
    ctx = page.ctx
    # Below the level that may see them, this raises Forbidden: the UI answers with its 403 page.
    tokens = deploy.list_deploy_tokens(ctx, project=holder.project, group=holder.group)
    return page.render(
        "tokens/deploy_tokens.html",
        status=status,
        title=f"Deploy tokens · {_title(holder)}",
        project=holder.project,
        group=holder.group,
        level=holder.level_of(page.ctx),
        action=_url(holder),
        can_manage=deploy.can_manage_deploy_tokens(ctx, project=holder.project, group=holder.group),
        **_token_tables(page, holder, tokens),
        scope_choices=described(DEPLOY_SCOPES),
        draft=draft or _Draft(),
        error=error,
        errors=errors,
        form_open=bool(errors) or page.request.query_params.get("new") == "1",
    )


def _token_tables(page: Page, holder: Resource, tokens: list[DeployToken]) -> dict[str, Any]:
    """The token tables (active, revoked or expired) as the query string asks, and their filters.
    Deploy tokens are no personal access tokens: no client IPs are kept for them."""
    ctx = page.ctx
    today = ctx.today()
    kind = "project" if holder.project is not None else "group"
    can_manage = deploy.can_manage_deploy_tokens(ctx, project=holder.project, group=holder.group)
    active = [t for t in tokens if t.is_active(today)]
    inactive = [t for t in tokens if not t.is_active(today)]
    scopes = token_table.filter_scopes(tokens)
    query = token_table.parse_query(page.request.query_params, scopes=scopes)
    tables = token_table.holder_tables(
        ctx,
        query,
        _url(holder),
        active=(
            token_table.TableSpec(
                "active-deploy-tokens-heading",
                "Active deploy tokens",
                f"This {kind} has no active deploy tokens.",
                actions=can_manage,
                columns=("username",),
            ),
            active,
        ),
        inactive=(
            token_table.TableSpec(
                "inactive-deploy-tokens-heading",
                "Revoked and expired deploy tokens",
                "No revoked or expired deploy tokens.",
                actions=False,
                columns=("username",),
            ),
            inactive,
        ),
        with_ips=False,
    )
    return {"tables": tables, "table_query": query, "table_scopes": scopes}


def _create(page: Page, holder: Resource, form: FormData) -> Response:
    draft = _Draft(
        name=form.text("name"),
        username=form.text("username"),
        expires_at=form.text("expires_at"),
        scopes=form.values("scopes"),
    )
    # Every problem the form can tell at once, then the use case's word.
    errors = FormErrors()
    errors.check_name(draft.name, "Name")
    today = page.ctx.today()
    expires_at = errors.check_expiry(draft.expires_at, earliest=today, latest=None)
    errors.check_scopes(draft.scopes)
    if errors:
        return _render(page, holder, draft=draft, errors=errors, status=400)
    try:
        with page.savepoint():
            issued = deploy.create_deploy_token(
                page.ctx,
                project=holder.project,
                group=holder.group,
                name=draft.name,
                scopes=draft.scopes,
                expires_at=expires_at,
                username=draft.username or None,
            )
    except KeycrewError as exc:
        errors.refusal(exc)
        return _render(page, holder, draft=draft, errors=errors, status=status_of(exc))
    return page.redirect(
        _url(holder),
        Flash(
            "notice",
            "Your new deploy token has been created.",
            secret=issued.value,
            username=issued.token.username,
        ),
    )


def _revoke(page: Page, holder: Resource, token_id: str) -> Response:
    if not token_id.isascii() or not token_id.isdigit():
        raise NotFound("Deploy Token")
    token = deploy.find_deploy_token(page.ctx, int(token_id), project=holder.project, group=holder.group)
    if not deploy.revoke_deploy_token(page.ctx, token):
        return page.notice(_url(holder), f"The deploy token {token.name} was already revoked.")
    return page.notice(_url(holder), f"Revoked the deploy token {token.name}.")


@router.get("/groups/{full_path:path}" + SETTINGS)
def group_deploy_tokens(full_path: str, page: Page = page_dep()) -> Response:
    return _render(page, _group(page, full_path))


@router.post("/groups/{full_path:path}" + SETTINGS)
def create_group_deploy_token(
    full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _create(page, _group(page, full_path), form)


@router.post("/groups/{full_path:path}" + SETTINGS + "/{token_id}/revoke")
def revoke_group_deploy_token(full_path: str, token_id: str, page: Page = form_dep()) -> Response:
    return _revoke(page, _group(page, full_path), token_id)


@router.get("/{full_path:webpath}" + SETTINGS)
def project_deploy_tokens(full_path: str, page: Page = page_dep()) -> Response:
    return _render(page, _project(page, full_path))


@router.post("/{full_path:webpath}" + SETTINGS)
def create_project_deploy_token(
    full_path: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    return _create(page, _project(page, full_path), form)


@router.post("/{full_path:webpath}" + SETTINGS + "/{token_id}/revoke")
def revoke_project_deploy_token(full_path: str, token_id: str, page: Page = form_dep()) -> Response:
    return _revoke(page, _project(page, full_path), token_id)
