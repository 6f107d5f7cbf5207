"""Web UI: the Admin area's Outbox, every e-mail keycrew wrote (pending, sent, or given up on).

Admins read each message as it is (or was) sent: its headers, its plain-text body and its HTML
body (in a sandboxed frame that runs nothing and loads nothing), its attempts and last error,
and can send a pending or failed one now. Anyone else gets 404, as everywhere in the admin area.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from keycrew.db.base import MAX_INT
from keycrew.errors import KeycrewError, NotFound
from keycrew.mail.delivery import MAX_ATTEMPTS, Permanent, build_message
from keycrew.mail.outbox_admin import (
    STATUSES,
    OutboxFilter,
    counts_by_status,
    find_message,
    messages_query,
    retry_failed,
    retry_now,
)
from keycrew.mail.render import RenderError, Site, render
from keycrew.outbox.models import FAILED, OutboxMessage
from keycrew.web.deps import Page, form_dep, page_dep
from keycrew.web.errors import describe, status_of
from keycrew.web.routes.admin import PAGE_PARAM, _admin, _number, _paged
from keycrew.web.security import Flash

router = APIRouter(prefix="/admin/outbox")

TABS: tuple[tuple[str, str], ...] = (
    ("all", "All"),
    ("pending", "Pending"),
    ("sent", "Sent"),
    ("failed", "Failed"),
)
# The HTML body is shown in a frame of its own: nothing in it runs, loads or submits.
BODY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "SAMEORIGIN",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
        "base-uri 'none'; frame-ancestors 'self'; sandbox"
    ),
}


def _tab_url(tab: str, search: str) -> str:
    params = {k: v for k, v in {"status": "" if tab == "all" else tab, "search": search}.items() if v}
    return "/admin/outbox" + (f"?{urlencode(params)}" if params else "")


def _message_id(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12 or not 0 < int(raw) <= MAX_INT:
        raise NotFound("Message")
    return int(raw)


@router.get("")
def outbox(
    status: str | None = None,
    search: str | None = None,
    page_number: str | None = PAGE_PARAM,
    page: Page = page_dep(),
) -> Response:
    ctx = _admin(page)
    tab = status if status in STATUSES else "all"
    term = (search or "").strip()[:255]
    counts = counts_by_status(ctx, term or None)
    listing = _paged(
        ctx,
        messages_query(OutboxFilter(status=None if tab == "all" else tab, search=term or None)),
        _number(page_number),
        base="/admin/outbox",
        params={"status": "" if tab == "all" else tab, "search": term},
        total=counts[tab],
    )
    return page.render(
        "admin/outbox.html",
        title="Outbox",
        tabs=[(key, label, counts[key], _tab_url(key, term)) for key, label in TABS],
        tab=tab,
        tab_label=dict(TABS)[tab],
        search=term,
        listing=listing,
        smtp_configured=bool(page.runtime.settings.smtp_host),
        failed_count=(counts_by_status(ctx) if term else counts)[FAILED],
    )


def _show(page: Page, message: OutboxMessage, *, status: int = 200, error: str | None = None) -> Response:
    settings = page.runtime.settings
    site = Site.of(settings)
    headers: list[tuple[str, str]] = []
    text = None
    problem = None
    try:
        built = build_message(message, settings, site, message.sent_at or message.created_at)
        headers = [(k, str(v)) for k, v in built.items() if k.lower() not in ("content-type", "mime-version")]
        text = render(message, site).text
    except (Permanent, RenderError) as exc:
        problem = str(exc)
    return page.render(
        "admin/outbox_message.html",
        status=status,
        title=message.subject,
        message=message,
        headers=headers,
        text=text,
        problem=problem,
        max_attempts=MAX_ATTEMPTS,
        smtp_configured=bool(settings.smtp_host),
        error=error,
    )


@router.post("/retry_failed")
def retry_failed_messages(page: Page = form_dep()) -> Response:
    ctx = _admin(page)
    count = retry_failed(ctx)
    notice = f"{count} failed message(s) will be sent again." if count else "There are no failed messages."
    return page.redirect(
        "/admin/outbox?status=pending" if count else "/admin/outbox", Flash("notice", notice)
    )


@router.get("/{message_id}")
def outbox_message(message_id: str, page: Page = page_dep()) -> Response:
    ctx = _admin(page)
    return _show(page, find_message(ctx, _message_id(message_id)))


@router.get("/{message_id}/body.html")
def outbox_message_html(message_id: str, page: Page = page_dep()) -> Response:
    """The HTML body alone, for the message page's sandboxed frame."""
    ctx = _admin(page)
    message = find_message(ctx, _message_id(message_id))
    try:
        html = render(message, Site.of(page.runtime.settings)).html
    except RenderError:
        html = (
            "<!DOCTYPE html><title>Not renderable</title><p>This message's template cannot be rendered.</p>"
        )
    return HTMLResponse(html, headers=BODY_HEADERS)


@router.post("/{message_id}/retry")
def retry_message(message_id: str, page: Page = form_dep()) -> Response:
    ctx = _admin(page)
    message = find_message(ctx, _message_id(message_id))
    try:
        with page.savepoint():
            retry_now(ctx, message)
    except KeycrewError as exc:
        ctx.db.refresh(message)
        return _show(page, message, status=status_of(exc), error=describe(exc))
    notice = (
        "The message will be sent now."
        if page.runtime.settings.smtp_host
        else ("The message is due now; it will be sent once outgoing e-mail is configured.")
    )
    return page.redirect(f"/admin/outbox/{message.id}", Flash("notice", notice))
