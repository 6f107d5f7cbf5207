"""Reassignment of placeholder users, as GitLab's Import::SourceUsers services do it.

An Owner of the top-level group reassigns a source user to a real user (``awaiting_approval``,
an e-mail to that user), may cancel (``pending_reassignment``) or keep the placeholder
(``keep_as_placeholder``); the chosen user accepts (``reassignment_in_progress``: the
``placeholder-reassignment`` job then moves every contribution and membership and deletes the
placeholder, ``completed``) or rejects (``rejected``). An admin reassigning with the instance's
``allow_bypass_placeholder_confirmation`` skips the approval. Each use case is one transaction with
its audit event; the job works one batch per transaction (``move_batch``): a moved row no longer
matches the placeholder, so a killed run loses at most its open batch and nothing moves twice.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update

from keycrew.access.levels import AccessLevel
from keycrew.access.models import Member
from keycrew.access.policy import effective_group_level
from keycrew.activity.models import ActivityEvent
from keycrew.audit.events import Event
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.errors import Forbidden, Invalid, NotFound, Unprocessable
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.imports.models import ImportSourceUser, SourceUserStatus
from keycrew.instance.settings import instance_settings
from keycrew.namespaces import paths
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace
from keycrew.outbox.service import enqueue
from keycrew.records.models import Issue, Note

# Records per statement in the job.
BATCH_SIZE = 1000
# After this many failed attempts the source user becomes ``failed`` with the last error.
MAX_ATTEMPTS = 3
ERROR_MAX = 2000

INSUFFICIENT = "You have insufficient permissions to update the import source user"
INVALID_STATUS = "Import source user has an invalid status for this operation"
NOT_ALLOWED_USER = "You can assign active users with regular, auditor, or administrator access only."
ALREADY_ASSIGNED = "Reassign to user already assigned to another placeholder"
NOT_TARGET = "You are not the user this reassignment is for"

CSV_HEADERS = (
    "Source host",
    "Import type",
    "Source user identifier",
    "Source user name",
    "Source username",
    "GitLab username",
    "GitLab public email",
)
NOT_CSV = "You must upload a CSV file with a .csv file extension."
CSV_NOT_FORMATTED = "The provided CSV was not correctly formatted."
CSV_DUPLICATES = "The provided spreadsheet contains duplicate email addresses or usernames."
CSV_PREFIX = "The following errors are preventing the sheet from being processed: "
CSV_NO_SOURCE_USER = "No matching placeholder user found"
CSV_NO_USER = "No matching user for provided information."


def _group_entity(group: Namespace) -> Entity:
    return Entity("Group", group.id, group.full_path)


def _source_user(ctx: Ctx, source_user_id: int) -> ImportSourceUser:
    found = ctx.db.scalars(
        select(ImportSourceUser)
        .where(ImportSourceUser.id == source_user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if found is None:
        raise NotFound("Import source user")
    return found


def _group_of(ctx: Ctx, source_user: ImportSourceUser) -> Namespace:
    group = ctx.db.get(Namespace, source_user.namespace_id)
    if group is None:
        raise NotFound("Group")
    return group


def is_owner(ctx: Ctx, group: Namespace) -> bool:
    return effective_group_level(ctx.reads, ctx.actor, group, ctx.today()) >= AccessLevel.OWNER


def _require_owner(ctx: Ctx, group: Namespace) -> None:
    if group.parent_id is not None or not group.is_group or not is_owner(ctx, group):
        raise Forbidden(INSUFFICIENT)


def _require_status(source_user: ImportSourceUser, *allowed: SourceUserStatus) -> None:
    if source_user.status not in {s.value for s in allowed}:
        raise Unprocessable(INVALID_STATUS)


def _target(source_user: ImportSourceUser, user: User | None = None) -> Target:
    return Target("ImportSourceUser", source_user.id, source_user.source_username or "")


def check_assignable(ctx: Ctx, source_user: ImportSourceUser, user: User) -> None:
    """GitLab's refusals: only active humans (no bot, internal user, service account; no
    blocked, deactivated or banned user), not already chosen for another source user of the same
    group, source host and import type."""
    if user.user_type != int(UserType.HUMAN) or user.state != "active":
        raise Unprocessable(NOT_ALLOWED_USER)
    taken = ctx.db.scalar(
        select(ImportSourceUser.id).where(
            ImportSourceUser.namespace_id == source_user.namespace_id,
            ImportSourceUser.source_hostname == source_user.source_hostname,
            ImportSourceUser.import_type == source_user.import_type,
            ImportSourceUser.reassign_to_user_id == user.id,
            ImportSourceUser.id != source_user.id,
        )
    )
    if taken is not None:
        raise Unprocessable(ALREADY_ASSIGNED)


def _touch(ctx: Ctx, source_user: ImportSourceUser, status: SourceUserStatus) -> None:
    source_user.status = status.value
    source_user.updated_at = ctx.now()


def reassign(ctx: Ctx, source_user_id: int, user: User) -> ImportSourceUser:
    """An Owner chooses ``user``: ``awaiting_approval`` with an e-mail to them (or, for an admin
    with the bypass setting on, ``reassignment_in_progress`` at once)."""
    source_user = _source_user(ctx, source_user_id)
    group = _group_of(ctx, source_user)
    _require_owner(ctx, group)
    _require_status(source_user, SourceUserStatus.PENDING_REASSIGNMENT, SourceUserStatus.REJECTED)
    check_assignable(ctx, source_user, user)
    by = ctx.actor.user
    source_user.reassign_to_user_id = user.id
    source_user.reassigned_by_user_id = by.id if by is not None else None
    source_user.reassignment_error = None
    source_user.reassignment_attempts = 0
    bypass = ctx.actor.is_admin and instance_settings(ctx).allow_bypass_placeholder_confirmation
    if bypass:
        source_user.reassignment_token = None
        _touch(ctx, source_user, SourceUserStatus.REASSIGNMENT_IN_PROGRESS)
    else:
        source_user.reassignment_token = secrets.token_hex(16)
        _touch(ctx, source_user, SourceUserStatus.AWAITING_APPROVAL)
        _email_target(ctx, group, source_user, user)
    record(
        ctx,
        Event.SOURCE_USER_REASSIGNED,
        _group_entity(group),
        target=_target(source_user),
        reassign_to_user_id=user.id,
        reassign_to_username=user.username,
        placeholder_user_id=source_user.placeholder_user_id,
        confirmation_bypassed=bool(bypass),
    )
    ctx.db.flush()
    return source_user


def _email_target(ctx: Ctx, group: Namespace, source_user: ImportSourceUser, user: User) -> None:
    by = ctx.actor.user
    base = ctx.instance.external_url.rstrip("/")
    enqueue(
        ctx,
        to_address=user.email,
        to_user_id=user.id,
        subject=f"Reassignments in {group.full_path} waiting for review",
        template="import_source_user_reassign",
        context={
            "name": user.name,
            "username": user.username,
            "group_name": group.name,
            "group_path": group.full_path,
            "group_url": f"{base}/{group.full_path}",
            "source_name": source_user.source_name or "",
            "source_username": source_user.source_username or "",
            "source_hostname": source_user.source_hostname,
            "reassigned_by_name": by.name if by is not None else "",
            "reassigned_by_username": by.username if by is not None else "",
            "review_url": f"{base}/import/source_users/{source_user.id}",
        },
    )


def cancel_reassignment(ctx: Ctx, source_user_id: int) -> ImportSourceUser:
    source_user = _source_user(ctx, source_user_id)
    group = _group_of(ctx, source_user)
    _require_owner(ctx, group)
    _require_status(source_user, SourceUserStatus.AWAITING_APPROVAL, SourceUserStatus.REJECTED)
    source_user.reassign_to_user_id = None
    source_user.reassigned_by_user_id = None
    source_user.reassignment_token = None
    _touch(ctx, source_user, SourceUserStatus.PENDING_REASSIGNMENT)
    record(ctx, Event.SOURCE_USER_REASSIGNMENT_CANCELED, _group_entity(group), target=_target(source_user))
    ctx.db.flush()
    return source_user


def keep_as_placeholder(ctx: Ctx, source_user_id: int) -> ImportSourceUser:
    source_user = _source_user(ctx, source_user_id)
    group = _group_of(ctx, source_user)
    _require_owner(ctx, group)
    _require_status(source_user, SourceUserStatus.PENDING_REASSIGNMENT, SourceUserStatus.REJECTED)
    source_user.reassign_to_user_id = None
    source_user.reassignment_token = None
    _touch(ctx, source_user, SourceUserStatus.KEEP_AS_PLACEHOLDER)
    record(ctx, Event.SOURCE_USER_KEPT_AS_PLACEHOLDER, _group_entity(group), target=_target(source_user))
    ctx.db.flush()
    return source_user


def _require_target(ctx: Ctx, source_user: ImportSourceUser) -> None:
    me = ctx.actor.user
    if me is None or source_user.reassign_to_user_id != me.id:
        raise Forbidden(NOT_TARGET)


@dataclass(frozen=True)
class Review:
    """What the chosen user is asked to review: the source user, its group, who asked."""

    source_user: ImportSourceUser
    group: Namespace
    reassigned_by: User | None


def for_review(ctx: Ctx, source_user_id: int) -> Review:
    """The reassignment the signed-in user was chosen for (the page the e-mail links to); 404 for
    anyone else, so nobody learns of others' reassignments."""
    me = ctx.actor.user
    source_user = ctx.db.get(ImportSourceUser, source_user_id)
    if source_user is None or me is None or source_user.reassign_to_user_id != me.id:
        raise NotFound("Import source user")
    by = ctx.db.get(User, source_user.reassigned_by_user_id) if source_user.reassigned_by_user_id else None
    return Review(source_user, _group_of(ctx, source_user), by)


def accept(ctx: Ctx, source_user_id: int) -> ImportSourceUser:
    """The chosen user accepts: ``reassignment_in_progress``; the job does the rest."""
    source_user = _source_user(ctx, source_user_id)
    _require_target(ctx, source_user)
    _require_status(source_user, SourceUserStatus.AWAITING_APPROVAL)
    group = _group_of(ctx, source_user)
    source_user.reassignment_token = None
    _touch(ctx, source_user, SourceUserStatus.REASSIGNMENT_IN_PROGRESS)
    record(ctx, Event.SOURCE_USER_REASSIGNMENT_ACCEPTED, _group_entity(group), target=_target(source_user))
    ctx.db.flush()
    return source_user


def reject(ctx: Ctx, source_user_id: int) -> ImportSourceUser:
    source_user = _source_user(ctx, source_user_id)
    _require_target(ctx, source_user)
    _require_status(source_user, SourceUserStatus.AWAITING_APPROVAL)
    group = _group_of(ctx, source_user)
    source_user.reassignment_token = None
    _touch(ctx, source_user, SourceUserStatus.REJECTED)
    record(ctx, Event.SOURCE_USER_REASSIGNMENT_REJECTED, _group_entity(group), target=_target(source_user))
    ctx.db.flush()
    return source_user


# -- the job's steps -------------------------------------------------------------------------------


def _count(result: object) -> int:
    rowcount = getattr(result, "rowcount", None)
    return int(rowcount) if rowcount is not None and rowcount >= 0 else 0


def _mover(model: Any, column: str) -> Callable[[Ctx, int, int, int], int]:
    def move(ctx: Ctx, placeholder_id: int, target_id: int, limit: int) -> int:
        col = getattr(model, column)
        ids = select(model.id).where(col == placeholder_id).limit(limit)
        # Materialised first: MySQL-style self-referencing subqueries aside, this keeps the
        # statement's plan simple on both databases.
        id_list = list(ctx.db.scalars(ids))
        if not id_list:
            return 0
        return _count(
            ctx.db.execute(
                update(model)
                .where(model.id.in_(id_list))
                .values({column: target_id})
                .execution_options(synchronize_session=False)
            )
        )

    return move


def _move_memberships(ctx: Ctx, placeholder_id: int, target_id: int, limit: int) -> int:
    """The placeholder's memberships become the target's; where the target is a member already,
    the higher of the two levels is kept (GitLab's Import::ReassignPlaceholderUserRecordsService)."""
    rows = ctx.db.scalars(select(Member).where(Member.user_id == placeholder_id).limit(limit)).all()
    for row in rows:
        existing = ctx.db.scalars(
            select(Member).where(
                Member.source_type == row.source_type,
                Member.source_id == row.source_id,
                Member.user_id == target_id,
            )
        ).first()
        if existing is None:
            row.user_id = target_id
            row.updated_at = ctx.now()
        else:
            if row.access_level > existing.access_level:
                existing.access_level = row.access_level
                existing.updated_at = ctx.now()
            ctx.db.delete(row)
    ctx.db.flush()
    return len(rows)


# (kind, step): the order the job takes them in.
STEPS: tuple[tuple[str, Callable[[Ctx, int, int, int], int]], ...] = (
    ("issues", _mover(Issue, "author_id")),
    ("issues_last_edited", _mover(Issue, "last_edited_by_id")),
    ("issues_closed", _mover(Issue, "closed_by_id")),
    ("notes", _mover(Note, "author_id")),
    ("events", _mover(ActivityEvent, "author_id")),
    ("memberships", _move_memberships),
)


def in_progress(ctx: Ctx) -> list[int]:
    return list(
        ctx.db.scalars(
            select(ImportSourceUser.id)
            .where(ImportSourceUser.status == SourceUserStatus.REASSIGNMENT_IN_PROGRESS.value)
            .order_by(ImportSourceUser.id)
        )
    )


@dataclass
class Batch:
    """What one batch did: the kind it moved and how many (0: nothing left, the work is done)."""

    kind: str = ""
    moved: int = 0
    completed: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def move_batch(ctx: Ctx, source_user_id: int, limit: int = BATCH_SIZE) -> Batch:
    """One batch of the source user's reassignment, in the caller's transaction: up to ``limit``
    rows of the first kind with any left; when none is left, the placeholder is deleted and the
    source user ``completed``."""
    source_user = _source_user(ctx, source_user_id)
    if source_user.status != SourceUserStatus.REASSIGNMENT_IN_PROGRESS.value:
        return Batch(completed=False)
    target_id = source_user.reassign_to_user_id
    placeholder_id = source_user.placeholder_user_id
    if target_id is None or ctx.db.get(User, target_id) is None:
        raise RuntimeError("the user chosen for the reassignment no longer exists")
    if placeholder_id is not None:
        for kind, step in STEPS:
            moved = step(ctx, placeholder_id, target_id, limit)
            if moved:
                return Batch(kind, moved)
    _complete(ctx, source_user)
    return Batch(completed=True)


def _complete(ctx: Ctx, source_user: ImportSourceUser) -> None:
    group = _group_of(ctx, source_user)
    placeholder = (
        ctx.db.get(User, source_user.placeholder_user_id) if source_user.placeholder_user_id else None
    )
    deleted = None
    # Only a placeholder goes (an Import User stands in for many and stays).
    if placeholder is not None and placeholder.user_type == int(UserType.PLACEHOLDER):
        deleted = placeholder.username
        namespaces = ctx.db.scalars(
            select(Namespace).where(Namespace.kind == "user", Namespace.owner_id == placeholder.id)
        ).all()
        paths.release_many(ctx.db, SourceType.NAMESPACE, [ns.id for ns in namespaces])
        for ns in namespaces:
            ctx.db.delete(ns)
        ctx.db.flush()
        ctx.db.delete(placeholder)
        ctx.db.flush()
        source_user.placeholder_user_id = None
    _touch(ctx, source_user, SourceUserStatus.COMPLETED)
    source_user.reassignment_error = None
    record(
        ctx,
        Event.SOURCE_USER_REASSIGNMENT_COMPLETED,
        _group_entity(group),
        target=_target(source_user),
        reassign_to_user_id=source_user.reassign_to_user_id,
        placeholder_deleted=deleted,
    )
    ctx.db.flush()


def record_failure(ctx: Ctx, source_user_id: int, error: str) -> bool:
    """A failed attempt of the job; True when it was the last (the source user is ``failed``)."""
    source_user = _source_user(ctx, source_user_id)
    if source_user.status != SourceUserStatus.REASSIGNMENT_IN_PROGRESS.value:
        return False
    source_user.reassignment_attempts += 1
    source_user.reassignment_error = error[:ERROR_MAX]
    source_user.updated_at = ctx.now()
    if source_user.reassignment_attempts < MAX_ATTEMPTS:
        return False
    _touch(ctx, source_user, SourceUserStatus.FAILED)
    record(
        ctx,
        Event.SOURCE_USER_REASSIGNMENT_FAILED,
        _group_entity(_group_of(ctx, source_user)),
        target=_target(source_user),
        error=source_user.reassignment_error,
    )
    return True


def left_to_move(ctx: Ctx, placeholder_id: int) -> int:
    total = 0
    for model, column in (
        (Issue, Issue.author_id),
        (Note, Note.author_id),
        (ActivityEvent, ActivityEvent.author_id),
        (Member, Member.user_id),
    ):
        total += int(
            ctx.db.scalar(select(func.count()).select_from(model).where(column == placeholder_id)) or 0
        )
    return total


# -- CSV -------------------------------------------------------------------------------------------


def check_owner_of_top_level(ctx: Ctx, group: Namespace) -> Namespace:
    if group.parent_id is not None or not group.is_group:
        raise Forbidden()
    if not is_owner(ctx, group):
        raise Forbidden()
    return group


def csv_rows(ctx: Ctx, group: Namespace) -> str:
    """GitLab's placeholder reassignment sheet: every source user still to be reassigned."""
    check_owner_of_top_level(ctx, group)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADERS)
    rows = ctx.db.scalars(
        select(ImportSourceUser)
        .where(
            ImportSourceUser.namespace_id == group.id,
            ImportSourceUser.status.in_(
                [SourceUserStatus.PENDING_REASSIGNMENT.value, SourceUserStatus.REJECTED.value]
            ),
        )
        .order_by(ImportSourceUser.id)
    ).all()
    for row in rows:
        fields = [row.source_hostname, row.import_type, row.source_user_identifier]
        fields += [row.source_name or "", row.source_username or ""]
        # The two columns to fill in are empty strings, quoted as GitLab's sheet has them.
        line = io.StringIO()
        csv.writer(line, lineterminator="").writerow(fields)
        out.write(line.getvalue() + ',"",""\n')
    return out.getvalue()


@dataclass
class CsvResult:
    reassigned: list[str] = field(default_factory=list)
    # (row number, source username or identifier, message)
    failures: list[tuple[int, str, str]] = field(default_factory=list)
    error: str | None = None


def is_csv_filename(filename: str) -> bool:
    """GitLab takes a sheet only from a file whose name ends in ``.csv``."""
    return filename.endswith(".csv")


def _find_user(ctx: Ctx, username: str, email: str) -> User | None:
    if username:
        return ctx.db.scalars(select(User).where(User.username_lower == username.lower())).first()
    if email:
        return ctx.db.scalars(select(User).where(func.lower(User.email) == email.lower())).first()
    return None


def reassign_from_csv(ctx: Ctx, group: Namespace, data: bytes) -> CsvResult:
    """Each row of the sheet reassigns its source user (matched by host, import type and
    identifier) to the user named by GitLab username or e-mail; a row that cannot be applied is
    reported and changes nothing. The result goes by e-mail to the uploader, as GitLab's."""
    check_owner_of_top_level(ctx, group)
    result = CsvResult()
    try:
        text = data.decode("utf-8-sig")
        reader = csv.DictReader(io.StringIO(text))
        fields = [f.strip() for f in (reader.fieldnames or [])]
        rows = list(reader)
    except (UnicodeDecodeError, csv.Error):
        fields, rows = [], []
    if not set(CSV_HEADERS[:3]).issubset(fields) or not (
        "GitLab username" in fields or "GitLab public email" in fields
    ):
        result.error = CSV_PREFIX + CSV_NOT_FORMATTED
    else:
        parsed = []
        seen: set[tuple[str, str, str]] = set()
        for number, raw in enumerate(rows, start=2):
            row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            username, email = row.get("GitLab username", ""), row.get("GitLab public email", "")
            if not username and not email:
                continue  # blank rows are skipped
            key = (row.get("Source host", ""), row.get("Import type", ""), (username or email).lower())
            if key in seen:
                result.error = CSV_PREFIX + CSV_DUPLICATES
                break
            seen.add(key)
            parsed.append((number, row, username, email))
        if result.error is None:
            for number, row, username, email in parsed:
                _apply_row(ctx, group, result, number, row, username, email)
    _email_result(ctx, group, result)
    return result


def _apply_row(
    ctx: Ctx, group: Namespace, result: CsvResult, number: int, row: dict[str, str], username: str, email: str
) -> None:
    label = row.get("Source username") or row.get("Source user identifier") or str(number)
    try:
        hostname = row.get("Source host", "")
        source_user = ctx.db.scalars(
            select(ImportSourceUser).where(
                ImportSourceUser.namespace_id == group.id,
                ImportSourceUser.source_hostname == hostname.rstrip("/").lower(),
                ImportSourceUser.import_type == row.get("Import type", ""),
                ImportSourceUser.source_user_identifier == row.get("Source user identifier", ""),
            )
        ).first()
        if source_user is None:
            raise Invalid(CSV_NO_SOURCE_USER)
        user = _find_user(ctx, username, email)
        if user is None:
            raise Invalid(CSV_NO_USER)
        with ctx.db.begin_nested():
            reassign(ctx, source_user.id, user)
        result.reassigned.append(label)
    except (Invalid, Unprocessable, Forbidden) as error:
        result.failures.append((number, label, error.message))


def _email_result(ctx: Ctx, group: Namespace, result: CsvResult) -> None:
    me = ctx.actor.user
    if me is None:
        return
    if result.error is not None:
        subject = f"Placeholder reassignments for {group.full_path} could not be processed"
    elif result.failures:
        subject = f"Placeholder reassignments for {group.full_path} completed with errors"
    else:
        subject = f"Placeholder reassignments for {group.full_path} completed successfully"
    enqueue(
        ctx,
        to_address=me.email,
        to_user_id=me.id,
        subject=subject,
        template="placeholder_reassignments_result",
        context={
            "name": me.name,
            "group_path": group.full_path,
            "error": result.error or "",
            "reassigned": len(result.reassigned),
            "failures": [
                {"row": number, "source": label, "message": message}
                for number, label, message in result.failures
            ],
        },
    )


__all__ = [
    "CSV_HEADERS",
    "accept",
    "cancel_reassignment",
    "check_assignable",
    "check_owner_of_top_level",
    "csv_rows",
    "is_csv_filename",
    "keep_as_placeholder",
    "move_batch",
    "reassign",
    "reassign_from_csv",
    "reject",
]
