"""Incoming Service Desk e-mail: the one entry point of every transport (SMTP receiver, IMAP poller).

``receive`` takes one raw RFC 5322 message and does everything in one transaction: a new
confidential issue by Support Bot (with the sender as external participant and Support Bot's
thank-you e-mail in the outbox), a note by Support Bot on an existing ticket, or nothing (an
auto-reply, a bounce, a loop, a message already received). It answers with a ``Receipt``; it
raises ``Rejected`` for mail that must never be retried (550/552 answers; an IMAP poller flags or
deletes it) and ``TemporaryFailure`` when the database cannot be reached (451, or leave the
message unread) so that the transport tries again later.

Routing, as GitLab's: the key of our address (``incoming+<key>@domain``) in the envelope
recipients, ``Delivered-To``, ``To``, ``Cc``, ``Envelope-To``, ``X-Envelope-To``,
``X-Original-To``: 32 hex digits are a thread's reply key; ``<slug>-<id>-issue-`` and
``<slug>-<project key>`` (and the legacy ``<full path>``) name a project, where a message whose
``In-Reply-To``/``References`` name one of the thread's messages is a reply too.
"""

from __future__ import annotations

import html
import logging
import re
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage, Message
from email.utils import getaddresses
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from keycrew.access.lookup import get_project
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.clock import Clock
from keycrew.config import Settings
from keycrew.context import Actor, Ctx, Instance
from keycrew.errors import KeycrewError
from keycrew.identity.internal import internal_user
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Project
from keycrew.records.issues import DESCRIPTION_MAX, TITLE_MAX, create_issue, reference
from keycrew.records.models import Issue
from keycrew.records.notes import BODY_MAX, create_note
from keycrew.servicedesk import mails
from keycrew.servicedesk.address import REPLY_KEY, full_path_slug, incoming_address, is_ours, key_of
from keycrew.servicedesk.models import (
    IssueEmailParticipant,
    ServiceDeskMessage,
    ServiceDeskSetting,
    ServiceDeskUpload,
)

log = logging.getLogger("keycrew.servicedesk")

ISSUE_CREATED = "issue_created"
NOTE_ADDED = "note_added"
IGNORED = "ignored"

# Headers that name the recipient, in the order GitLab's receiver tries them (after the envelope).
RECIPIENT_HEADERS = ("Delivered-To", "To", "Cc", "Envelope-To", "X-Envelope-To", "X-Original-To")
BULK_PRECEDENCE = ("bulk", "junk", "list", "auto_reply")
DAEMONS = ("mailer-daemon", "postmaster")
UPLOADS = "uploads"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


class TemporaryFailure(Exception):
    """The message could not be processed now (database unreachable): try again later."""


class Rejected(Exception):
    """The message is refused for good (too large, not addressed to us, unreadable).

    ``code`` is the SMTP reply code a receiver answers with (550, 552, 554)."""

    def __init__(self, reason: str, code: int = 550) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Receipt:
    """What ``receive`` did: ``outcome`` is ISSUE_CREATED, NOTE_ADDED or IGNORED (``reason`` says
    why); ``project_id``/``issue_iid``/``note_id`` name what was written."""

    outcome: str
    reason: str = ""
    project_id: int | None = None
    issue_iid: int | None = None
    note_id: int | None = None


def instance_of(settings: Settings) -> Instance:
    """The instance facts a transport without a Runtime builds from the settings alone."""
    return Instance(
        external_url=settings.external_url,
        host=settings.host_name,
        secret_key=settings.resolved_secret_key,
        configured_token_prefix=settings.instance_token_prefix,
        repositories_dir=(settings.data_dir / "repositories").resolve(),
        packages_dir=(settings.data_dir / "packages").resolve(),
    )


def uploads_dir(settings: Settings) -> Path:
    """Where the files that came with e-mail are kept: ``<data dir>/uploads/<project id>/<secret>/``."""
    return (settings.data_dir / UPLOADS).resolve()


def receive(
    sessions: sessionmaker[Session],
    clock: Clock,
    raw: bytes,
    *,
    settings: Settings,
    envelope_to: Sequence[str] = (),
    envelope_from: str | None = None,
    instance: Instance | None = None,
) -> Receipt:
    """Process one incoming message (see the module's docstring). ``envelope_to``/``envelope_from``:
    the SMTP envelope when the transport has one (an empty ``envelope_from`` is a bounce)."""
    if len(raw) > settings.incoming_email_max_size:
        raise Rejected(f"message too large (over {settings.incoming_email_max_size} bytes)", 552)
    message = message_from_bytes(raw, policy=email_policy.default)
    if not isinstance(message, EmailMessage):  # pragma: no cover (the default policy makes one)
        raise Rejected("unreadable message", 554)
    incoming = incoming_address(settings)
    if incoming is None:
        raise Rejected("incoming e-mail is not configured", 550)
    reason = loop_reason(message, settings, envelope_from)
    if reason is not None:
        log.info("incoming e-mail ignored: %s", reason)
        return Receipt(IGNORED, reason)
    keys = _keys(settings, message, envelope_to)
    if not keys:
        raise Rejected("no Service Desk address among the recipients", 550)
    written: list[Path] = []
    try:
        with sessions() as db, db.begin():
            ctx = Ctx(db, Actor(user=None, via="email"), instance or instance_of(settings), clock)
            return _process(ctx, settings, message, keys, written)
    except (OperationalError, InterfaceError, DisconnectionError, PoolTimeout) as exc:
        _remove(written)
        log.warning("incoming e-mail deferred: database unavailable (%s)", type(exc).__name__)
        raise TemporaryFailure("database unavailable") from exc
    except DBAPIError as exc:
        _remove(written)
        if exc.connection_invalidated:
            raise TemporaryFailure("database unavailable") from exc
        raise
    except BaseException:
        _remove(written)
        raise


def _remove(paths: Iterable[Path]) -> None:
    for path in paths:
        shutil.rmtree(path.parent, ignore_errors=True)


# -- what is ignored ----------------------------------------------------------------------------


def _addresses(message: Message, *names: str) -> list[str]:
    values: list[str] = []
    for name in names:
        values.extend(str(v) for v in message.get_all(name, []))
    return [addr for _, addr in getaddresses(values) if "@" in addr]


def sender_of(message: Message) -> str | None:
    """The ticket's external author: Reply-To, else From, else Sender (GitLab's order)."""
    for name in ("Reply-To", "From", "Sender"):
        found = _addresses(message, name)
        if found:
            return found[0].strip().lower()
    return None


def loop_reason(message: Message, settings: Settings, envelope_from: str | None = None) -> str | None:
    """Why this message must not be answered (an auto-reply, a bounce, our own mail), or None."""
    auto = str(message.get("Auto-Submitted", "")).strip().lower()
    if message.get("Auto-Submitted") is not None and auto != "no":
        return f"Auto-Submitted: {auto or 'empty'}"
    if message.get("X-Autoreply") is not None or message.get("X-Autorespond") is not None:
        return "auto-reply (X-Autoreply)"
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in BULK_PRECEDENCE:
        return f"Precedence: {precedence}"
    return_path = str(message.get("Return-Path", "")).strip()
    if envelope_from == "" or return_path == "<>":
        return "bounce (null sender)"
    if message.get_content_type() == "multipart/report":
        return "delivery report"
    senders = _addresses(message, "From", "Sender", "Reply-To")
    if envelope_from:
        senders.append(envelope_from)
    own = {settings.sender.lower()}
    for address in senders:
        local = address.rpartition("@")[0].lower()
        if local in DAEMONS:
            return f"bounce ({local})"
        if address.lower() in own or is_ours(settings, address):
            return "mail from this instance"
        if address.lower() == f"support@{settings.host_name}".lower():
            return "mail from this instance"
    return None


def _keys(settings: Settings, message: Message, envelope_to: Sequence[str]) -> list[str]:
    found: list[str] = []
    for address in [*envelope_to, *_addresses(message, *RECIPIENT_HEADERS)]:
        key = key_of(settings, address)
        if key is not None and key not in found:
            found.append(key)
    return found


def _message_ids(value: str | None) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", value or "")


# -- the database side --------------------------------------------------------------------------


def _project_for_key(ctx: Ctx, key: str) -> Project | None:
    match = re.fullmatch(r"(.+)-(\d{1,18})-issue-", key)
    if match:
        project = ctx.db.get(Project, int(match.group(2)))
        if project is not None and full_path_slug(project.full_path) == match.group(1).lower():
            return project
        return None
    slug, dash, project_key = key.rpartition("-")
    if dash and project_key:
        row = ctx.db.scalars(
            select(ServiceDeskSetting).where(ServiceDeskSetting.project_key == project_key.lower())
        ).first()
        if row is not None:
            project = ctx.db.get(Project, row.project_id)
            if project is not None and full_path_slug(project.full_path) == slug.lower():
                return project
    if "/" in key:  # GitLab's legacy incoming+group/project@
        return get_project(ctx, key)
    return None


def _enabled(ctx: Ctx, project: Project) -> bool:
    row = ctx.db.get(ServiceDeskSetting, project.id)
    return row is not None and row.enabled


def _thread_issue(ctx: Ctx, message: Message, project_id: int | None) -> Issue | None:
    """The issue whose thread this message answers (In-Reply-To, References), if any."""
    ids = [*_message_ids(message.get("In-Reply-To")), *_message_ids(message.get("References"))]
    if not ids:
        return None
    query = select(ServiceDeskMessage.issue_id).where(ServiceDeskMessage.message_id.in_(ids[:50]))
    if project_id is not None:
        query = query.where(ServiceDeskMessage.project_id == project_id)
    issue_id = ctx.db.scalars(query.order_by(ServiceDeskMessage.id.desc()).limit(1)).first()
    return None if issue_id is None else ctx.db.get(Issue, issue_id)


def _process(
    ctx: Ctx, settings: Settings, message: EmailMessage, keys: list[str], written: list[Path]
) -> Receipt:
    message_id = (
        _message_ids(message.get("Message-ID")) or [f"keycrew-{secrets.token_hex(16)}@{ctx.instance.host}"]
    )[0]
    sender = sender_of(message)
    if sender is None:
        return Receipt(IGNORED, "no sender address")
    for key in keys:
        if REPLY_KEY.match(key.lower()):
            issue_id = ctx.db.scalar(
                select(ServiceDeskMessage.issue_id).where(ServiceDeskMessage.reply_key == key.lower())
            )
            issue = None if issue_id is None else ctx.db.get(Issue, issue_id)
            if issue is not None:
                return _reply(ctx, settings, message, issue, sender, message_id, written)
            continue
        project = _project_for_key(ctx, key)
        if project is None or not _enabled(ctx, project):
            continue
        issue = _thread_issue(ctx, message, project.id)
        if issue is not None:
            return _reply(ctx, settings, message, issue, sender, message_id, written)
        return _new_ticket(ctx, settings, message, project, sender, message_id, written)
    raise Rejected("no such Service Desk address", 550)


def _already_received(ctx: Ctx, project_id: int, message_id: str) -> bool:
    return (
        ctx.db.scalar(
            select(ServiceDeskMessage.id).where(
                ServiceDeskMessage.project_id == project_id,
                ServiceDeskMessage.message_id == message_id,
                ServiceDeskMessage.direction == mails.RECEIVED,
            )
        )
        is not None
    )


def _support_bot_ctx(ctx: Ctx) -> Ctx:
    bot = internal_user(ctx, UserType.SUPPORT_BOT)
    # "email", never "system": Support Bot acts with no more power than its own, and no token.
    return ctx.as_actor(Actor(user=bot, via="email"))


def _received(ctx: Ctx, project: Project, issue: Issue, message_id: str) -> None:
    ctx.db.add(
        ServiceDeskMessage(
            project_id=project.id,
            issue_id=issue.id,
            direction=mails.RECEIVED,
            message_id=message_id[:998],
            reply_key=None,
            created_at=ctx.now(),
        )
    )


def _add_participant(ctx: Ctx, project: Project, issue: Issue, email: str) -> bool:
    exists = ctx.db.scalar(
        select(IssueEmailParticipant.id).where(
            IssueEmailParticipant.issue_id == issue.id, IssueEmailParticipant.email == email
        )
    )
    if exists is not None:
        return False
    ctx.db.add(IssueEmailParticipant(issue_id=issue.id, email=email[:255], created_at=ctx.now()))
    ctx.db.flush()
    record(
        ctx,
        Event.ISSUE_UPDATED,
        Entity("Project", project.id, project.full_path),
        target=Target("Issue", issue.id, reference(project, issue)),
        change="email_participants",
        added=email,
    )
    return True


def _new_ticket(
    ctx: Ctx,
    settings: Settings,
    message: EmailMessage,
    project: Project,
    sender: str,
    message_id: str,
    written: list[Path],
) -> Receipt:
    if _already_received(ctx, project.id, message_id):
        return Receipt(IGNORED, "already received", project_id=project.id)
    bot = _support_bot_ctx(ctx)
    subject = " ".join(str(message.get("Subject", "")).replace("\x00", "").split())
    title = (subject or f"Service Desk (from {sender})")[:TITLE_MAX]
    body = _body(message)
    # The issue first (its id names the uploads), then the description with the links.
    try:
        issue = create_issue(bot, project, title=title, description=body[:DESCRIPTION_MAX], confidential=True)
    except KeycrewError as exc:
        raise Rejected(f"the project does not accept issues ({exc})", 550) from exc
    links = _store_attachments(bot, settings, message, project, issue, written)
    if links:
        issue.description = (body + "\n\n" + "\n".join(links)).strip()[:DESCRIPTION_MAX]
        ctx.db.flush()
    _received(bot, project, issue, message_id)
    _add_participant(bot, project, issue, sender)
    mails.send_thank_you(bot, settings, project, issue, to=sender, in_reply_to=message_id)
    log.info("Service Desk: %s opened by e-mail", reference(project, issue))
    return Receipt(ISSUE_CREATED, project_id=project.id, issue_iid=issue.iid)


def _reply(
    ctx: Ctx,
    settings: Settings,
    message: EmailMessage,
    issue: Issue,
    sender: str,
    message_id: str,
    written: list[Path],
) -> Receipt:
    project = ctx.db.get(Project, issue.project_id)
    if project is None:  # pragma: no cover (cascade deletes the issue with its project)
        raise Rejected("no such Service Desk address", 550)
    if _already_received(ctx, project.id, message_id):
        return Receipt(IGNORED, "already received", project_id=project.id, issue_iid=issue.iid)
    bot = _support_bot_ctx(ctx)
    body = trim_reply(_body(message))
    links = _store_attachments(bot, settings, message, project, issue, written)
    text = "\n\n".join(part for part in (body, "\n".join(links)) if part)
    if not text.strip():
        return Receipt(IGNORED, "empty reply", project_id=project.id, issue_iid=issue.iid)
    try:
        note = create_note(bot, project, issue, body=text[:BODY_MAX])
    except KeycrewError as exc:
        raise Rejected(f"the issue does not accept notes ({exc})", 550) from exc
    _received(bot, project, issue, message_id)
    if _add_participant(bot, project, issue, sender):
        mails.send_new_participant(
            bot, settings, project, issue, to=sender, in_reply_to=mails.first_message_id(bot, issue)
        )
    return Receipt(NOTE_ADDED, project_id=project.id, issue_iid=issue.iid, note_id=note.id)


# -- the message's contents ---------------------------------------------------------------------


def _body(message: EmailMessage) -> str:
    """The text part (preferred) or the HTML part as text; "" when there is none."""
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    text = str(content)
    if part.get_content_type() == "text/html":
        text = html_to_text(text)
    return text.replace("\r\n", "\n").replace("\x00", "").strip()


def html_to_text(value: str) -> str:
    value = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", "", value)
    value = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>|</li\s*>|</h\d\s*>", "\n", value)
    value = re.sub(r"<[^>]*>", "", value)
    return re.sub(r"\n{3,}", "\n\n", html.unescape(value))


_QUOTE_HEADER = re.compile(r"^\s*On .{1,300} wrote:\s*$")


def trim_reply(text: str) -> str:
    """The new text of a reply: quoted lines (``>``) and the "On ... wrote:" line above them cut."""
    lines = text.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        if line.lstrip().startswith(">"):
            continue
        rest = [ln for ln in lines[index + 1 :] if ln.strip()]
        if _QUOTE_HEADER.match(line) and rest and all(ln.lstrip().startswith(">") for ln in rest):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def safe_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", base).strip("._")[:200]
    return cleaned or "attachment"


def _store_attachments(
    ctx: Ctx, settings: Settings, message: EmailMessage, project: Project, issue: Issue, written: list[Path]
) -> list[str]:
    """Keep each attached file and return its markdown link (``[name](/uploads/<secret>/<name>)``,
    an image as ``![name](...)``)."""
    links: list[str] = []
    for part in message.iter_attachments():
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        if not filename or not isinstance(payload, bytes):
            continue
        name = safe_filename(filename)
        secret = secrets.token_hex(16)
        folder = uploads_dir(settings) / str(project.id) / secret
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / name
        path.write_bytes(payload)
        written.append(path)
        content_type = part.get_content_type()
        ctx.db.add(
            ServiceDeskUpload(
                project_id=project.id,
                issue_id=issue.id,
                secret=secret,
                filename=name,
                content_type=content_type[:255],
                size=len(payload),
                created_at=ctx.now(),
            )
        )
        link = f"[{name}](/uploads/{secret}/{name})"
        links.append(("!" + link) if content_type in IMAGE_TYPES else link)
    return links


def upload_path(settings: Settings, upload: ServiceDeskUpload) -> Path:
    return uploads_dir(settings) / str(upload.project_id) / upload.secret / upload.filename


def find_upload(ctx: Ctx, project: Project, secret: str, filename: str) -> ServiceDeskUpload | None:
    """The upload of ``project`` at ``/uploads/<secret>/<filename>`` (the caller checks that the
    actor may read its issue)."""
    if not re.fullmatch(r"[0-9a-f]{32}", secret):
        return None
    return ctx.db.scalars(
        select(ServiceDeskUpload).where(
            ServiceDeskUpload.project_id == project.id,
            ServiceDeskUpload.secret == secret,
            ServiceDeskUpload.filename == filename,
        )
    ).first()
