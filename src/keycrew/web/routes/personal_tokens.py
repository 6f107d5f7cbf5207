"""Web UI: the signed-in person's own Personal access tokens (create, show once, rotate, revoke)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Response

from keycrew.errors import Invalid, KeycrewError, NotFound
from keycrew.notifications.recipients import owner_recipients
from keycrew.notifications.settings import notification_email
from keycrew.tokens import personal
from keycrew.tokens.expiry import expiry_policy
from keycrew.tokens.lifecycle import RECENTLY_INACTIVE_DAYS, TokenFilters, filtered, recently_inactive
from keycrew.tokens.scopes import described
from keycrew.tokens.succession import rotation_choices
from keycrew.web import rotation, token_table
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of
from keycrew.web.security import Flash
from keycrew.web.token_forms import FormErrors

router = APIRouter()

URL = "/-/user_settings/personal_access_tokens"
ACTIVE = token_table.TableSpec(
    "active-personal-tokens-heading",
    "Active personal access tokens",
    "You have no active personal access tokens.",
)
INACTIVE = token_table.TableSpec(
    "inactive-personal-tokens-heading",
    "Inactive personal access tokens",
    f"No tokens were revoked or expired in the last {RECENTLY_INACTIVE_DAYS} days.",
    note=f"Tokens rotated, revoked or expired in the last {RECENTLY_INACTIVE_DAYS} days.",
    actions=False,
)


@dataclass
class _Draft:
    """What the create form holds: the defaults at first, the posted values after a refusal."""

    name: str = ""
    description: str = ""
    expires_at: str = ""
    scopes: list[str] = field(default_factory=list)


def _render(
    page: Page,
    *,
    draft: _Draft | None = None,
    error: str | None = None,
    status: int = 200,
    failed: rotation.FailedRotation | None = None,
    errors: FormErrors | None = None,
) -> Response:
    user = page.require_user()
    ctx = page.ctx
    policy = expiry_policy(ctx)
    return page.render(
        "tokens/personal_tokens.html",
        status=status,
        title="Personal access tokens",
        policy=policy,
        scope_choices=described(personal.own_token_scopes(user)),
        draft=draft or _Draft(expires_at=policy.default.isoformat()),
        error=error,
        errors=errors,
        form_open=bool(errors) or page.request.query_params.get("new") == "1",
        mail_to=notification_email(user) if owner_recipients(ctx, user) else None,
        **_token_tables(page),
        rotation_choices=rotation_choices(ctx),
        failed=failed,
    )


def _token_tables(page: Page) -> dict[str, Any]:
    """The token tables (active, recently inactive) as the query string asks, and their filters."""
    ctx = page.ctx
    today = ctx.today()
    mine = personal.own_tokens_query(ctx)
    active = list(ctx.db.scalars(filtered(mine, TokenFilters(state="active"), today)))
    inactive = list(ctx.db.scalars(recently_inactive(mine, today)))
    return token_table.holder_context(
        ctx, page.request.query_params, URL, active=(ACTIVE, active), inactive=(INACTIVE, inactive)
    )


def _token_id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit():
        raise NotFound("Personal Access Token")
    return int(raw)


@router.get(URL)
def personal_access_tokens(page: Page = page_dep()) -> Response:
    return _render(page)


@router.post(URL)
def create_personal_access_token(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    page.require_user()
    draft = _Draft(
        name=form.text("name"),
        description=form.text("description"),
        expires_at=form.text("expires_at"),
        scopes=form.values("scopes"),
    )
    # Every problem the form can tell at once, then the use case's word.
    errors = FormErrors()
    errors.check_name(draft.name)
    policy = expiry_policy(page.ctx)
    expires_at = errors.check_expiry(
        draft.expires_at, earliest=policy.earliest, latest=policy.latest, required=policy.required
    )
    errors.check_scopes(draft.scopes)
    if errors:
        return _render(page, draft=draft, errors=errors, status=400)
    try:
        with page.savepoint():
            issued = personal.create_signed_in_personal_access_token(
                page.ctx,
                name=draft.name,
                scopes=draft.scopes,
                expires_at=expires_at,
                description=draft.description or None,
            )
    except KeycrewError as exc:
        errors.refusal(exc)
        return _render(page, draft=draft, errors=errors, status=status_of(exc))
    return page.redirect(
        URL, Flash("notice", "Your new personal access token has been created.", secret=issued.value)
    )


@router.post(URL + "/{token_id}/rotate")
def rotate_personal_access_token(
    token_id: str, page: Page = form_dep(), form: FormData = form_dep_data()
) -> Response:
    page.require_user()
    raw = form.text("expires_at")
    expires_at, problem = rotation.checked_expiry(page.ctx, raw)
    if problem is not None:  # the date, told before asking: the form again, the reason next to it
        token = personal.find_own_token(page.ctx, _token_id(token_id))
        failed = rotation.failed(token, f"{URL}/{token.id}/rotate", raw, problem)
        return _render(page, status=400, failed=failed)
    try:
        with page.savepoint():
            issued = personal.rotate_own_token(page.ctx, _token_id(token_id), expires_at=expires_at)
    except Invalid as exc:
        if rotation.expiry_refusal(exc):  # the date: the form again, the reason next to it
            token = personal.find_own_token(page.ctx, _token_id(token_id))
            action = f"{URL}/{token.id}/rotate"
            return _render(page, status=status_of(exc), failed=rotation.failed(token, action, raw, exc))
        # no longer active (another tab, a second click): say so on the page
        return page.redirect(URL, Flash("alert", describe(exc)))
    message = rotation.rotated_message(
        f"The personal access token {issued.token.name} has been rotated.", issued.token
    )
    return page.redirect(URL, Flash("notice", message, secret=issued.value))


@router.post(URL + "/{token_id}/revoke")
def revoke_personal_access_token(token_id: str, page: Page = form_dep()) -> Response:
    page.require_user()
    try:
        with page.savepoint():
            token = personal.revoke_own_token(page.ctx, _token_id(token_id))
    except Invalid as exc:  # no longer active (another tab, a second click): say so on the page
        return page.redirect(URL, Flash("alert", describe(exc)))
    return page.notice(URL, f"Revoked the personal access token {token.name}.")
