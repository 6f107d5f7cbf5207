"""The Admin area's audit log: instance audit events searched by actor and target, each event's
actor, target and entity resolved to what they are now (a name, a kind, where it is shown), and the
filtered events in keyset batches for an export.

Read-only. The searches are SQL (``LIKE`` on lower-cased text), never a filter in Python: an actor
matches on the username the event recorded or on the current username or name of its author; a
target on the name or path the event recorded, or on the current name or path of the user,
project or group it concerns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select

from keycrew.audit import queries as audit
from keycrew.audit.models import AuditEvent
from keycrew.context import Ctx
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens.models import DeployToken, PersonalAccessToken

# Events per batch of an export (``iter_events``).
EXPORT_BATCH = 500


@dataclass(frozen=True)
class AuditSearch:
    """The admin area's filters: text in the actor and in the target, one action, a date range."""

    actor: str | None = None
    target: str | None = None
    action: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None


@dataclass(frozen=True)
class Link:
    """Something an event concerns as the log shows it: its kind ("User", "Project access token"),
    a label ("@jane", "group/app", "Project access token 'ci' (#12)"), the bare name or path the
    export writes, and the page it is shown on (None when it is gone or has none)."""

    kind: str
    label: str
    name: str
    href: str | None = None


def _contains(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _like(column: Any, pattern: str) -> ColumnElement[bool]:
    return func.lower(column).like(pattern, escape="\\")


def _users_matching(pattern: str) -> Select[Any]:
    return select(User.id).where(or_(_like(User.username, pattern), _like(User.name, pattern)))


def search_events(ctx: Ctx, search: AuditSearch) -> Select[Any]:
    """The instance's events matching ``search``, newest first (admins only: Forbidden otherwise)."""
    query = audit.instance_events(
        ctx,
        audit.EventFilter(
            created_after=search.created_after,
            created_before=search.created_before,
            event_name=search.action or None,
        ),
    )
    if search.actor:
        pattern = _contains(search.actor.removeprefix("@"))
        query = query.where(
            or_(_like(AuditEvent.author_name, pattern), AuditEvent.author_id.in_(_users_matching(pattern)))
        )
    if search.target:
        pattern = _contains(search.target.removeprefix("@"))
        projects = select(Project.id).where(
            or_(_like(Project.full_path, pattern), _like(Project.name, pattern))
        )
        groups = select(Namespace.id).where(
            Namespace.kind == "group",
            or_(_like(Namespace.full_path, pattern), _like(Namespace.full_name, pattern)),
        )
        query = query.where(
            or_(
                _like(AuditEvent.target_details, pattern),
                and_(AuditEvent.target_type == "User", AuditEvent.target_id.in_(_users_matching(pattern))),
                and_(AuditEvent.target_type == "Project", AuditEvent.target_id.in_(projects)),
                and_(AuditEvent.target_type == "Group", AuditEvent.target_id.in_(groups)),
            )
        )
    return query


def iter_events(ctx: Ctx, search: AuditSearch, *, batch: int = EXPORT_BATCH) -> Iterator[list[AuditEvent]]:
    """Every event matching ``search``, newest first, in batches (keyset on time and id, so that a
    long export neither skips nor repeats an event when new ones arrive)."""
    after: tuple[dt.datetime, int] | None = None
    while True:
        query = search_events(ctx, search)
        if after is not None:
            moment, last_id = after
            query = query.where(
                or_(
                    AuditEvent.created_at < moment,
                    and_(AuditEvent.created_at == moment, AuditEvent.id < last_id),
                )
            )
        rows = list(ctx.db.scalars(query.limit(batch)))
        if not rows:
            return
        yield rows
        after = (rows[-1].created_at, rows[-1].id)
        if len(rows) < batch:
            return


@dataclass(frozen=True)
class Resolved:
    """An event's actor, target and entity as links (None: nothing to show)."""

    actor: Link | None
    target: Link | None
    entity: Link | None


def _token_kind(token: PersonalAccessToken, owner: User | None) -> str:
    if token.impersonation:
        return "Impersonation token"
    if owner is not None and owner.user_type == int(UserType.PROJECT_BOT):
        return "Group access token" if owner.bot_resource_type == "Namespace" else "Project access token"
    if owner is not None and owner.user_type == int(UserType.SERVICE_ACCOUNT):
        return "Service account token"
    return "Personal access token"


class _Lookup:
    """The users, projects, groups and tokens a batch of events concerns, each read in one query."""

    def __init__(self, ctx: Ctx, events: list[AuditEvent]) -> None:
        def ids(kind: str) -> set[int]:
            found = {e.target_id for e in events if e.target_type == kind and e.target_id}
            found |= {e.entity_id for e in events if e.entity_type == kind and e.entity_id}
            return found

        db = ctx.db
        self.tokens = {
            t.id: t
            for t in db.scalars(
                select(PersonalAccessToken).where(PersonalAccessToken.id.in_(ids("PersonalAccessToken")))
            )
        }
        self.deploy_tokens = {
            t.id: t for t in db.scalars(select(DeployToken).where(DeployToken.id.in_(ids("DeployToken"))))
        }
        user_ids = (
            ids("User")
            | {e.author_id for e in events if e.author_id}
            | {t.user_id for t in self.tokens.values()}
        )
        self.users = {u.id: u for u in db.scalars(select(User).where(User.id.in_(user_ids)))}
        bots = [u for u in self.users.values() if u.user_type == int(UserType.PROJECT_BOT)]
        project_ids = ids("Project") | {
            b.bot_resource_id for b in bots if b.bot_resource_type == "Project" and b.bot_resource_id
        }
        project_ids |= {t.project_id for t in self.deploy_tokens.values() if t.project_id}
        group_ids = ids("Group") | {
            b.bot_resource_id for b in bots if b.bot_resource_type == "Namespace" and b.bot_resource_id
        }
        group_ids |= {t.group_id for t in self.deploy_tokens.values() if t.group_id}
        self.projects = dict(
            db.execute(select(Project.id, Project.full_path).where(Project.id.in_(project_ids))).all()
        )
        self.groups = dict(
            db.execute(
                select(Namespace.id, Namespace.full_path).where(
                    Namespace.id.in_(group_ids), Namespace.kind == "group"
                )
            ).all()
        )

    def user(self, user_id: int | None, recorded: str | None) -> Link | None:
        user = self.users.get(user_id or 0)
        if user is None:
            if not recorded:
                return None
            return Link("User", recorded if recorded.startswith("(") else f"@{recorded}", recorded)
        return Link("User", f"@{user.username}", user.username, f"/admin/users/{user.username}")

    def project(self, project_id: int | None, recorded: str | None) -> Link | None:
        path = self.projects.get(project_id or 0)
        if path is None:
            return Link("Project", recorded, recorded) if recorded else None
        return Link("Project", path, path, f"/{path}")

    def group(self, group_id: int | None, recorded: str | None) -> Link | None:
        path = self.groups.get(group_id or 0)
        if path is None:
            return Link("Group", recorded, recorded) if recorded else None
        return Link("Group", path, path, f"/groups/{path}")

    def token(self, token_id: int | None, recorded: str | None) -> Link:
        token = self.tokens.get(token_id or 0)
        if token is None:
            name = recorded or ""
            return Link("Access token", f"Access token '{name}' (#{token_id})", name)
        owner = self.users.get(token.user_id)
        kind = _token_kind(token, owner)
        href: str | None = None
        if owner is not None and owner.user_type == int(UserType.PROJECT_BOT):
            if owner.bot_resource_type == "Namespace":
                path = self.groups.get(owner.bot_resource_id or 0)
                href = None if path is None else f"/groups/{path}/-/settings/access_tokens"
            else:
                path = self.projects.get(owner.bot_resource_id or 0)
                href = None if path is None else f"/{path}/-/settings/access_tokens"
        elif owner is not None and owner.user_type == int(UserType.SERVICE_ACCOUNT):
            href = f"/admin/service_accounts/{owner.id}"
        elif owner is not None:
            href = f"/admin/users/{owner.username}"
        return Link(kind, f"{kind} '{token.name}' (#{token.id})", token.name, href)

    def deploy_token(self, token_id: int | None, recorded: str | None) -> Link:
        token = self.deploy_tokens.get(token_id or 0)
        if token is None:
            name = recorded or ""
            return Link("Deploy token", f"Deploy token '{name}' (#{token_id})", name)
        href: str | None = None
        if token.project_id and token.project_id in self.projects:
            href = f"/{self.projects[token.project_id]}/-/settings/deploy_tokens"
        elif token.group_id and token.group_id in self.groups:
            href = f"/groups/{self.groups[token.group_id]}/-/settings/deploy_tokens"
        return Link("Deploy token", f"Deploy token '{token.name}' (#{token.id})", token.name, href)

    def target(self, event: AuditEvent) -> Link | None:
        kind, target_id, recorded = event.target_type, event.target_id, event.target_details
        if kind is None:
            return None
        if kind == "User":
            return self.user(target_id, recorded)
        if kind == "Project":
            return self.project(target_id, recorded)
        if kind == "Group":
            return self.group(target_id, recorded)
        if kind == "PersonalAccessToken":
            return self.token(target_id, recorded)
        if kind == "DeployToken":
            return self.deploy_token(target_id, recorded)
        name = recorded or ""
        return Link(kind, name + (f" (#{target_id})" if target_id else ""), name)

    def entity(self, event: AuditEvent) -> Link | None:
        if event.entity_type == "User":
            return self.user(event.entity_id, event.entity_path)
        if event.entity_type == "Project":
            return self.project(event.entity_id, event.entity_path)
        if event.entity_type == "Group":
            return self.group(event.entity_id, event.entity_path)
        return None


def resolve(ctx: Ctx, events: Iterable[AuditEvent]) -> dict[int, Resolved]:
    """Each event's actor, target and entity by event id, for a page or a batch of events (a
    handful of queries whatever the number of events)."""
    rows = list(events)
    lookup = _Lookup(ctx, rows)
    return {
        e.id: Resolved(
            actor=lookup.user(e.author_id, e.author_name) if e.author_id else None,
            target=lookup.target(e),
            entity=lookup.entity(e),
        )
        for e in rows
    }
