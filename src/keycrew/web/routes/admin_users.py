"""Web UI: the Admin area's New user, Edit and Reset password pages.

The same use cases as POST /users and PUT /users/:id (identity.users), with their rules and
messages; each error is shown next to its field. Admins only: to anyone else these pages do not
exist (404). Mounted before the admin router, whose ``/users/{username}`` would take "new".
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from keycrew.context import Ctx
from keycrew.errors import Conflict, Invalid, KeycrewError, MissingParameter, NotFound
from keycrew.identity.models import User
from keycrew.identity.queries import find_user_by_username
from keycrew.identity.users import NewUser, admin_create_user, update_user
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of

router = APIRouter(prefix="/admin")

NEW_FIELDS = ("name", "username", "email", "password")
EDIT_FIELDS = ("name", "email")
LABELS = {"name": "Name", "username": "Username", "email": "Email", "password": "Password"}


def _admin(page: Page) -> Ctx:
    """As the Admin area's other pages: Admin Mode first, then 404 for anyone not an admin."""
    page.require_admin_mode()
    if not page.ctx.actor.is_admin:
        raise NotFound("Page")
    return page.ctx


def _split(exc: KeycrewError, fields: tuple[str, ...]) -> tuple[dict[str, str], str | None]:
    """The error, in people's words, next to the field it is about; what concerns no field of the
    form is shown above it."""
    found: dict[str, str] = {}
    if isinstance(exc, Invalid) and exc.errors:
        rest: list[str] = []
        for name, messages in exc.errors.items():
            text = " ".join(f"{LABELS.get(name, name.capitalize())} {m}".rstrip(".") + "." for m in messages)
            if name in fields:
                found[name] = text
            else:
                rest.append(text)
        return found, " ".join(rest) or None
    if isinstance(exc, Conflict):
        for name in fields:
            if exc.message.startswith(LABELS[name] + " "):
                return {name: describe(exc)}, None
    if isinstance(exc, MissingParameter):
        for name in fields:
            if f"{name} is missing" in exc.message:
                found[name] = f"{LABELS[name]} is required."
        if found:
            return found, None
    return {}, describe(exc)


def _error_summary(errors: dict[str, str], general: str | None) -> str | None:
    if general:
        return general
    if errors:
        count = len(errors)
        return f"The form has {count} error{'s' if count != 1 else ''}: see below."
    return None


# -- new user ----------------------------------------------------------------------------------


def _show_new(
    page: Page,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    form: dict[str, Any] = {
        "name": "",
        "username": "",
        "email": "",
        "admin": False,
        "skip_confirmation": False,
    } | (values or {})
    form.pop("password", None)  # never sent back to the browser
    return page.render(
        "admin/user_new.html",
        status=status,
        title="New user",
        form=form,
        errors=errors or {},
        error=_error_summary(errors or {}, error),
    )


@router.get("/users/new")
def new_user(page: Page = page_dep()) -> Response:
    _admin(page)
    return _show_new(page)


@router.post("/users/new")
def create_user(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    ctx = _admin(page)
    values: dict[str, Any] = {key: form.text(key) for key in NEW_FIELDS}
    values["admin"] = form.flag("admin")
    values["skip_confirmation"] = form.flag("skip_confirmation")
    # Read as the sign-in form reads it (trimmed), so that the password set is the one that works.
    password = form.optional("password")
    try:
        with page.savepoint():
            user = admin_create_user(
                ctx,
                NewUser(
                    username=values["username"] or None,
                    email=values["email"] or None,
                    name=values["name"] or None,
                    password=password,
                    # Without a password the account gets a random one nobody knows: the person
                    # sets their own with Forgot password.
                    force_random_password=password is None,
                    skip_confirmation=values["skip_confirmation"],
                    admin=values["admin"],
                ),
            )
    except KeycrewError as exc:
        errors, general = _split(exc, NEW_FIELDS)
        return _show_new(page, status=status_of(exc), values=values, errors=errors, error=general)
    then = "" if password else " They have no password yet: they set one with Forgot password."
    return page.notice(f"/admin/users/{user.username}", f"@{user.username} has been created.{then}")


# -- edit and reset password -------------------------------------------------------------------


def _editable(ctx: Ctx, username: str) -> User:
    user = find_user_by_username(ctx, username)
    if user.is_internal:
        # Nobody can change internal users (update_user refuses too): no form to offer.
        raise NotFound("Page")
    return user


def _show_edit(
    page: Page,
    user: User,
    *,
    status: int = 200,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    error: str | None = None,
    password_error: str | None = None,
) -> Response:
    form: dict[str, Any] = {"name": user.name, "email": user.email, "admin": user.admin} | (values or {})
    return page.render(
        "admin/user_edit.html",
        status=status,
        title=f"Edit {user.name}",
        user=user,
        form=form,
        errors=errors or {},
        error=_error_summary(errors or {}, error),
        password_error=password_error,
        is_self=user.id == page.ctx.actor.user_id,
    )


@router.get("/users/{username}/edit")
def edit_user(username: str, page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    return _show_edit(page, _editable(ctx, username))


@router.post("/users/{username}/edit")
def save_user(username: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    ctx = _admin(page)
    user = _editable(ctx, username)
    values: dict[str, Any] = {key: form.text(key) for key in EDIT_FIELDS}
    values["admin"] = form.flag("admin")
    try:
        with page.savepoint():
            changed = update_user(ctx, user, dict(values))
    except KeycrewError as exc:
        errors, general = _split(exc, EDIT_FIELDS)
        fresh = _editable(ctx, username)
        return _show_edit(page, fresh, status=status_of(exc), values=values, errors=errors, error=general)
    return page.notice(f"/admin/users/{changed.username}", f"@{changed.username} has been updated.")


@router.post("/users/{username}/password")
def reset_password(username: str, page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    ctx = _admin(page)
    user = _editable(ctx, username)
    # Read as the sign-in form reads it (trimmed), so that the password set is the one that works.
    password = form.text("password")
    confirmation = form.text("password_confirmation")
    if not password:
        return _show_edit(page, user, status=400, password_error="Password is required.")
    if confirmation != password:
        return _show_edit(page, user, status=400, password_error="Password confirmation doesn't match.")
    try:
        with page.savepoint():
            update_user(ctx, user, {"password": password})
    except KeycrewError as exc:
        errors, general = _split(exc, ("password",))
        return _show_edit(
            page,
            _editable(ctx, username),
            status=status_of(exc),
            password_error=errors.get("password") or general,
        )
    if user.id == ctx.actor.user_id:
        # The use case ended every session of the user, this one too.
        return page.redirect("/users/sign_in")
    return page.notice(
        f"/admin/users/{user.username}",
        f"@{user.username} has a new password; they were signed out everywhere.",
    )
