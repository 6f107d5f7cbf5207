"""GitLab's usage rules for access tokens: last_used_at at most every 10 minutes, the 5 newest
client IPs (an unseen IP at most every minute), and the owner's last_activity_on (the dormant-user
clock) at most daily. Writing happens off the request path (``keycrew.infra.usage``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, sessionmaker

from keycrew.clock import Clock
from keycrew.identity.models import User
from keycrew.infra.usage import UsagePolicy, UsageRecorder
from keycrew.tokens.models import PersonalAccessToken

LAST_USED_EVERY = dt.timedelta(minutes=10)
IPS_EVERY = dt.timedelta(minutes=1)
KEEP_IPS = 5
POLICY = UsagePolicy(used_every=LAST_USED_EVERY, ips_every=IPS_EVERY)


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


def token_usage_recorder(
    sessions: sessionmaker[Session], clock: Clock, interval: float = 1.0
) -> UsageRecorder:
    """The recorder a runtime starts: notes uses in memory, writes them with ``write_token_use``."""
    return UsageRecorder(sessions, clock, write_token_use, POLICY, interval)


def _locked(query: Select[Any]) -> Select[Any]:
    # Row lock on PostgreSQL (SQLite ignores it: its writers already run one at a time).
    return query.with_for_update().execution_options(populate_existing=True)
