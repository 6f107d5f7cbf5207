"""Web UI: the Admin area's "Token hygiene" page: the token-hygiene report's findings grouped by
check, with counts, links to each token's owner, and a CSV download.

Admins only (in Admin Mode when the instance asks for it), as the rest of the admin area; anyone
else is told the page does not exist (404). Read-only.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from keycrew.automation.hygiene import CHECKS, Finding, counts, to_csv, token_hygiene
from keycrew.context import Ctx
from keycrew.errors import NotFound
from keycrew.web.deps import Page, page_dep

router = APIRouter(prefix="/admin/token_hygiene")


def _admin(page: Page) -> Ctx:
    page.require_admin_mode()
    if not page.ctx.actor.is_admin:
        raise NotFound("Page")
    return page.ctx


def owner_href(finding: Finding) -> str | None:
    """Where a finding's token is managed: its owner's admin page, or for a deploy token its
    project's or group's deploy token settings."""
    if finding.token_kind == "deploy" and finding.resource:
        prefix = "/groups/" if finding.resource_kind == "group" else "/"
        return f"{prefix}{finding.resource}/-/settings/deploy_tokens"
    if finding.owner_username:
        return f"/admin/users/{finding.owner_username}"
    return None


def resource_href(finding: Finding) -> str | None:
    if not finding.resource:
        return None
    prefix = "/groups/" if finding.resource_kind == "group" else "/"
    return f"{prefix}{finding.resource}/-/settings/access_tokens"


@router.get("")
def hygiene_page(page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    findings = token_hygiene(ctx)
    groups = [(check, [f for f in findings if f.check == check.id]) for check in CHECKS.values()]
    return page.render(
        "admin/token_hygiene.html",
        title="Token hygiene",
        groups=groups,
        counts=counts(findings),
        total=len(findings),
        owner_href=owner_href,
        resource_href=resource_href,
    )


@router.get(".csv")
def hygiene_csv(page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    body = to_csv(token_hygiene(ctx))
    filename = f"token-hygiene-{ctx.today().isoformat()}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )
