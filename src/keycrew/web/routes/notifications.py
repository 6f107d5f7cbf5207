"""Web UI: the signed-in person's notification settings (GitLab's /-/profile/notifications), the
page every e-mail's footer links to."""

from __future__ import annotations

from fastapi import APIRouter, Response

from keycrew.errors import KeycrewError
from keycrew.notifications.settings import Level, get_setting, update_setting
from keycrew.web.deps import FormData, Page, form_dep, form_dep_data, page_dep
from keycrew.web.errors import describe, status_of

router = APIRouter()

URL = "/-/profile/notifications"

# The global levels a person picks here, with what each means for keycrew's e-mail.
CHOICES: tuple[tuple[Level, str, str], ...] = (
    (Level.PARTICIPATING, "Participate", "E-mail about your own tokens and what you take part in."),
    (Level.WATCH, "Watch", "E-mail about everything you may be told about."),
    (Level.MENTION, "On mention", "E-mail only when you are mentioned, and about your tokens."),
    (
        Level.DISABLED,
        "Disabled",
        "No e-mail about expiring tokens, neither yours nor those of the projects and groups you "
        "maintain. Notices that a token of yours was created, rotated or revoked still come.",
    ),
)
_NAMES = {level.label for level, _label, _hint in CHOICES}


def _render(page: Page, *, error: str | None = None, status: int = 200) -> Response:
    page.require_user()
    return page.render(
        "profile/notifications.html",
        status=status,
        title="Notifications",
        setting=get_setting(page.ctx),
        choices=CHOICES,
        error=error,
    )


@router.get(URL)
def notifications(page: Page = page_dep()) -> Response:
    return _render(page)


@router.post(URL)
def update_notifications(page: Page = form_dep(), form: FormData = form_dep_data()) -> Response:
    page.require_user()
    level = form.text("level")
    if level not in _NAMES:
        return _render(page, error="Choose one of the levels below.", status=400)
    try:
        with page.savepoint():
            update_setting(page.ctx, level=level)
    except KeycrewError as exc:
        return _render(page, error=describe(exc), status=status_of(exc))
    return page.notice(URL, "Notification settings saved.")
