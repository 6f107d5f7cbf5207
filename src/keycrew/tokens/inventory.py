"""Reads for the token tables of the web UI: the client IPs tokens were used from lately, and the
instance's credential inventory (every personal, service-account and bot token, with its owner),
filtered, sorted and paged in SQL for the Admin area's Credentials page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, func, or_, select, type_coerce
from sqlalchemy.orm import Session, aliased

from keycrew.db.text import contains_pattern, escape_like, lower_like
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Namespace, Project
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.usage import KEEP_DAYS, TokenUsageIp

RECENT_IPS = 5


def recent_ips(
    db: Session, token_ids: Iterable[int], today: dt.date, *, limit: int = RECENT_IPS, days: int = KEEP_DAYS
) -> dict[int, list[str]]:
    """token id → the distinct client IPs it was used from in the last ``days`` (the most recently
    seen first, at most ``limit`` each), for a page of tokens in one query."""
    ids = sorted(set(token_ids))
    if not ids:
        return {}
    ip = TokenUsageIp.__table__.c
    rank = (
        func.row_number()
        .over(partition_by=ip.token_id, order_by=(ip.last_seen_on.desc(), ip.ip.asc()))
        .label("rank")
    )
    since = today - dt.timedelta(days=days)
    ranked = (
        select(ip.token_id, ip.ip, ip.last_seen_on, rank)
        .where(ip.token_id.in_(ids), ip.last_seen_on >= since)
        .subquery()
    )
    rows = db.execute(
        select(ranked.c.token_id, ranked.c.ip)
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c.token_id, ranked.c.rank)
    )
    found: dict[int, list[str]] = {}
    for token_id, address in rows:
        found.setdefault(int(token_id), []).append(str(address))
    return found


# -- the credential inventory ---------------------------------------------------------------------

KINDS: dict[str, str] = {
    "personal": "Personal access token",
    "service_account": "Service account token",
    "project_bot": "Project access token",
    "group_bot": "Group access token",
}
SORT_COLUMNS = ("name", "created", "last_used", "expires")


@dataclass(frozen=True)
class CredentialFilters:
    """What the Credentials page asks for; every field optional."""

    search: str = ""  # the token's name, a substring
    owner: str = ""  # the owner's username or name, or the bot's project or group path
    kind: str = ""  # a key of KINDS
    state: str = ""  # "active" | "inactive"
    scope: str = ""
    expiring_within: int | None = None  # days
    sort: str = "created"  # one of SORT_COLUMNS
    descending: bool = True


@dataclass(frozen=True)
class Credential:
    """One row of the inventory: the token, its owner and, for a bot, the project or group."""

    token: PersonalAccessToken
    owner: User
    project: Project | None
    group: Namespace | None

    @property
    def kind(self) -> str:
        if self.owner.type is UserType.PROJECT_BOT:
            return "group_bot" if self.owner.bot_resource_type == "Namespace" else "project_bot"
        if self.owner.type is UserType.SERVICE_ACCOUNT:
            return "service_account"
        return "personal"

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]


_P = aliased(Project, name="bot_project")
_G = aliased(Namespace, name="bot_group")


def _kind_condition(kind: str) -> ColumnElement[bool] | None:
    bot = User.user_type == int(UserType.PROJECT_BOT)
    if kind == "project_bot":
        return and_(bot, User.bot_resource_type == "Project")
    if kind == "group_bot":
        return and_(bot, User.bot_resource_type == "Namespace")
    if kind == "service_account":
        return User.user_type == int(UserType.SERVICE_ACCOUNT)
    if kind == "personal":
        return User.user_type.not_in([int(UserType.PROJECT_BOT), int(UserType.SERVICE_ACCOUNT)])
    return None


def _order(filters: CredentialFilters) -> list[Any]:
    pat = PersonalAccessToken
    column: Any = {
        "name": func.lower(pat.name),
        "last_used": pat.last_used_at,
        "expires": pat.expires_at,
    }.get(filters.sort, pat.created_at)
    if filters.sort == "expires":  # never expiring: the farthest of all
        ordered = column.desc().nulls_first() if filters.descending else column.asc().nulls_last()
    elif filters.sort == "last_used":  # never used: the oldest of all
        ordered = column.desc().nulls_last() if filters.descending else column.asc().nulls_first()
    else:
        ordered = column.desc() if filters.descending else column.asc()
    return [ordered, pat.id.desc() if filters.descending else pat.id.asc()]


def credentials_query(filters: CredentialFilters, today: dt.date) -> Select[Any]:
    """Every token of the instance but impersonation tokens (which belong to the admins who made
    them), with its owner and its bot's project or group, filtered and ordered in SQL."""
    pat = PersonalAccessToken
    query = (
        select(pat)
        .add_columns(User, _P, _G)
        .join(User, User.id == pat.user_id)
        .outerjoin(
            _P,
            and_(User.bot_resource_type == "Project", _P.id == User.bot_resource_id),
        )
        .outerjoin(
            _G,
            and_(User.bot_resource_type == "Namespace", _G.id == User.bot_resource_id),
        )
        .where(pat.impersonation.is_(False))
    )
    live = and_(pat.revoked.is_(False), or_(pat.expires_at.is_(None), pat.expires_at > today))
    if filters.state == "active":
        query = query.where(live)
    elif filters.state == "inactive":
        query = query.where(~live)
    if filters.search:
        query = query.where(lower_like(pat.name, contains_pattern(filters.search)))
    if filters.owner:
        pattern = contains_pattern(filters.owner.lstrip("@"))
        query = query.where(
            or_(
                lower_like(User.username, pattern),
                lower_like(User.name, pattern),
                lower_like(_P.full_path, pattern),
                lower_like(_G.full_path, pattern),
            )
        )
    kind = _kind_condition(filters.kind)
    if kind is not None:
        query = query.where(kind)
    if filters.scope:
        # Scopes are kept as JSON text: the scope as a whole JSON string, quotes included.
        scopes = type_coerce(pat.scopes, Text)
        query = query.where(scopes.like(f'%"{escape_like(filters.scope)}"%', escape="\\"))
    if filters.expiring_within is not None:
        query = query.where(
            pat.expires_at.is_not(None),
            pat.expires_at > today,
            pat.expires_at <= today + dt.timedelta(days=filters.expiring_within),
        )
    return query.order_by(*_order(filters))


def count_credentials(db: Session, filters: CredentialFilters, today: dt.date) -> int:
    counted = credentials_query(filters, today).order_by(None).with_only_columns(PersonalAccessToken.id)
    return int(db.scalar(select(func.count()).select_from(counted.subquery())) or 0)


def credentials_page(
    db: Session, filters: CredentialFilters, today: dt.date, *, limit: int, offset: int
) -> list[Credential]:
    rows = db.execute(credentials_query(filters, today).limit(limit).offset(offset))
    return [Credential(token, owner, project, group) for token, owner, project, group in rows]
