"""Service Desk through the built-in SMTP receiver: a real SMTP client (smtplib) talks to the
receiver of a live server, whose Support Bot answers through the session's SMTP sink.

On PostgreSQL the server reaches its database through a TCP proxy that the outage test cuts; on
SQLite the outage is an exclusive lock the test holds while it sends.
"""

from __future__ import annotations

import re
import smtplib
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import make_url

from tests.functional.test_db_outage import Proxy
from tests.support.backends import BACKENDS
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, PgDatabase, free_port, start_server, uid
from tests.support.mail import MailSink, Received
from tests.support.web import signed_in

DOMAIN = "desk.example.com"
INCOMING = "incoming+%{key}@" + DOMAIN
MAX_SIZE = 64 * 1024
# Seconds SQLite waits for a lock (KEYCREW_DB_BUSY_TIMEOUT) before the receiver answers 451.
BUSY_TIMEOUT = 3.0
PASSWORD = "a-long-password-1"


@dataclass
class Desk:
    server: LiveServer
    sink: MailSink
    smtp_port: int
    proxy: Proxy | None


@pytest.fixture(scope="module", params=BACKENDS)
def desk(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, smtp_sink: MailSink
) -> Iterator[Desk]:
    backend = request.param
    smtp_port = free_port()
    settings: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_sink.port,
        "incoming_email_address": INCOMING,
        "incoming_smtp_port": smtp_port,
        "incoming_email_max_size": MAX_SIZE,
        # The SQLite outage test waits it out: seconds, not the default 30.
        "db_busy_timeout": BUSY_TIMEOUT,
    }
    tmp = Path(tmp_path_factory.mktemp(f"desk-{backend}"))
    pg: PgDatabase | None = None
    proxy: Proxy | None = None
    url: str | None = None
    if backend == "postgresql":
        pg = PgDatabase.create()
        parsed = make_url(pg.url)
        proxy = Proxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    nodes = start_server(backend, tmp, url=url, **settings)
    try:
        yield Desk(next(nodes), smtp_sink, smtp_port, proxy)
    finally:
        nodes.close()
        if proxy is not None:
            proxy.close()
        if pg is not None:
            pg.drop()


# -- helpers ----------------------------------------------------------------------------------


def _service_desk(desk: Desk) -> tuple[dict[str, Any], str]:
    """A new project with Service Desk on (through PUT /projects/:id), and its address."""
    server = desk.server
    project = server.root("POST", "/projects", json={"name": uid("desk")})
    assert project.status_code == 201, project.text
    assert project.json()["service_desk_enabled"] is False
    assert project.json()["service_desk_address"] is None
    updated = server.root("PUT", f"/projects/{project.json()['id']}", json={"service_desk_enabled": True})
    assert updated.status_code == 200, updated.text
    return updated.json(), updated.json()["service_desk_address"]


def _mail(
    to: str,
    subject: str,
    body: str,
    *,
    sender: str | None = None,
    attachments: tuple[tuple[str, bytes, str], ...] = (),
    **headers: str,
) -> tuple[EmailMessage, str]:
    message = EmailMessage()
    message["From"] = f"Outsider <{sender or uid('o') + '@customer.example.org'}>"
    message["To"] = to
    message["Subject"] = subject
    message_id = make_msgid(domain="customer.example.org")
    message["Message-ID"] = message_id
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    for filename, data, content_type in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message, message_id


def _send(desk: Desk, message: EmailMessage, *, mail_from: str | None = None, to: str | None = None) -> None:
    """Deliver ``message`` to the receiver (raises smtplib's errors on a refusal)."""
    envelope_from = mail_from if mail_from is not None else str(message["From"]).split("<")[-1].rstrip(">")
    with smtplib.SMTP("127.0.0.1", desk.smtp_port, timeout=120) as smtp:
        smtp.send_message(message, from_addr=envelope_from, to_addrs=[to or str(message["To"])])


def _sender(message: EmailMessage) -> str:
    return str(message["From"]).split("<")[-1].rstrip(">")


def _until(what: str, probe: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.1)


def _issues(desk: Desk, project_id: int) -> list[dict[str, Any]]:
    response = desk.server.root("GET", f"/projects/{project_id}/issues")
    assert response.status_code == 200, response.text
    return list(response.json())


def _notes(desk: Desk, project_id: int, iid: int) -> list[dict[str, Any]]:
    response = desk.server.root("GET", f"/projects/{project_id}/issues/{iid}/notes?sort=asc")
    assert response.status_code == 200, response.text
    return list(response.json())


def _open_ticket(desk: Desk) -> tuple[dict[str, Any], str, EmailMessage, str, Received]:
    """A project with a ticket opened by e-mail: project, address, the e-mail, its id, the thank-you."""
    project, address = _service_desk(desk)
    message, message_id = _mail(address, f"Printer on fire {uid()}", "It smokes since this morning.")
    _send(desk, message)
    thanks = desk.sink.wait_for(to=_sender(message))[0]
    return project, address, message, message_id, thanks


# -- tests ------------------------------------------------------------------------------------


def test_the_project_entity_shows_the_address_in_gitlabs_form(desk: Desk) -> None:
    project, address = _service_desk(desk)
    slug = re.sub(r"[^a-z0-9]", "-", project["path_with_namespace"].lower())
    assert address == f"incoming+{slug}-{project['id']}-issue-@{DOMAIN}"
    fetched = desk.server.gl().projects.get(project["id"])
    assert fetched.service_desk_enabled is True
    assert fetched.service_desk_address == address
    listed = desk.server.root("GET", "/projects", params={"search": project["path"]}).json()
    assert [(p["service_desk_enabled"], p["service_desk_address"]) for p in listed] == [(True, address)]
    factory = Factory(desk.server)
    for level, sees in ((10, None), (20, address)):
        member, token = factory.user_with_token()
        factory.member("projects", project["id"], member["id"], level)
        seen = desk.server.request("GET", f"/projects/{project['id']}", token=token).json()
        assert (seen["service_desk_enabled"], seen["service_desk_address"]) == (True, sees), level
        refused = desk.server.request(
            "PUT", f"/projects/{project['id']}", token=token, json={"service_desk_enabled": False}
        )
        assert refused.status_code == 403, refused.text
    off = desk.server.root("PUT", f"/projects/{project['id']}", json={"service_desk_enabled": "false"})
    assert off.status_code == 200, off.text
    assert off.json()["service_desk_enabled"] is False
    assert off.json()["service_desk_address"] is None


def test_an_email_opens_a_confidential_issue_by_support_bot_and_thanks_the_sender(desk: Desk) -> None:
    project, _address, message, message_id, thanks = _open_ticket(desk)
    issues = _issues(desk, project["id"])
    assert len(issues) == 1
    issue = issues[0]
    assert issue["title"] == message["Subject"]
    assert issue["confidential"] is True
    assert issue["issue_type"] == "issue"
    assert issue["author"]["username"] == "support-bot"
    assert "It smokes since this morning." in issue["description"]

    assert thanks.subject == f"Re: {message['Subject']} (#{issue['iid']})"
    assert f"#{issue['iid']}" in thanks.body()
    assert re.fullmatch(r"<reply-[0-9a-f]{32}@127\.0\.0\.1>", str(thanks.message["Message-ID"]))
    assert re.fullmatch(rf"incoming\+[0-9a-f]{{32}}@{re.escape(DOMAIN)}", str(thanks.message["Reply-To"]))
    assert str(thanks.message["In-Reply-To"]) == message_id
    assert thanks.message["Auto-Submitted"] == "auto-generated"
    sender = desk.server.runtime.settings.sender
    assert str(thanks.message["From"]) == f"GitLab Support Bot <{sender}>"

    # Audited under Support Bot, and attributed to it in the project's events.
    bot = desk.server.root("GET", "/users", params={"username": "support-bot"}).json()[0]
    audit = desk.server.root("GET", f"/projects/{project['id']}/audit_events").json()
    created = [e for e in audit if e["details"].get("custom_message", "").startswith("Created issue")]
    assert [e["author_id"] for e in created] == [bot["id"]]
    events = desk.server.root("GET", f"/projects/{project['id']}/events").json()
    assert any(e["author_id"] == bot["id"] and e["target_type"] == "Issue" for e in events), events


def test_replies_through_the_reply_address_and_in_reply_to_add_notes_by_support_bot(desk: Desk) -> None:
    project, address, first, _first_id, thanks = _open_ticket(desk)
    iid = _issues(desk, project["id"])[0]["iid"]
    reply_to = str(thanks.message["Reply-To"])

    reply, _ = _mail(
        reply_to,
        f"Re: {first['Subject']}",
        "It stopped smoking.\n\nOn Monday, Support wrote:\n> Thank you for your support request!",
        sender=_sender(first),
    )
    _send(desk, reply)
    threaded, _ = _mail(
        address,
        f"Re: {first['Subject']}",
        "Now it is on fire again.",
        sender=_sender(first),
        In_Reply_To=str(thanks.message["Message-ID"]),
        References=str(thanks.message["Message-ID"]),
    )
    _send(desk, threaded)

    notes = _notes(desk, project["id"], iid)
    assert [n["body"] for n in notes] == ["It stopped smoking.", "Now it is on fire again."]
    assert {n["author"]["username"] for n in notes} == {"support-bot"}
    assert len(_issues(desk, project["id"])) == 1  # replies open no new ticket


def test_a_public_note_is_emailed_to_the_external_participant_an_internal_one_is_not(desk: Desk) -> None:
    project, _address, first, first_id, _thanks = _open_ticket(desk)
    iid = _issues(desk, project["id"])[0]["iid"]
    secret = f"internal only {uid()}"
    public = f"Have you tried turning it off? {uid()}"
    path = f"/projects/{project['id']}/issues/{iid}/notes"
    assert desk.server.root("POST", path, json={"body": secret, "internal": True}).status_code == 201
    assert desk.server.root("POST", path, json={"body": public}).status_code == 201

    received = desk.sink.wait_for(to=_sender(first), count=2)
    note_mail = received[1]
    assert public in note_mail.body()
    assert note_mail.subject == f"{first['Subject']} (#{iid})"
    assert str(note_mail.message["In-Reply-To"]) == first_id
    assert all(secret not in m.body() for m in desk.sink.messages(_sender(first)))


def test_auto_replies_bounces_and_our_own_mail_are_ignored(desk: Desk) -> None:
    project, address = _service_desk(desk)
    settings = desk.server.runtime.settings
    for headers in ({"Auto_Submitted": "auto-replied"}, {"Precedence": "bulk"}, {"X_Autoreply": "yes"}):
        message, _ = _mail(address, f"Out of office {uid()}", "I am away.", **headers)
        _send(desk, message)  # accepted (250), and dropped
    own, _ = _mail(address, f"Loop {uid()}", "Our own mail.", sender=settings.sender)
    _send(desk, own)
    bounce, _ = _mail(
        address, f"Undeliverable {uid()}", "Delivery failed.", sender="mailer-daemon@example.org"
    )
    _send(desk, bounce, mail_from="")
    assert _issues(desk, project["id"]) == []
    normal, _ = _mail(address, f"A real question {uid()}", "Hello?")
    _send(desk, normal)
    assert [i["title"] for i in _issues(desk, project["id"])] == [normal["Subject"]]


def test_unknown_addresses_get_550_and_oversized_mail_552(desk: Desk) -> None:
    project, address = _service_desk(desk)
    with smtplib.SMTP("127.0.0.1", desk.smtp_port, timeout=60) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("size")
        assert int(smtp.esmtp_features["size"]) == MAX_SIZE

    message, _ = _mail("someone@elsewhere.example.net", "Hello", "Not for us.")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(desk, message)
    assert next(iter(refused.value.recipients.values()))[0] == 550

    nowhere = f"incoming+nowhere-999999-issue-@{DOMAIN}"
    message, _ = _mail(nowhere, "Hello", "No such project.")
    with pytest.raises(smtplib.SMTPDataError) as unknown:
        _send(desk, message)
    assert unknown.value.smtp_code == 550

    big, _ = _mail(address, "Huge", "x" * (MAX_SIZE + 1000))
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as too_big:
        _send(desk, big)
    assert too_big.value.smtp_code == 552
    assert _issues(desk, project["id"]) == []


def test_the_database_down_answers_451_and_the_retry_succeeds(desk: Desk) -> None:
    project, address = _service_desk(desk)
    message, _ = _mail(address, f"While the database was away {uid()}", "Please keep this one.")
    if desk.proxy is not None:
        desk.proxy.cut()
        try:
            with pytest.raises(smtplib.SMTPDataError) as deferred:
                _send(desk, message)
        finally:
            desk.proxy.restore()
    else:
        database = make_url(desk.server.runtime.settings.sqlalchemy_url).database
        assert database
        holder = sqlite3.connect(database, timeout=30, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            # The receiver waits out SQLite's busy timeout (BUSY_TIMEOUT), then answers 451.
            with pytest.raises(smtplib.SMTPDataError) as deferred:
                _send(desk, message)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    assert deferred.value.smtp_code == 451
    assert _issues(desk, project["id"]) == []

    # The sending MTA tries again (a pooled connection may still be a dead one at first).
    codes: list[int] = []

    def retry() -> bool:
        try:
            _send(desk, message)
        except smtplib.SMTPDataError as exc:
            codes.append(exc.smtp_code)
            return False
        return True

    _until("accepted retry", retry)
    assert set(codes) <= {451}, codes
    assert [i["title"] for i in _issues(desk, project["id"])] == [message["Subject"]]


def test_attachments_are_stored_linked_and_served_to_members_only(desk: Desk) -> None:
    server = desk.server
    project, address = _service_desk(desk)
    data = b"line one\nline two\n"
    message, _ = _mail(
        address, f"Logs {uid()}", "See the log.", attachments=(("crash log.txt", data, "text/plain"),)
    )
    _send(desk, message)
    issue = _issues(desk, project["id"])[0]
    match = re.search(r"\[crash_log\.txt\]\((/uploads/[0-9a-f]{32}/crash_log\.txt)\)", issue["description"])
    assert match, issue["description"]
    url = f"{server.url}/{project['path_with_namespace']}{match.group(1)}"

    factory = Factory(server)
    member = factory.user(password=PASSWORD)
    factory.member("projects", project["id"], member["id"], 20)
    outsider = factory.user(password=PASSWORD)
    member_http, _ = signed_in(server.url, member["username"], PASSWORD)
    outsider_http, _ = signed_in(server.url, outsider["username"], PASSWORD)

    got = member_http.get(url, timeout=30)
    assert got.status_code == 200
    assert got.content == data
    assert "attachment" in got.headers["content-disposition"]
    assert outsider_http.get(url, timeout=30).status_code == 404
    assert requests.get(url, timeout=30).status_code in (302, 303, 401, 404)


def test_support_bot_gets_no_token_and_cannot_be_impersonated(desk: Desk) -> None:
    _open_ticket(desk)  # Support Bot exists once a ticket was opened
    server = desk.server
    bot = server.root("GET", "/users", params={"username": "support-bot"}).json()[0]
    assert bot["bot"] is True
    body = {"name": "nope", "scopes": ["api"]}
    for kind in ("personal_access_tokens", "impersonation_tokens"):
        refused = server.root("POST", f"/users/{bot['id']}/{kind}", json=body)
        assert refused.status_code == 403, (kind, refused.text)
    sudo = server.root("GET", "/user", headers={"Sudo": "support-bot"})
    assert sudo.status_code == 403, sudo.text


def test_a_project_with_tickets_can_be_deleted_and_its_uploads_go_with_it(desk: Desk) -> None:
    project, address = _service_desk(desk)
    message, _ = _mail(address, f"Logs {uid()}", "Attached.", attachments=(("a.txt", b"x\n", "text/plain"),))
    _send(desk, message)
    assert _issues(desk, project["id"])
    folder = desk.server.runtime.settings.data_dir / "uploads" / str(project["id"])
    assert [p.name for p in folder.glob("*/*")] == ["a.txt"]
    deleted = desk.server.root("DELETE", f"/projects/{project['id']}")
    assert deleted.status_code == 202, deleted.text
    assert desk.server.root("GET", f"/projects/{project['id']}").status_code == 404
    assert not folder.exists()


def test_the_projects_own_thank_you_text_is_sent_with_its_placeholders(desk: Desk) -> None:
    server = desk.server
    project, address = _service_desk(desk)
    http, csrf = signed_in(server.url, "root", ROOT_PASSWORD)
    saved = http.post(
        f"{server.url}/{project['path_with_namespace']}/-/service_desk",
        data={
            "authenticity_token": csrf,
            "service_desk_enabled": "true",
            "thank_you_template": "Got it: %{ISSUE_PATH} (%{ISSUE_TITLE}).",
        },
        timeout=30,
        allow_redirects=False,
    )
    assert saved.status_code == 303, saved.text
    message, _ = _mail(address, f"Custom {uid()}", "Hello.")
    _send(desk, message)
    thanks = desk.sink.wait_for(to=_sender(message))[0]
    assert f"Got it: {project['path_with_namespace']}#1 ({message['Subject']})." in thanks.body()
