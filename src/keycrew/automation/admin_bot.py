"""GitLab Admin Bot's scheduled duties, each driven by the application settings of the same name.

- ``deactivate-dormant-users``: active humans (and service users) without activity for
  ``deactivate_dormant_users_period`` days (at least 90), or never active and created at least 7
  days ago, are deactivated; they are told by e-mail (``user_deactivation_emails_enabled``) and
  activated again when they next sign in. Never admins, bots, service accounts, internal users.
- ``delete-unconfirmed-users``: humans who never confirmed their e-mail address nor signed in, created
  more than ``unconfirmed_users_delete_after_days`` ago, are deleted (only while e-mail confirmation
  is on), at most 10,000 per run, newest first.
- ``delete-inactive-projects``: projects without activity for
  ``inactive_projects_send_warning_email_after_months`` and larger than
  ``inactive_projects_min_size_mb`` are announced to their Owners and Maintainers with a deletion
  date; still inactive on that date, they are deleted. Activity meanwhile cancels the warning.
- ``remove-expired-members``: memberships whose ``expires_at`` has come are removed; a project or
  group bot whose membership expired is deleted with it.

Every change is made by GitLab Admin Bot through the use case that makes it for people (the audit
events name the bot), in keyset batches, each item finished in its batch's transaction: a killed run
loses at most its open batch and the next one does nothing twice.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import and_, delete, exists, func, or_, select

from keycrew.access.inactivity import InactiveProjectWarning
from keycrew.access.levels import AccessLevel
from keycrew.access.members import has_other_owner
from keycrew.access.models import Member
from keycrew.access.projects import project_entity
from keycrew.access.resources import Resource
from keycrew.actions.deletion import destroy_user
from keycrew.actions.projects import delete_project
from keycrew.activity.kinds import Action
from keycrew.activity.service import record_event
from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.automation.jobs import Job, JobRun
from keycrew.context import Ctx
from keycrew.errors import KeycrewError
from keycrew.identity.lifecycle import deactivate_user
from keycrew.identity.models import User
from keycrew.identity.types import UserState, UserType
from keycrew.instance.settings import MIN_DORMANT_PERIOD, instance_settings
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace, Project
from keycrew.notifications.recipients import has_mailbox, resource_managers
from keycrew.outbox.service import enqueue
from keycrew.packages.models import Package, PackageFile
from keycrew.repos import storage as repos

# GitLab's schedules (config/initializers/1_settings.rb), in UTC.
DORMANT_USERS_CRON = "21,42 0-4 * * *"
UNCONFIRMED_USERS_CRON = "0 * * * *"
INACTIVE_PROJECTS_CRON = "*/10 * * * *"
EXPIRED_MEMBERS_CRON = "10 0 * * *"

# Users never active are deactivated only once they are this old (GitLab's MINIMUM_DAYS_CREATED).
MINIMUM_DAYS_CREATED = 7
# GitLab deletes at most this many unconfirmed users per run.
UNCONFIRMED_PER_RUN = 10_000
USER_BATCH = 100
PROJECT_BATCH = 100
MEMBER_BATCH = 1000
MB = 1024 * 1024

DEACTIVATED_SUBJECT = "Your account has been deactivated"
MEMBERSHIP_EXPIRED = "Membership expired"


def unconfirmed_reason(days: int) -> str:
    """GitLab's reason_for_deletion of an unconfirmed user."""
    return f"GitLab automatically deletes unconfirmed users after {days} days since their creation"


def inactive_project_subject(project_name: str, deletion_on: dt.date) -> str:
    """GitLab's subject of the inactive-project warning."""
    return (
        f"Action required: Project {project_name} is scheduled to be deleted on "
        f"{deletion_on.isoformat()} due to inactivity"
    )


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` ``months`` calendar months later (earlier when negative), the day clamped to the
    month's last (as Rails' ``months.ago`` / ``months.from_now``)."""
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    following = dt.date(year + (month == 12), month % 12 + 1, 1)
    last_day = (following - dt.timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def _sign_in_url(ctx: Ctx) -> str:
    return f"{ctx.instance.external_url.rstrip('/')}/users/sign_in"


def _in_batches(run: JobRun, step: Callable[[Ctx, int | None], int | None]) -> None:
    """Run ``step`` in one transaction after the other: it gets the cursor the previous one
    returned (None at first) and returns the next, or None when the walk is over."""
    cursor: int | None = None
    while True:
        with run.batch() as ctx:
            cursor = step(ctx, cursor)
        if cursor is None:
            return


# -- deactivate-dormant-users -------------------------------------------------------------------


def _dormant_batch(ctx: Ctx, after_id: int, period: int) -> list[User]:
    now, today = ctx.now(), ctx.today()
    return list(
        ctx.db.scalars(
            select(User)
            .where(
                User.id > after_id,
                User.state == UserState.ACTIVE.value,
                User.user_type.in_([int(UserType.HUMAN), int(UserType.SERVICE_USER)]),
                User.admin.is_(False),
                or_(
                    User.last_activity_on <= today - dt.timedelta(days=period),
                    and_(
                        User.last_activity_on.is_(None),
                        User.created_at <= now - dt.timedelta(days=MINIMUM_DAYS_CREATED),
                    ),
                ),
            )
            .order_by(User.id)
            .limit(USER_BATCH)
        )
    )


def _run_deactivate_dormant_users(run: JobRun) -> None:
    with run.batch() as ctx:
        settings = instance_settings(ctx)
        enabled = settings.deactivate_dormant_users
        period = max(settings.deactivate_dormant_users_period, MIN_DORMANT_PERIOD)
        emails = settings.user_deactivation_emails_enabled
    if not enabled:
        run.note("deactivate_dormant_users is off: nothing to do")
        return

    def step(ctx: Ctx, after_id: int | None) -> int | None:
        users = _dormant_batch(ctx, after_id or 0, period)
        for user in users:
            run.progress.advance()
            try:
                with ctx.db.begin_nested():
                    done = deactivate_user(ctx, user)
            except KeycrewError as exc:
                run.count("kept")
                run.note(f"kept @{user.username}: {exc.message}")
                continue
            if not done:
                continue
            run.count("deactivated")
            run.note(f"deactivated @{user.username}")
            if emails and has_mailbox_when_deactivated(user):
                enqueue(
                    ctx,
                    to_address=user.email,
                    subject=DEACTIVATED_SUBJECT,
                    template="user_deactivated",
                    context={"name": user.name, "username": user.username, "sign_in_url": _sign_in_url(ctx)},
                    to_user_id=user.id,
                    dedupe_key=f"user-deactivated:{user.id}:{ctx.today().isoformat()}",
                )
                run.count("e-mailed")
        return users[-1].id if users else None

    _in_batches(run, step)


def has_mailbox_when_deactivated(user: User) -> bool:
    """The deactivation e-mail goes to people (GitLab mails the user's own address whatever their
    notification settings); a service user has no one to read it."""
    return user.type is UserType.HUMAN


deactivate_dormant_users_job = Job(
    "deactivate-dormant-users",
    DORMANT_USERS_CRON,
    "Deactivate users without activity for deactivate_dormant_users_period days (at least 90), or never "
    "active and created 7 days ago, when deactivate_dormant_users is on; never admins, bots, service "
    "accounts or internal users. They are e-mailed and activated again when they sign in.",
    _run_deactivate_dormant_users,
)


# -- delete-unconfirmed-users -------------------------------------------------------------------


def _run_delete_unconfirmed_users(run: JobRun) -> None:
    with run.batch() as ctx:
        settings = instance_settings(ctx)
        enabled = settings.delete_unconfirmed_users and settings.email_confirmation_setting != "off"
        days = settings.unconfirmed_users_delete_after_days
    if not enabled:
        run.note("delete_unconfirmed_users is off, or e-mail confirmation is off: nothing to do")
        return
    reason = unconfirmed_reason(days)
    seen = 0

    def step(ctx: Ctx, before_id: int | None) -> int | None:
        nonlocal seen
        cutoff = ctx.now() - dt.timedelta(days=days)
        query = select(User).where(
            User.user_type == int(UserType.HUMAN),
            User.state == UserState.ACTIVE.value,
            User.confirmed_at.is_(None),
            User.sign_in_count == 0,
            User.created_at < cutoff,
        )
        if before_id is not None:
            query = query.where(User.id < before_id)
        limit = min(USER_BATCH, UNCONFIRMED_PER_RUN - seen)
        users = list(ctx.db.scalars(query.order_by(User.id.desc()).limit(limit))) if limit > 0 else []
        if not users:
            if limit <= 0:
                run.note(f"stopped after {UNCONFIRMED_PER_RUN} users; the next run goes on")
            return None
        ids = [user.id for user in users]
        for user in users:
            seen += 1
            run.progress.advance()
            username = user.username
            try:
                with ctx.db.begin_nested():
                    destroy_user(ctx, user, skip_authorization=True, reason=reason)
            except KeycrewError as exc:
                run.count("kept")
                run.note(f"kept @{username}: {exc.message}")
                continue
            run.count("deleted")
            run.note(f"deleted @{username}")
        return min(ids)

    _in_batches(run, step)


delete_unconfirmed_users_job = Job(
    "delete-unconfirmed-users",
    UNCONFIRMED_USERS_CRON,
    "Delete users who never confirmed their e-mail address nor signed in, created "
    "unconfirmed_users_delete_after_days ago, when delete_unconfirmed_users is on and e-mail "
    "confirmation is soft or hard (at most 10,000 per run).",
    _run_delete_unconfirmed_users,
)


# -- delete-inactive-projects -------------------------------------------------------------------


def _directory_bytes(path: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                continue  # removed meanwhile
    return total


def project_size_bytes(ctx: Ctx, project_id: int) -> int:
    """What a project keeps on disk: its repository and its packages' files."""
    size = 0
    root = ctx.instance.repositories_dir
    if root is not None:
        path = repos.repository_path(root, project_id)
        if path.exists():
            size += _directory_bytes(path)
    packages = ctx.db.scalar(
        select(func.coalesce(func.sum(PackageFile.size), 0))
        .join(Package, Package.id == PackageFile.package_id)
        .where(Package.project_id == project_id)
    )
    return size + int(packages or 0)


def _warning_recipients(ctx: Ctx, project: Project) -> list[User]:
    """GitLab's owners_and_maintainers_without_invites: the project's Owners and Maintainers, else
    (none) those of its group; people who may receive e-mail."""
    users = resource_managers(ctx, project)
    if not users and project.namespace.is_group:
        today = ctx.today()
        users = list(
            ctx.db.scalars(
                select(User)
                .where(
                    User.id.in_(
                        select(Member.user_id).where(
                            Member.source_type == SourceType.NAMESPACE.value,
                            Member.source_id == project.namespace_id,
                            Member.access_level >= int(AccessLevel.MAINTAINER),
                            or_(Member.expires_at.is_(None), Member.expires_at > today),
                        )
                    )
                )
                .order_by(User.id)
            )
        )
    return [user for user in users if has_mailbox(ctx, user)]


def _warn(ctx: Ctx, run: JobRun, project: Project, deletion_on: dt.date) -> None:
    now = ctx.now()
    ctx.db.add(InactiveProjectWarning(project_id=project.id, warned_at=now, deletion_on=deletion_on))
    recipients = _warning_recipients(ctx, project)
    record(
        ctx,
        Event.INACTIVE_PROJECT_WARNED,
        project_entity(project),
        target=Target("Project", project.id, project.full_path),
        deletion_on=deletion_on.isoformat(),
        recipients=[user.username for user in recipients],
    )
    for user in recipients:
        enqueue(
            ctx,
            to_address=user.email,
            subject=inactive_project_subject(project.name, deletion_on),
            template="inactive_project_deletion_warning",
            context={
                "name": user.name,
                "project_name": project.name,
                "project_path": project.full_path,
                "project_url": f"{ctx.instance.external_url.rstrip('/')}/{project.full_path}",
                "deletion_on": deletion_on.isoformat(),
                "last_activity_on": project.last_activity_at.date().isoformat(),
            },
            to_user_id=user.id,
            dedupe_key=f"inactive-project:{project.id}:{now.date().isoformat()}:{user.id}",
        )
    run.count("warned")
    run.count("e-mailed", len(recipients))
    run.note(f"warned about {project.full_path}: deletion on {deletion_on.isoformat()}")


def _run_delete_inactive_projects(run: JobRun) -> None:
    with run.batch() as ctx:
        settings = instance_settings(ctx)
        enabled = settings.delete_inactive_projects
        warn_after = settings.inactive_projects_send_warning_email_after_months
        delete_after = settings.inactive_projects_delete_after_months
        min_bytes = settings.inactive_projects_min_size_mb * MB
        # Warnings of projects active since they were warned are void (GitLab resets them on
        # activity); turning the setting off voids them all.
        stale = delete(InactiveProjectWarning)
        if enabled:
            active_since = exists().where(
                Project.id == InactiveProjectWarning.project_id,
                Project.last_activity_at > InactiveProjectWarning.warned_at,
            )
            stale = stale.where(active_since)
        cleared = ctx.db.execute(stale.execution_options(synchronize_session=False))
        reset = int(getattr(cleared, "rowcount", 0) or 0)
        if reset > 0:
            run.count("warnings reset", reset)
    if not enabled:
        run.note("delete_inactive_projects is off: nothing to do")
        return
    grace = max(delete_after - warn_after, 0)

    def step(ctx: Ctx, after_id: int | None) -> int | None:
        now = ctx.now()
        cutoff = add_months(now, -warn_after)
        projects = list(
            ctx.db.scalars(
                select(Project)
                .where(Project.id > (after_id or 0), Project.last_activity_at < cutoff)
                .order_by(Project.id)
                .limit(PROJECT_BATCH)
            )
        )
        if not projects:
            return None
        ids = [project.id for project in projects]
        for project in projects:
            run.progress.advance()
            if project_size_bytes(ctx, project.id) <= min_bytes:
                run.count("below the size threshold")
                continue
            warning = ctx.db.get(InactiveProjectWarning, project.id)
            if warning is None:
                _warn(ctx, run, project, add_months(now, grace).date())
                continue
            if ctx.today() < warning.deletion_on:
                run.count("awaiting deletion")
                continue
            full_path = project.full_path
            try:
                with ctx.db.begin_nested():
                    ctx.db.delete(warning)
                    ctx.db.flush()
                    delete_project(ctx, project)
            except KeycrewError as exc:
                run.count("kept")
                run.note(f"kept {full_path}: {exc.message}")
                continue
            run.count("deleted")
            run.note(f"deleted {full_path}")
        return max(ids)

    _in_batches(run, step)


delete_inactive_projects_job = Job(
    "delete-inactive-projects",
    INACTIVE_PROJECTS_CRON,
    "When delete_inactive_projects is on: warn the Owners and Maintainers of projects inactive for "
    "inactive_projects_send_warning_email_after_months (and larger than inactive_projects_min_size_mb), "
    "then delete those still inactive inactive_projects_delete_after_months after their last activity.",
    _run_delete_inactive_projects,
)


# -- remove-expired-members ---------------------------------------------------------------------


def _source_of(ctx: Ctx, member: Member) -> Resource | None:
    if member.source_type == SourceType.PROJECT.value:
        project = ctx.db.get(Project, member.source_id)
        return None if project is None else Resource(project)
    group = ctx.db.get(Namespace, member.source_id)
    return None if group is None else Resource(group)


def remove_expired_member(ctx: Ctx, member: Member) -> str:
    """Remove one expired membership as GitLab's Members::DestroyService does for the worker
    (no authorization, no subresources): "removed", or "kept" for a group's last Owner. A project's
    membership leaves the ``expired`` contribution event; a bot's user goes with it."""
    user = ctx.db.get(User, member.user_id)
    source = _source_of(ctx, member)
    if user is None or source is None:
        ctx.db.delete(member)
        ctx.db.flush()
        return "removed"
    group = source.group
    if (
        group is not None
        and member.access_level >= AccessLevel.OWNER
        and not has_other_owner(ctx, group, except_member_id=member.id)
    ):
        return "kept"
    record(
        ctx,
        Event.MEMBER_REMOVED,
        source.entity,
        target=Target("User", user.id, user.username),
        access_level=member.access_level,
        expires_at=None if member.expires_at is None else member.expires_at.isoformat(),
        reason="expired",
    )
    if source.is_project:
        record_event(ctx, Action.EXPIRED, source.id, author_id=user.id)
    ctx.db.delete(member)
    ctx.db.flush()
    if user.type is UserType.PROJECT_BOT:
        destroy_user(ctx, user, skip_authorization=True, reason=MEMBERSHIP_EXPIRED)
    return "removed"


def _run_remove_expired_members(run: JobRun) -> None:
    def step(ctx: Ctx, after_id: int | None) -> int | None:
        members = list(
            ctx.db.scalars(
                select(Member)
                .where(
                    Member.id > (after_id or 0),
                    Member.expires_at.is_not(None),
                    Member.expires_at <= ctx.today(),
                )
                .order_by(Member.id)
                .limit(MEMBER_BATCH)
            )
        )
        if not members:
            return None
        ids = [member.id for member in members]
        for member in members:
            run.progress.advance()
            try:
                with ctx.db.begin_nested():
                    outcome = remove_expired_member(ctx, member)
            except KeycrewError as exc:
                run.count("kept")
                run.note(f"kept membership {member.id}: {exc.message}")
                continue
            run.count(outcome)
        return max(ids)

    _in_batches(run, step)


remove_expired_members_job = Job(
    "remove-expired-members",
    EXPIRED_MEMBERS_CRON,
    "Remove memberships whose expires_at has come (a bot whose membership expired is deleted with it).",
    _run_remove_expired_members,
)

ADMIN_BOT_JOBS = (
    deactivate_dormant_users_job,
    delete_unconfirmed_users_job,
    delete_inactive_projects_job,
    remove_expired_members_job,
)
