"""The token-hygiene report: the handbook's token guidelines as read-only checks.

Every check looks at live tokens (not revoked, not expired) and yields findings; each finding names
the check, its severity, the token (id, name, kind), its owner (username, and the project or group
of a bot or deploy token) and a suggested fix. Nothing here writes: adapters (``keycrew report
tokens``, /admin/token_hygiene) run ``token_hygiene`` in a read-only session.

The rules, with their numbers as module constants:
- ``no_expiry``: a token without an expiry date.
- ``expiring_unnotified``: a token expiring within 7 days whose expiry e-mail reaches nobody, by
  the notifier's own rule (``keycrew.notifications.recipients``): a bot token whose project has no
  direct Owner or Maintainer / whose group has no direct Owner who is an active person with a
  mailbox and mail not disabled; a personal or service-account token whose owner is not such.
- ``over_scoped``: a token used at all, created more than 7 days ago, that holds a scope wider than
  the least scopes its recorded requests needed (``read_api`` for API reads, ``api`` for API writes,
  ``read_repository``/``write_repository`` for git, ``read_registry``/``write_registry`` for the
  container registry, ``sudo``). Scopes whose use is not recorded (admin_mode, self_rotate,
  runners, k8s_proxy, ai_features, virtual registries, read_service_ping) are never judged.
- ``shared``: a token used from more than 5 distinct client IPs in the last 30 days.
- ``automation_like``: a human's personal token used in at least 18 distinct UTC hours of one day,
  or for more than 5,000 requests in one day, in the last 30 days.
- ``bot_owner``: a project/group bot or service account with the Owner role on a project or group.
- ``unused``: a token created more than 30 days ago and not used for 30 days (or never).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from keycrew.access.levels import AccessLevel
from keycrew.access.models import Member
from keycrew.context import Ctx
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Namespace, Project
from keycrew.notifications.recipients import bot_token_recipients, owner_recipients
from keycrew.tokens.models import DeployToken, PersonalAccessToken
from keycrew.tokens.scopes import Scope
from keycrew.tokens.usage import TokenUsageDay, TokenUsageIp, TokenUsageScope

EXPIRING_WITHIN_DAYS = 7
OVER_SCOPED_MIN_AGE_DAYS = 7
SHARED_WINDOW_DAYS = 30
SHARED_MAX_IPS = 5
AUTOMATION_WINDOW_DAYS = 30
AUTOMATION_HOURS = 18
AUTOMATION_REQUESTS = 5000
UNUSED_DAYS = 30
MAX_LIFETIME_DAYS = 365

HIGH = "high"
MEDIUM = "medium"
LOW = "low"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: str
    rule: str


CHECKS: dict[str, Check] = {
    c.id: c
    for c in (
        Check("no_expiry", "Tokens without an expiry date", HIGH, "A live token with no expiry date."),
        Check(
            "expiring_unnotified",
            "Tokens expiring with nobody to notify",
            HIGH,
            f"Expires within {EXPIRING_WITHIN_DAYS} days and its expiry e-mail reaches no active person.",
        ),
        Check(
            "over_scoped",
            "Tokens with more scopes than they use",
            MEDIUM,
            f"Used, older than {OVER_SCOPED_MIN_AGE_DAYS} days, with a scope wider than its requests needed.",
        ),
        Check(
            "shared",
            "Tokens used from many IP addresses",
            MEDIUM,
            f"Used from more than {SHARED_MAX_IPS} client IPs in {SHARED_WINDOW_DAYS} days: likely shared.",
        ),
        Check(
            "automation_like",
            "Personal tokens used like automation",
            LOW,
            f"A human's token used in {AUTOMATION_HOURS}+ hours of a day or for more than "
            f"{AUTOMATION_REQUESTS} requests in a day (last {AUTOMATION_WINDOW_DAYS} days).",
        ),
        Check("bot_owner", "Bots with the Owner role", HIGH, "A bot or service account is an Owner."),
        Check(
            "unused",
            "Tokens unused for 30 days",
            LOW,
            f"Created more than {UNUSED_DAYS} days ago and not used for {UNUSED_DAYS} days.",
        ),
    )
}

# Scopes whose use the usage writer records, and the narrower scopes each one covers.
TRACKED = frozenset(
    {
        Scope.API,
        Scope.READ_API,
        Scope.READ_USER,
        Scope.READ_REPOSITORY,
        Scope.WRITE_REPOSITORY,
        Scope.READ_REGISTRY,
        Scope.WRITE_REGISTRY,
        Scope.SUDO,
    }
)
_COVERS: dict[str, frozenset[str]] = {
    Scope.API: frozenset(
        {
            Scope.READ_API,
            Scope.READ_USER,
            Scope.READ_REPOSITORY,
            Scope.WRITE_REPOSITORY,
            Scope.READ_REGISTRY,
            Scope.WRITE_REGISTRY,
        }
    ),
    Scope.READ_API: frozenset({Scope.READ_USER}),
    Scope.WRITE_REPOSITORY: frozenset({Scope.READ_REPOSITORY}),
}


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    token_id: int | None
    token_name: str | None
    token_kind: str  # personal, impersonation, project, group, service_account, deploy
    owner_id: int | None
    owner_username: str | None
    resource: str | None  # the project's or group's full path (bots, deploy tokens)
    resource_kind: str | None  # "project" or "group"
    detail: str
    fix: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FIELDS = tuple(Finding.__dataclass_fields__)


@dataclass
class _Token:
    id: int
    name: str
    kind: str
    scopes: list[str]
    expires_at: dt.date | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    owner: User | None
    resource: str | None
    resource_kind: str | None
    resource_id: int | None
    deploy: bool = False


def least_scopes(exercised: Iterable[str], *, bot: bool) -> list[str]:
    """The narrowest set of scopes that allows every exercised scope (bots cannot hold read_user)."""
    needed = {Scope.READ_API.value if bot and s == Scope.READ_USER else str(s) for s in exercised}
    kept = {s for s in needed if not any(s in _COVERS.get(other, ()) for other in needed if other != s)}
    return sorted(kept)


def token_hygiene(ctx: Ctx, checks: Iterable[str] | None = None) -> list[Finding]:
    """Every finding of the ``checks`` (all when None), in CHECKS order, then by token id.
    Reads only (the caller's session may be read-only)."""
    chosen = None if checks is None else set(checks)
    wanted = [c for c in CHECKS if chosen is None or c in chosen]
    tokens = _live_tokens(ctx.db, ctx.today())
    findings: list[Finding] = []
    for check in wanted:
        findings.extend(_RUNNERS[check](ctx, tokens))
    return findings


def to_csv(findings: Iterable[Finding]) -> str:
    """The findings as CSV (a header row, then one row per finding; fields as ``FIELDS``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for finding in findings:
        writer.writerow(["" if v is None else _csv_safe(str(v)) for v in finding.as_dict().values()])
    return out.getvalue()


def _csv_safe(value: str) -> str:
    # Token and user names are chosen by users: a cell starting with = + - @ must not become a
    # formula in a spreadsheet (OWASP CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    result = dict.fromkeys(CHECKS, 0)
    for finding in findings:
        result[finding.check] += 1
    return result


# --- loading ---------------------------------------------------------------------------------------


def _live_tokens(db: Session, today: dt.date) -> list[_Token]:
    projects: dict[int, Project] = {}
    groups: dict[int, Namespace] = {}
    result: list[_Token] = []
    rows = db.execute(
        select(PersonalAccessToken, User)
        .join(User, User.id == PersonalAccessToken.user_id)
        .where(
            PersonalAccessToken.revoked.is_(False),
            (PersonalAccessToken.expires_at.is_(None)) | (PersonalAccessToken.expires_at > today),
        )
        .order_by(PersonalAccessToken.id)
    )
    for token, owner in rows:
        resource = resource_kind = None
        resource_id = None
        if owner.user_type == UserType.PROJECT_BOT and owner.bot_resource_id is not None:
            resource_id = owner.bot_resource_id
            if owner.bot_resource_type == "Project":
                project = projects.get(resource_id) or db.get(Project, resource_id)
                if project is not None:
                    projects[resource_id] = project
                    resource, resource_kind = project.full_path, "project"
            else:
                group = groups.get(resource_id) or db.get(Namespace, resource_id)
                if group is not None:
                    groups[resource_id] = group
                    resource, resource_kind = group.full_path, "group"
        result.append(
            _Token(
                token.id,
                token.name,
                _kind(token, owner),
                list(token.scopes),
                token.expires_at,
                token.created_at,
                token.last_used_at,
                owner,
                resource,
                resource_kind,
                resource_id,
            )
        )
    deploy = db.scalars(
        select(DeployToken)
        .where(
            DeployToken.revoked.is_(False),
            (DeployToken.expires_at.is_(None)) | (DeployToken.expires_at > today),
        )
        .order_by(DeployToken.id)
    )
    for dtoken in deploy:
        if dtoken.project_id is not None:
            project = projects.get(dtoken.project_id) or db.get(Project, dtoken.project_id)
            path, rkind, rid = (project.full_path if project else None), "project", dtoken.project_id
        else:
            gid = dtoken.group_id or 0
            group = groups.get(gid) or db.get(Namespace, gid)
            path, rkind, rid = (group.full_path if group else None), "group", gid
        result.append(
            _Token(
                dtoken.id,
                dtoken.name,
                "deploy",
                list(dtoken.scopes),
                dtoken.expires_at,
                dtoken.created_at,
                dtoken.last_used_at,
                None,
                path,
                rkind,
                rid,
                deploy=True,
            )
        )
    return result


def _kind(token: PersonalAccessToken, owner: User) -> str:
    if token.impersonation:
        return "impersonation"
    if owner.user_type == UserType.SERVICE_ACCOUNT:
        return "service_account"
    if owner.user_type == UserType.PROJECT_BOT:
        return "group" if owner.bot_resource_type == "Namespace" else "project"
    return "personal"


def _finding(check: str, token: _Token, detail: str, fix: str) -> Finding:
    return Finding(
        check,
        CHECKS[check].severity,
        token.id,
        token.name,
        token.kind,
        token.owner.id if token.owner else None,
        token.owner.username if token.owner else None,
        token.resource,
        token.resource_kind,
        detail,
        fix,
    )


# --- the checks ------------------------------------------------------------------------------------


def _no_expiry(ctx: Ctx, tokens: list[_Token]) -> Iterable[Finding]:
    for token in tokens:
        if token.expires_at is None:
            yield _finding(
                "no_expiry",
                token,
                "Never expires.",
                f"Set an expiry date of at most {MAX_LIFETIME_DAYS} days (rotate the token to give it one).",
            )


def _expiring_unnotified(ctx: Ctx, tokens: list[_Token]) -> Iterable[Finding]:
    today = ctx.today()
    limit = today + dt.timedelta(days=EXPIRING_WITHIN_DAYS)
    for token in tokens:
        owner = token.owner
        if token.deploy or owner is None or token.expires_at is None or token.expires_at > limit:
            continue
        days = (token.expires_at - today).days
        when = f"Expires on {token.expires_at.isoformat()} (in {days} day{'s' if days != 1 else ''})"
        if owner.user_type == UserType.PROJECT_BOT:
            found = bot_token_recipients(ctx, owner)
            if found is not None and found.users:
                continue
            who = "active Maintainer or Owner" if token.resource_kind == "project" else "active Owner"
            yield _finding(
                "expiring_unnotified",
                token,
                f"{when}; the {token.resource_kind} {token.resource} has no {who} who receives e-mail.",
                f"Add an {who} to {token.resource} (with e-mail on), or rotate the token now if it is "
                "still needed.",
            )
        elif not owner_recipients(ctx, owner):
            yield _finding(
                "expiring_unnotified",
                token,
                f"{when}; its owner {owner.username} ({owner.state}) receives no e-mail.",
                "Rotate the token to an active owner or give the account a mailbox, or let it expire.",
            )


def _over_scoped(ctx: Ctx, tokens: list[_Token]) -> Iterable[Finding]:
    db, now = ctx.db, ctx.now()
    exercised: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for token_id, scope, method in db.execute(
        select(TokenUsageScope.token_id, TokenUsageScope.scope, TokenUsageScope.method)
    ):
        exercised[token_id][scope].add(method)
    oldest = now - dt.timedelta(days=OVER_SCOPED_MIN_AGE_DAYS)
    for token in tokens:
        uses = exercised.get(token.id)
        if token.deploy or not uses or token.created_at > oldest:
            continue
        bot = token.kind in ("project", "group")
        needed = least_scopes(uses, bot=bot)
        granted = set(token.scopes)
        # A tracked scope outside the least set is either never used or wider than needed (api
        # where read_api would do).
        if not (granted & TRACKED) - set(needed):
            continue
        untracked = sorted(granted - TRACKED)
        suggested = needed + [s for s in untracked if s not in needed]
        seen = "; ".join(f"{scope} ({', '.join(sorted(methods))})" for scope, methods in sorted(uses.items()))
        yield _finding(
            "over_scoped",
            token,
            f"Holds {', '.join(sorted(granted))}; requests seen needed only: {seen}.",
            f"Rotate to {', '.join(suggested)}.",
        )


def _shared(ctx: Ctx, tokens: list[_Token]) -> Iterable[Finding]:
    db, now = ctx.db, ctx.now()
    since = now.date() - dt.timedelta(days=SHARED_WINDOW_DAYS)
    ips: dict[int, int] = dict(
        db.execute(
            select(TokenUsageIp.token_id, func.count())
            .where(TokenUsageIp.last_seen_on > since)
            .group_by(TokenUsageIp.token_id)
            .having(func.count() > SHARED_MAX_IPS)
        ).all()
    )
    for token in tokens:
        count = ips.get(token.id)
        if count and not token.deploy:
            yield _finding(
                "shared",
                token,
                f"Used from {count} distinct IP addresses in the last {SHARED_WINDOW_DAYS} days.",
                "Give each automation its own token (a service account or project access token each), "
                "then revoke this one.",
            )


def _automation_like(ctx: Ctx, tokens: list[_Token]) -> Iterable[Finding]:
    db, now = ctx.db, ctx.now()
    since = now.date() - dt.timedelta(days=AUTOMATION_WINDOW_DAYS)
    humans = {t.id: t for t in tokens if t.kind == "personal" and t.owner is not None and t.owner.is_human}
    if not humans:
        return
    busiest: dict[int, tuple[int, int]] = {}
    for token_id, hours, requests in db.execute(
        select(TokenUsageDay.token_id, TokenUsageDay.hours, TokenUsageDay.requests).where(
            TokenUsageDay.day > since
        )
    ):
        if token_id not in humans:
            continue
        best_hours, best_requests = busiest.get(token_id, (0, 0))
        busiest[token_id] = (max(best_hours, hours.bit_count()), max(best_requests, requests))
    for token_id, (hours, requests) in sorted(busiest.items()):
        if hours >= AUTOMATION_HOURS or requests > AUTOMATION_REQUESTS:
            yield _finding(
                "automation_like",
                humans[token_id],
                f"Busiest day of the last {AUTOMATION_WINDOW_DAYS}: used in {hours} of 24 hours; "
                f"most requests in a day: {requests}.",
                "Move the automation to a service account or a project/group access token.",
            )


def _bot_owner(ctx: Ctx, tokens: list[_Token]) -> Iterable[Finding]:
    db, now = ctx.db, ctx.now()
    by_owner: dict[int, _Token] = {}
    for token in tokens:
        if token.owner is not None and token.owner.id not in by_owner:
            by_owner[token.owner.id] = token
    rows = db.execute(
        select(Member, User)
        .join(User, User.id == Member.user_id)
        .where(
            Member.access_level >= AccessLevel.OWNER,
            User.user_type.in_([UserType.PROJECT_BOT, UserType.SERVICE_ACCOUNT]),
        )
        .order_by(User.id, Member.id)
    )
    for member, bot in rows:
        if member.source_type == "Project":
            project = db.get(Project, member.source_id)
            where = f"project {project.full_path}" if project else f"project {member.source_id}"
        else:
            group = db.get(Namespace, member.source_id)
            where = f"group {group.full_path}" if group else f"group {member.source_id}"
        kind = "service_account" if bot.user_type == UserType.SERVICE_ACCOUNT else "project"
        token = by_owner.get(bot.id) or _Token(0, "", kind, [], None, now, None, bot, None, None, None)
        finding = _finding(
            "bot_owner",
            token,
            f"{bot.username} is an Owner of the {where}.",
            "Lower the role to Maintainer or below (bots rarely need Owner).",
        )
        if token.id == 0:
            finding = Finding(**{**finding.as_dict(), "token_id": None, "token_name": None})
        yield finding


def _unused(ctx: Ctx, tokens: list[_Token]) -> Iterable[Finding]:
    cutoff = ctx.now() - dt.timedelta(days=UNUSED_DAYS)
    for token in tokens:
        if token.created_at > cutoff:
            continue
        if token.last_used_at is not None and token.last_used_at > cutoff:
            continue
        last = token.last_used_at.date().isoformat() if token.last_used_at else "never"
        yield _finding(
            "unused",
            token,
            f"Created {token.created_at.date().isoformat()}; last used: {last}.",
            "Revoke the token if nothing needs it.",
        )


_RUNNERS = {
    "no_expiry": _no_expiry,
    "expiring_unnotified": _expiring_unnotified,
    "over_scoped": _over_scoped,
    "shared": _shared,
    "automation_like": _automation_like,
    "bot_owner": _bot_owner,
    "unused": _unused,
}
