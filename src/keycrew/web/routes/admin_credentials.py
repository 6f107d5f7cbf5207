"""Web UI: the Admin area's "Credentials" page (GitLab's Admin > Credentials): every personal,
service-account, project-bot and group-bot access token of the instance, with its owner or its
project or group; searched, filtered, sorted and paged in SQL (an instance can hold 100k tokens);
each active one revocable through the use case the API revokes it with.

Admins only (in Admin Mode when the instance asks for it), as the rest of the admin area; anyone
else is told the page does not exist (404).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from keycrew.access.resources import Resource
from keycrew.actions import resource_tokens as rt
from keycrew.context import Ctx
from keycrew.errors import Invalid, NotFound
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens import personal
from keycrew.tokens.inventory import KINDS, count_credentials, credentials_page, recent_ips
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.scopes import Scope
from keycrew.tokens.succession import successors
from keycrew.web import token_table
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe
from keycrew.web.security import Flash

router = APIRouter(prefix="/admin/credentials")

BASE = "/admin/credentials"
SCOPES = tuple(scope.value for scope in Scope)
TABLE = token_table.TableSpec(
    "credentials-heading",
    "Access tokens",
    "This instance has no access tokens.",
    columns=("owner",),
)


def _admin(page: Page) -> Ctx:
    page.require_admin_mode()
    if not page.ctx.actor.is_admin:
        raise NotFound("Page")
    return page.ctx


@router.get("")
def credentials(page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    today, now = ctx.today(), ctx.now()
    query = token_table.parse_query(page.request.query_params, scopes=SCOPES, kinds=True)
    filters = query.credential_filters()
    total = count_credentials(ctx.db, filters, today)
    pages = max(1, -(-total // token_table.PER_PAGE))
    number = min(query.page, pages)
    found = credentials_page(
        ctx.db, filters, today, limit=token_table.PER_PAGE, offset=(number - 1) * token_table.PER_PAGE
    )
    ips = recent_ips(ctx.db, (c.token.id for c in found), today)
    rows = [
        token_table.token_row(c.token, today=today, now=now, ips=ips.get(c.token.id, ()), extra=c)
        for c in found
    ]
    table = token_table.paged_table(
        TABLE, query, BASE, rows=rows, total=total, number=number, everything=query.filtered or total > 0
    )
    return page.render(
        "admin/credentials.html",
        title="Credentials",
        table=table,
        table_query=query,
        table_scopes=SCOPES,
        kinds=KINDS,
        back=query.url(BASE),
        successors=successors(ctx, [c.token for c in found if not c.token.is_active(today)]),
    )


def _back(form: FormData) -> str:
    """Where to return after a revoke: the list as it was (its filters and page), nowhere else."""
    back = form.text("back")
    return back if back == BASE or back.startswith(BASE + "?") else BASE


def _resource_of(ctx: Ctx, bot: User) -> Resource | None:
    found = (
        ctx.db.get(Project, bot.bot_resource_id)
        if bot.bot_resource_type == "Project"
        else ctx.db.get(Namespace, bot.bot_resource_id)
    )
    return None if found is None else Resource.of(found)


def _revoke(ctx: Ctx, token: PersonalAccessToken) -> None:
    """The API's revoke of this kind of token: a bot's through its project or group (the bot's
    cleanup rules apply), any other as the admin token API does."""
    owner = ctx.db.get(User, token.user_id)
    resource = _resource_of(ctx, owner) if owner is not None and owner.type is UserType.PROJECT_BOT else None
    if resource is not None:
        rt.revoke_resource_token(ctx, resource, token)
    else:
        personal.revoke_personal_token(ctx, token)


@router.post("/{token_id}/revoke")
def revoke_credential(token_id: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    ctx = _admin(page)
    back = _back(form)
    if not (token_id.isascii() and token_id.isdigit()) or len(token_id) > 10:
        raise NotFound("Personal Access Token")
    try:
        with page.savepoint():
            token = personal.find_personal_token(ctx, int(token_id))
            name = token.name
            _revoke(ctx, token)
    except Invalid as exc:  # revoked already (another tab, a second click): say so
        message = describe(exc) if exc.message else "This token has already been revoked."
        return page.redirect(back, Flash("alert", message))
    return page.notice(back, f"Revoked the access token “{name}”.")
