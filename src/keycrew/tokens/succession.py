"""Which inactive tokens were rotated, and by which token: for the "Rotated — replaced by" wording."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from keycrew.context import Ctx
from keycrew.tokens.expiry import ROTATION_DEFAULT_DAYS, expiry_policy
from keycrew.tokens.models import PersonalAccessToken


def successors(ctx: Ctx, tokens: Iterable[PersonalAccessToken]) -> dict[int, PersonalAccessToken]:
    """Each given token's successor (the token whose ``previous_personal_access_token_id`` names it),
    keyed by the rotated token's id; tokens revoked without a successor are absent."""
    ids = [token.id for token in tokens]
    if not ids:
        return {}
    children = ctx.db.scalars(
        select(PersonalAccessToken).where(PersonalAccessToken.previous_personal_access_token_id.in_(ids))
    )
    return {
        child.previous_personal_access_token_id: child
        for child in children
        if child.previous_personal_access_token_id
    }


@dataclass(frozen=True)
class RotationChoices:
    """What a rotate form offers: the API's default new expiry (a week ahead, as POST .../rotate
    without ``expires_at``), and the latest date the instance accepts."""

    default: dt.date
    earliest: dt.date
    latest: dt.date
    required: bool


def rotation_choices(ctx: Ctx) -> RotationChoices:
    policy = expiry_policy(ctx)
    today = ctx.today()
    return RotationChoices(
        default=today + dt.timedelta(days=ROTATION_DEFAULT_DAYS),
        earliest=today + dt.timedelta(days=1),
        latest=policy.latest,
        required=policy.required,
    )
