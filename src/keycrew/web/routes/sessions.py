"""Web UI: signing in and out."""

from __future__ import annotations

from fastapi import APIRouter, Response

from keycrew.identity.sign_in import sign_in, sign_out
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.security import Flash, safe_redirect_target

router = APIRouter()


@router.get("/users/sign_in")
def sign_in_form(redirect_to: str | None = None, page: Page = page_dep()) -> Response:
    if page.user is not None:
        return page.redirect(safe_redirect_target(redirect_to))
    return page.render(
        "sign_in.html", title="Sign in", login="", redirect_to=safe_redirect_target(redirect_to), error=None
    )


@router.post("/users/sign_in")
def sign_in_submit(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    login = form.text("login")
    back_to = safe_redirect_target(form.optional("redirect_to"))
    result = sign_in(
        page.ctx, login, form.text("password"), user_agent=page.request.headers.get("user-agent")
    )
    if result.issued is None:
        # The attempt is counted (and may lock the account): this response commits.
        return page.render(
            "sign_in.html",
            status=401,
            title="Sign in",
            login=login,
            redirect_to=back_to,
            error=result.refusal,
        )
    page.set_session_cookie(result.issued.value)
    return page.redirect(back_to)


@router.post("/users/sign_out")
def sign_out_submit(page: Page = form_dep()) -> Response:
    if page.session is not None:
        sign_out(page.ctx, page.session)
    page.set_session_cookie(None)
    return page.redirect("/users/sign_in", Flash("notice", "You have signed out."))
