"""The Admin area's Outbox: the list (status tabs, search, pages), a message's headers and bodies,
"Retry now", and the banner of an instance without SMTP settings.

Headless Chromium as root; the checks a browser cannot make (a non-admin's 404s, a post without
its CSRF token, the HTML body's own headers) use requests against the same live server.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from keycrew.audit.models import AuditEvent
from keycrew.context import Actor
from keycrew.outbox.models import FAILED, PENDING, SENT, OutboxMessage
from keycrew.outbox.service import enqueue
from tests.browser.pages import csrf_of, session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, start_server, uid
from tests.support.mail import MailSink

PASSWORD = "a-long-password-1"
NOTE = "Your <b>tokens</b> & more"


def _message(server: LiveServer, to: str, *, status: str = FAILED, subject: str | None = None) -> int:
    """An outbox message to ``to``; a failed one (the worker leaves it alone) unless told otherwise."""
    with server.runtime.sessions() as db, db.begin():
        row = enqueue(
            server.runtime.ctx(db, Actor.system()),
            to_address=to,
            subject=subject or f"Outbox test {uid()}",
            template="test_email",
            context={"name": "Grace", "note": NOTE},
        )
        assert row is not None
        if status != PENDING:
            row.status = status
            row.attempts = 3
            row.last_error = "SMTPDataError: 421 Service not available"
        db.flush()
        return row.id


def _row(server: LiveServer, message_id: int) -> OutboxMessage:
    with server.runtime.sessions() as db:
        row = db.get(OutboxMessage, message_id)
        assert row is not None
        db.expunge(row)
        return row


def test_an_admin_reads_a_failed_message_and_retries_it(
    server: LiveServer, page: Page, smtp_sink: MailSink
) -> None:
    to = f"{uid('outbox')}@example.com"
    message_id = _message(server, to)
    row = _row(server, message_id)
    signed_in(page, "root", ROOT_PASSWORD)

    page.goto("/admin/outbox")
    expect(
        page.get_by_role("navigation", name="Admin area").get_by_role("link", name="Outbox")
    ).to_have_attribute("aria-current", "page")
    expect(page.locator("#smtp-not-configured")).to_have_count(0)  # this server has SMTP settings
    page.get_by_role("navigation", name="Message status").get_by_role(
        "link", name=re.compile(r"^Failed \d+$")
    ).click()
    page.get_by_label("Search by recipient or subject").fill(to)
    page.get_by_role("button", name="Search").click()
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(to)
    expect(rows.first).to_contain_text("Failed")
    assert page.evaluate(AUDIT) == []

    rows.first.get_by_role("link", name=row.subject).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(row.subject)
    expect(page.locator("#message-attempts")).to_contain_text("3 of at most")
    expect(page.locator("#message-last-error")).to_have_text("SMTPDataError: 421 Service not available")
    headers = page.locator("#message-headers")
    expect(headers).to_contain_text(f"keycrew <{server.runtime.settings.sender}>")
    expect(headers).to_contain_text(to)
    expect(headers).to_contain_text("auto-generated")
    expect(page.locator("#message-text")).to_contain_text("Hello Grace,\n\nThis is a test e-mail")
    expect(page.locator("#message-text")).to_contain_text(NOTE)  # plain text: as written
    frame = page.frame_locator("#message-html")
    expect(frame.get_by_text("Your <b>tokens</b> & more")).to_be_visible()  # HTML: escaped, shown as text
    expect(frame.get_by_role("link", name="Manage all notifications")).to_be_visible()
    assert page.locator("#message-html").get_attribute("sandbox") == ""
    assert page.evaluate(AUDIT) == []

    page.get_by_role("button", name="Retry now").click()
    expect(page.get_by_role("status").filter(has_text="The message will be sent now.")).to_be_visible()
    received = smtp_sink.wait_for(to=to, count=1)
    assert [m.subject for m in received] == [row.subject]
    deadline = time.monotonic() + 15  # the worker marks it just after the SMTP server accepted it
    while _row(server, message_id).status != SENT and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _row(server, message_id).status == SENT
    page.reload()
    expect(page.locator("#message-status")).to_have_text("Sent")
    expect(page.get_by_role("button", name="Retry now")).to_have_count(0)
    with server.runtime.sessions() as db:
        events = list(
            db.scalars(
                select(AuditEvent).where(
                    AuditEvent.event_name == "outbox_message.retried", AuditEvent.target_id == message_id
                )
            )
        )
    assert [(e.author_name, e.details.get("previous_status")) for e in events] == [("root", "failed")]


def test_the_outbox_is_for_admins_only(server: LiveServer, factory: Factory) -> None:
    message_id = _message(server, f"{uid('outbox')}@example.com")
    user = factory.user()
    http = session_for(server, user["username"], PASSWORD)
    for path in ("/admin/outbox", f"/admin/outbox/{message_id}", f"/admin/outbox/{message_id}/body.html"):
        assert http.get(f"{server.url}{path}", timeout=30).status_code == 404, path
    token = csrf_of(http.get(f"{server.url}/", timeout=30).text)
    response = http.post(
        f"{server.url}/admin/outbox/{message_id}/retry", data={"authenticity_token": token}, timeout=30
    )
    assert response.status_code == 404
    assert _row(server, message_id).status == FAILED


def test_retry_needs_the_csrf_token_and_a_sent_message_is_not_sent_again(server: LiveServer) -> None:
    failed_id = _message(server, f"{uid('outbox')}@example.com")
    sent_id = _message(server, f"{uid('outbox')}@example.com", status=SENT)
    http = session_for(server, "root", ROOT_PASSWORD)
    refused = http.post(f"{server.url}/admin/outbox/{failed_id}/retry", data={}, timeout=30)
    assert refused.status_code == 403
    assert _row(server, failed_id).status == FAILED
    page = http.get(f"{server.url}/admin/outbox/{sent_id}", timeout=30)
    assert page.status_code == 200
    assert "Retry now" not in page.text
    response = http.post(
        f"{server.url}/admin/outbox/{sent_id}/retry",
        data={"authenticity_token": csrf_of(page.text)},
        timeout=30,
    )
    assert response.status_code == 409
    assert "already been sent" in response.text
    assert _row(server, sent_id).status == SENT
    for path in (
        "/admin/outbox/nope",
        "/admin/outbox/999999999999",
        "/admin/outbox/2147483647",
        "/admin/outbox/0/body.html",
    ):
        assert http.get(f"{server.url}{path}", timeout=30).status_code == 404, path


def test_the_html_body_is_served_in_a_sandbox(server: LiveServer) -> None:
    message_id = _message(server, f"{uid('outbox')}@example.com")
    http = session_for(server, "root", ROOT_PASSWORD)
    response = http.get(f"{server.url}/admin/outbox/{message_id}/body.html", timeout=30)
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "sandbox" in policy
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert "Your &lt;b&gt;tokens&lt;/b&gt; &amp; more" in response.text


def test_the_outbox_list_is_paginated_and_searchable(server: LiveServer) -> None:
    tag = uid("page")
    for n in range(52):
        _message(server, f"{tag}-{n}@example.com", subject=f"Paged {tag} {n}")
    http = session_for(server, "root", ROOT_PASSWORD)
    first = http.get(f"{server.url}/admin/outbox", params={"search": tag}, timeout=30)
    assert first.status_code == 200
    assert first.text.count(f"Paged {tag} ") == 50
    assert "Showing 1\N{EN DASH}50 of 52" in first.text
    second = http.get(f"{server.url}/admin/outbox", params={"search": tag, "page": "2"}, timeout=30)
    assert second.text.count(f"Paged {tag} ") == 2
    pending = http.get(f"{server.url}/admin/outbox", params={"search": tag, "status": "pending"}, timeout=30)
    assert f"Paged {tag} " not in pending.text
    assert "No messages match" in pending.text


@pytest.fixture
def no_smtp(server: LiveServer, tmp_path: Path) -> Iterator[LiveServer]:
    """A server of the same backend without SMTP settings."""
    nodes = start_server(server.backend, tmp_path, smtp_host="")
    try:
        yield next(nodes)
    finally:
        nodes.close()


def test_without_smtp_messages_stay_in_the_outbox_with_a_banner(
    no_smtp: LiveServer, browser: Browser
) -> None:
    to = f"{uid('outbox')}@example.com"
    message_id = _message(no_smtp, to, status=PENDING)
    context = browser.new_context(base_url=no_smtp.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        signed_in(page, "root", ROOT_PASSWORD)
        page.goto("/admin/outbox")
        expect(page.locator("#smtp-not-configured")).to_contain_text(
            "Outgoing e-mail is not configured: messages stay here"
        )
        expect(page.locator("table tbody tr").filter(has_text=to)).to_contain_text("Pending")
        assert page.evaluate(AUDIT) == []
        expect(page.get_by_role("button", name="Retry all failed messages")).to_have_count(0)
        page.get_by_role("link", name="Outbox test").first.click()
        page.get_by_role("button", name="Retry now").click()
        expect(
            page.get_by_role("status").filter(has_text="once outgoing e-mail is configured")
        ).to_be_visible()
        # After an outage longer than the retries: every failed message again, in one go.
        failed = [_message(no_smtp, f"{uid('outbox')}@example.com") for _ in range(3)]
        page.goto("/admin/outbox")
        page.get_by_role("button", name="Retry all failed messages").click()
        page.get_by_role("dialog").get_by_role("button", name="Retry all").click()
        expect(
            page.get_by_role("status").filter(has_text="3 failed message(s) will be sent again.")
        ).to_be_visible()
        expect(page.get_by_role("button", name="Retry all failed messages")).to_have_count(0)
    finally:
        context.close()
    row = _row(no_smtp, message_id)
    assert (row.status, row.sent_at) == (PENDING, None)
    assert [(_row(no_smtp, i).status, _row(no_smtp, i).attempts) for i in failed] == [(PENDING, 0)] * 3
    assert requests.get(f"{no_smtp.url}/-/health", timeout=10).status_code == 200
