"""Web UI: entering and leaving Admin Mode (GitLab's /admin/session pages).

With the instance's Admin Mode on, an admin's session starts without admin powers; the password,
asked for again here, gives them for six hours or until the admin leaves Admin Mode or signs out.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from keycrew.errors import NotFound
from keycrew.identity.admin_mode import enter_admin_mode, in_admin_mode, leave_admin_mode
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.security import safe_redirect_target

router = APIRouter(prefix="/admin/session")


def _target(value: str | None) -> str:
    target = safe_redirect_target(value, "/admin/users")
    return "/admin/users" if target.startswith("/admin/session") else target


def _require_admin(page: Page) -> None:
    user = page.require_user()
    if not user.admin:
        raise NotFound("Page")


@router.get("/new")
def new_admin_session(redirect_to: str | None = None, page: Page = page_dep()) -> Response:
    _require_admin(page)
    back_to = _target(redirect_to)
    if page.ctx.actor.is_admin:
        return page.redirect(back_to)
    return page.render("admin/session_new.html", title="Enter Admin Mode", redirect_to=back_to, error=None)


@router.post("")
def create_admin_session(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    _require_admin(page)
    back_to = _target(form.optional("redirect_to"))
    if page.session is None:
        return page.redirect("/users/sign_in")
    refusal = enter_admin_mode(page.ctx, page.session, form.text("password"))
    if refusal is not None:
        # The failure is counted toward the lock: this response commits.
        return page.render(
            "admin/session_new.html", status=401, title="Enter Admin Mode", redirect_to=back_to, error=refusal
        )
    return page.notice(back_to, "Admin mode enabled")


@router.post("/destroy")
def destroy_admin_session(page: Page = form_dep()) -> Response:
    _require_admin(page)
    if page.session is not None and in_admin_mode(page.session, page.ctx.now()):
        leave_admin_mode(page.ctx, page.session)
    return page.notice("/", "Admin mode disabled")
