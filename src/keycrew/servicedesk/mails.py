"""Support Bot's e-mail: the thank-you to a new ticket's author, team members' public notes to
the ticket's external participants, the welcome of a new participant.

Each message is written to the outbox in the transaction of its cause, with the headers that keep
the thread together: a Message-ID ``<reply-<key>@host>`` and a Reply-To
``<incoming local>+<key>@<incoming domain>`` (the key, 32 hex digits, routes the answer back to the
issue), In-Reply-To and References naming the ticket's first message.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from keycrew.audit.events import Event
from keycrew.audit.models import AuditEvent
from keycrew.config import Settings
from keycrew.context import Ctx
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Project
from keycrew.outbox.service import enqueue
from keycrew.records.issues import reference
from keycrew.records.models import Issue, Note
from keycrew.servicedesk.address import IncomingAddress, incoming_address
from keycrew.servicedesk.models import IssueEmailParticipant, ServiceDeskMessage, ServiceDeskSetting
from keycrew.servicedesk.settings import DEFAULT_NEW_NOTE, describe, substitute

SENT = "sent"
RECEIVED = "received"

# Where replies go: set once by the composition root (``configure``), read by the note listener,
# which the audit trail calls without settings.
_incoming: list[IncomingAddress | None] = [None]

# The display name of Service Desk e-mail's sender.
SUPPORT_BOT_NAME = "GitLab Support Bot"


def configure(settings: Settings) -> None:
    _incoming[0] = incoming_address(settings)


def first_message_id(ctx: Ctx, issue: Issue) -> str | None:
    """The Message-ID of the e-mail that opened the ticket (the thread's root)."""
    return ctx.db.scalar(
        select(ServiceDeskMessage.message_id)
        .where(ServiceDeskMessage.issue_id == issue.id, ServiceDeskMessage.direction == RECEIVED)
        .order_by(ServiceDeskMessage.id)
        .limit(1)
    )


def issue_values(ctx: Ctx, project: Project, issue: Issue) -> dict[str, str]:
    url = f"{ctx.instance.external_url}/{project.full_path}/-/issues/{issue.iid}"
    return {
        "ISSUE_ID": f"#{issue.iid}",
        "ISSUE_PATH": reference(project, issue),
        "ISSUE_URL": url,
        "ISSUE_TITLE": issue.title,
        "ISSUE_DESCRIPTION": issue.description,
        "SYSTEM_HEADER": "",
        "UNSUBSCRIBE_URL": "",
    }


def send_thread_mail(
    ctx: Ctx,
    project: Project,
    issue: Issue,
    *,
    to: str,
    subject: str,
    template: str,
    body: str,
    in_reply_to: str | None,
    incoming: IncomingAddress | None,
) -> None:
    """One message of the ticket's thread to ``to``, remembered so that an answer finds the issue."""
    key = secrets.token_hex(16)
    message_id = f"reply-{key}@{ctx.instance.host}"
    # Sent by Support Bot, as GitLab's Service Desk mail ("from_name": the sender's display name).
    headers = {"Message-ID": f"<{message_id}>", "from_name": SUPPORT_BOT_NAME}
    if incoming is not None:
        headers["Reply-To"] = incoming.format(key)
    if in_reply_to:
        headers["In-Reply-To"] = f"<{in_reply_to}>"
        headers["References"] = f"<{in_reply_to}>"
    values = issue_values(ctx, project, issue)
    enqueue(
        ctx,
        to_address=to,
        subject=subject,
        template=template,
        context={"body": body, "issue_url": values["ISSUE_URL"], "issue_reference": values["ISSUE_PATH"]},
        headers=headers,
    )
    ctx.db.add(
        ServiceDeskMessage(
            project_id=project.id,
            issue_id=issue.id,
            direction=SENT,
            message_id=message_id,
            reply_key=key,
            created_at=ctx.now(),
        )
    )


def participants(ctx: Ctx, issue: Issue) -> list[str]:
    return list(
        ctx.db.scalars(
            select(IssueEmailParticipant.email)
            .where(IssueEmailParticipant.issue_id == issue.id)
            .order_by(IssueEmailParticipant.id)
        )
    )


def on_audit_event(ctx: Ctx, event: AuditEvent) -> None:
    """A public note by someone other than Support Bot on an issue with external participants:
    e-mail it to each of them (GitLab's service_desk_new_note_email), in the note's transaction."""
    if event.event_name != Event.NOTE_CREATED.value or event.target_type != "Note" or event.target_id is None:
        return
    if (event.details or {}).get("internal"):
        return
    author = ctx.actor.user
    if author is None or author.user_type == int(UserType.SUPPORT_BOT):
        return
    note = ctx.db.get(Note, event.target_id)
    if note is None or note.confidential or note.system:
        return
    issue = ctx.db.get(Issue, note.issue_id)
    if issue is None:
        return
    recipients = participants(ctx, issue)
    if not recipients:
        return
    project = ctx.db.get(Project, issue.project_id)
    if project is None:
        return
    row = ctx.db.get(ServiceDeskSetting, project.id)
    template = row.new_note_template if row is not None and row.new_note_template else DEFAULT_NEW_NOTE
    values = issue_values(ctx, project, issue) | {"NOTE_TEXT": note.body, "AUTHOR_NAME": _name(author)}
    body = substitute(template, values)
    root = first_message_id(ctx, issue)
    for address in recipients:
        send_thread_mail(
            ctx,
            project,
            issue,
            to=address,
            subject=f"{issue.title} (#{issue.iid})",
            template="service_desk_new_note",
            body=body,
            in_reply_to=root,
            incoming=_incoming[0],
        )


def _name(user: User) -> str:
    return user.name or user.username


def send_thank_you(
    ctx: Ctx, settings: Settings, project: Project, issue: Issue, *, to: str, in_reply_to: str | None
) -> None:
    desk = describe(settings, project, ctx.db.get(ServiceDeskSetting, project.id))
    body = substitute(desk.thank_you_template, issue_values(ctx, project, issue))
    send_thread_mail(
        ctx,
        project,
        issue,
        to=to,
        subject=f"Re: {issue.title} (#{issue.iid})",
        template="service_desk_thank_you",
        body=body,
        in_reply_to=in_reply_to,
        incoming=incoming_address(settings),
    )


def send_new_participant(
    ctx: Ctx, settings: Settings, project: Project, issue: Issue, *, to: str, in_reply_to: str | None
) -> None:
    desk = describe(settings, project, ctx.db.get(ServiceDeskSetting, project.id))
    body = substitute(desk.new_participant_template, issue_values(ctx, project, issue))
    send_thread_mail(
        ctx,
        project,
        issue,
        to=to,
        subject=f"{issue.title} (#{issue.iid})",
        template="service_desk_new_participant",
        body=body,
        in_reply_to=in_reply_to,
        incoming=incoming_address(settings),
    )
