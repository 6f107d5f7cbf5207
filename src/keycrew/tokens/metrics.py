"""Live tokens by kind and by how soon they expire: plain numbers for the metrics endpoint.

One grouped query over personal access tokens (personal, impersonation, resource bots' tokens)
and deploy tokens; revoked tokens are left out. A token dies at 00:00 UTC on its expiry date, so
one whose date is today or earlier is "expired".
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, Date, SQLColumnExpression, case, func, literal, select, union_all
from sqlalchemy.orm import Session

from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.tokens.models import DeployToken, PersonalAccessToken

KINDS = ("personal", "impersonation", "resource", "deploy")
BUCKETS = ("expired", "within_7_days", "within_30_days", "within_60_days", "later", "never")


def _bucket(expires_at: SQLColumnExpression[dt.date | None], today: dt.date) -> ColumnElement[str]:
    def day(days: int) -> ColumnElement[dt.date]:
        return literal(today + dt.timedelta(days=days), Date)

    return case(
        (expires_at.is_(None), "never"),
        (expires_at <= day(0), "expired"),
        (expires_at <= day(7), "within_7_days"),
        (expires_at <= day(30), "within_30_days"),
        (expires_at <= day(60), "within_60_days"),
        else_="later",
    )


def tokens_by_expiry(db: Session, today: dt.date) -> dict[tuple[str, str], int]:
    """{(kind, bucket): live tokens}, every kind and bucket present (0 when none)."""
    personal_kind = case(
        (PersonalAccessToken.impersonation.is_(True), "impersonation"),
        (User.user_type == int(UserType.PROJECT_BOT), "resource"),
        else_="personal",
    )
    personal = (
        select(
            personal_kind.label("kind"),
            _bucket(PersonalAccessToken.expires_at, today).label("bucket"),
        )
        .join(User, User.id == PersonalAccessToken.user_id)
        .where(PersonalAccessToken.revoked.is_(False))
    )
    deploy = select(
        literal("deploy").label("kind"),
        _bucket(DeployToken.expires_at, today).label("bucket"),
    ).where(DeployToken.revoked.is_(False))
    rows = union_all(personal, deploy).subquery()
    query = select(rows.c.kind, rows.c.bucket, func.count()).group_by(rows.c.kind, rows.c.bucket)
    counts = {(kind, bucket): 0 for kind in KINDS for bucket in BUCKETS}
    for kind, bucket, count in db.execute(query):
        counts[(str(kind), str(bucket))] = int(count)
    return counts
