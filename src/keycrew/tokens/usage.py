"""GitLab's usage rules for access tokens: last_used_at at most every 10 minutes, the 5 newest
client IPs (an unseen IP at most every minute), and the owner's last_activity_on (the dormant-user
clock) at most daily. Writing happens off the request path (``keycrew.infra.usage``).

Beyond GitLab, for the token-hygiene report: per token, the (scope, HTTP method) pairs it exercised
(the least scope each request needed: ``read_api`` for a GET on the API, ``api`` for a write,
``read_repository``/``write_repository`` for git, ``read_registry``/``write_registry`` for the
container registry, ``sudo`` for Sudo), its distinct client IPs per day and, per UTC day, the hours
it was used in and how many requests it made. Days and IPs older than ``KEEP_DAYS`` are pruned.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, Select, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from keycrew.clock import Clock
from keycrew.db.base import Base, UTCDateTime
from keycrew.identity.models import User
from keycrew.infra.usage import UsagePolicy, UsageRecorder, UseFacts
from keycrew.tokens.models import PersonalAccessToken

LAST_USED_EVERY = dt.timedelta(minutes=10)
IPS_EVERY = dt.timedelta(minutes=1)
KEEP_IPS = 5
POLICY = UsagePolicy(used_every=LAST_USED_EVERY, ips_every=IPS_EVERY)
# How long the per-day facts (hours, request counts, client IPs) are kept.
KEEP_DAYS = 30


class TokenUsageScope(Base):
    """A (scope, HTTP method) pair a token exercised: the least scope one of its requests needed."""

    __tablename__ = "token_usage_scopes"

    token_id: Mapped[int] = mapped_column(
        ForeignKey("personal_access_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    method: Mapped[str] = mapped_column(String(16), primary_key=True)
    first_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class TokenUsageIp(Base):
    """A client IP a token was used from, and the last day it was (distinct IPs over 30 days)."""

    __tablename__ = "token_usage_ips"

    token_id: Mapped[int] = mapped_column(
        ForeignKey("personal_access_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    ip: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seen_on: Mapped[dt.date] = mapped_column(Date)


class TokenUsageDay(Base):
    """One UTC day of a token's use: a bit per hour it was used in (bit 0 = 00:00-00:59) and how
    many requests it made (counted in memory, written with its other writes)."""

    __tablename__ = "token_usage_days"

    token_id: Mapped[int] = mapped_column(
        ForeignKey("personal_access_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    hours: Mapped[int] = mapped_column(Integer, default=0)
    requests: Mapped[int] = mapped_column(Integer, default=0)


def write_token_use(db: Session, token_id: int, at: dt.datetime, ips: list[str]) -> list[str] | None:
    """Record one token's use; returns its stored IPs, or None when the token or owner is gone.

    Locks in the order every use case does (the owner's row, then the token's): a deletion
    holds the user's row lock while it deletes the tokens, and writing the token first here
    would deadlock with it on PostgreSQL.
    """
    user_id = db.scalar(select(PersonalAccessToken.user_id).where(PersonalAccessToken.id == token_id))
    if user_id is None:
        return None
    owner = db.scalars(_locked(select(User).where(User.id == user_id))).first()
    token = db.scalars(_locked(select(PersonalAccessToken).where(PersonalAccessToken.id == token_id))).first()
    if owner is None or token is None:
        return None
    if token.last_used_at is None or at - token.last_used_at >= LAST_USED_EVERY or ips:
        token.last_used_at = at
    merged = list(token.last_used_ips or [])
    for ip in ips:
        if ip in merged:
            merged.remove(ip)
        merged.append(ip)
    token.last_used_ips = merged[-KEEP_IPS:]
    if owner.last_activity_on != at.date():
        owner.last_activity_on = at.date()
    return list(token.last_used_ips)


def write_token_facts(db: Session, token_id: int, facts: UseFacts) -> None:
    """Record a token's hygiene facts, in the transaction of ``write_token_use`` (which holds the
    token's row lock, so two nodes never insert the same key at once)."""
    if facts.uses:
        known = set(
            db.execute(
                select(TokenUsageScope.scope, TokenUsageScope.method).where(
                    TokenUsageScope.token_id == token_id
                )
            )
        )
        for scope, method in dict.fromkeys(facts.uses):
            if (scope, method) not in known:
                db.add(TokenUsageScope(token_id=token_id, scope=scope, method=method, first_seen_at=facts.at))
    for day, day_ips in sorted(facts.ips.items()):
        stored = {
            row.ip: row
            for row in db.scalars(
                select(TokenUsageIp).where(TokenUsageIp.token_id == token_id, TokenUsageIp.ip.in_(day_ips))
            )
        }
        for ip in dict.fromkeys(day_ips):
            seen = stored.get(ip)
            if seen is None:
                stored[ip] = TokenUsageIp(token_id=token_id, ip=ip[:64], last_seen_on=day)
                db.add(stored[ip])
            elif seen.last_seen_on < day:
                seen.last_seen_on = day
    if facts.days:
        rows = {
            row.day: row
            for row in db.scalars(
                select(TokenUsageDay).where(
                    TokenUsageDay.token_id == token_id, TokenUsageDay.day.in_(list(facts.days))
                )
            )
        }
        new_day = False
        for day, (hours, count) in facts.days.items():
            row = rows.get(day)
            if row is None:
                db.add(TokenUsageDay(token_id=token_id, day=day, hours=hours, requests=count))
                new_day = True
            else:
                row.hours = row.hours | hours
                row.requests = row.requests + count
        if new_day:  # once a day per token: forget what is older than the report looks at
            oldest = max(facts.days) - dt.timedelta(days=KEEP_DAYS)
            db.execute(
                delete(TokenUsageDay).where(TokenUsageDay.token_id == token_id, TokenUsageDay.day < oldest)
            )
            db.execute(
                delete(TokenUsageIp).where(
                    TokenUsageIp.token_id == token_id, TokenUsageIp.last_seen_on < oldest
                )
            )


def token_usage_recorder(
    sessions: sessionmaker[Session], clock: Clock, interval: float = 1.0
) -> UsageRecorder:
    """The recorder a runtime starts: notes uses in memory, writes them with ``write_token_use``
    and ``write_token_facts``."""
    return UsageRecorder(sessions, clock, write_token_use, POLICY, interval, write_token_facts)


def _locked(query: Select[Any]) -> Select[Any]:
    # Row lock on PostgreSQL (SQLite ignores it: its writers already run one at a time).
    return query.with_for_update().execution_options(populate_existing=True)
