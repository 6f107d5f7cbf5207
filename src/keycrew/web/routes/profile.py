"""Web UI: the signed-in person's profile (name, e-mail, password) and "Forgot password".

The rules are identity.password_reset's; each error is shown next to its field."""

from __future__ import annotations

from fastapi import APIRouter, Response

from keycrew.errors import Conflict, Invalid, KeycrewError
from keycrew.identity import password_reset
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of
from keycrew.web.security import Flash

router = APIRouter()

PROFILE = "/-/user_settings/profile"
PASSWORD = "/-/user_settings/password"
FORGOT = "/users/password/new"
EDIT = "/users/password/edit"
NEUTRAL = (
    "If your email address exists in our database, you will receive a password recovery link at your "
    "email address in a few minutes."
)


def field_errors(exc: KeycrewError, default_field: str) -> dict[str, str]:
    """Each field's error as a sentence, for the form to show next to the field."""
    if isinstance(exc, Invalid) and exc.errors:
        return {name: describe(Invalid("", {name: messages})) for name, messages in exc.errors.items()}
    if isinstance(exc, Conflict) and exc.message.startswith("Email"):
        return {"email": describe(exc)}
    return {default_field: describe(exc)}


def _render_profile(
    page: Page,
    *,
    name: str | None = None,
    email: str | None = None,
    profile_errors: dict[str, str] | None = None,
    password_errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    user = page.require_user()
    return page.render(
        "profile/profile.html",
        status=status,
        title="Profile",
        name=user.name if name is None else name,
        email=user.email if email is None else email,
        profile_errors=profile_errors or {},
        password_errors=password_errors or {},
        has_password=user.password_digest is not None,
        min_length=password_reset.MIN_LENGTH,
    )


@router.get(PROFILE)
def profile(page: Page = page_dep()) -> Response:
    return _render_profile(page)


@router.post(PROFILE)
def update_profile(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    page.require_user()
    name, email = form.text("name"), form.text("email")
    try:
        with page.savepoint():
            password_reset.update_profile(page.ctx, name=name, email=email)
    except KeycrewError as exc:
        return _render_profile(
            page, name=name, email=email, profile_errors=field_errors(exc, "name"), status=status_of(exc)
        )
    return page.notice(PROFILE, "Profile was successfully updated.")


@router.post(PASSWORD)
def change_password(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    page.require_user()
    try:
        with page.savepoint():
            ended = password_reset.change_password(
                page.ctx,
                page.session,
                current=form.text("current_password"),
                password=form.text("password"),
                confirmation=form.text("password_confirmation"),
            )
    except KeycrewError as exc:
        return _render_profile(page, password_errors=field_errors(exc, "password"), status=status_of(exc))
    others = "" if not ended else f" {ended} other session{'s' if ended != 1 else ''} signed out."
    return page.notice(PROFILE, "Password was successfully updated." + others)


# -- forgot password ----------------------------------------------------------------------------


@router.get(FORGOT)
def forgot_password(page: Page = page_dep()) -> Response:
    if page.user is not None:
        return page.redirect(PROFILE)
    return page.render("profile/forgot_password.html", title="Forgot your password?", email="")


@router.post(FORGOT)
def forgot_password_submit(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    password_reset.request_reset(page.ctx, form.text("email"))
    return page.notice("/users/sign_in", NEUTRAL)


def _render_edit(
    page: Page, token: str, *, errors: dict[str, str] | None = None, status: int = 200
) -> Response:
    return page.render(
        "profile/reset_password.html",
        status=status,
        title="Change your password",
        token=token,
        errors=errors or {},
        min_length=password_reset.MIN_LENGTH,
    )


@router.get(EDIT)
def reset_password_form(reset_password_token: str = "", page: Page = page_dep()) -> Response:
    if password_reset.find_reset(page.ctx, reset_password_token) is None:
        return page.redirect(FORGOT, _expired())
    return _render_edit(page, reset_password_token)


def _expired() -> Flash:
    return Flash("alert", password_reset.EXPIRED_MESSAGE + ". Request a new link.")


@router.post(EDIT)
def reset_password_submit(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    token = form.text("reset_password_token")
    try:
        with page.savepoint():
            password_reset.reset_password(
                page.ctx,
                token,
                password=form.text("password"),
                confirmation=form.text("password_confirmation"),
            )
    except password_reset.ResetExpired:
        return page.redirect(FORGOT, _expired())
    except KeycrewError as exc:
        return _render_edit(page, token, errors=field_errors(exc, "password"), status=status_of(exc))
    if page.session is not None:
        page.set_session_cookie(None)
    return page.notice("/users/sign_in", "Your password has been changed. Sign in with your new password.")
