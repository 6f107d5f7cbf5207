"""Service accounts and the license: how many a plan allows (Free none, Premium one per paid seat,
Ultimate unlimited)."""

from __future__ import annotations

from sqlalchemy import func, select

from keycrew.context import Ctx
from keycrew.errors import Forbidden
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.instance.settings import Plan, instance_settings

NO_SEATS = "No more seats are available to create Service Account User"


def service_account_limit(plan: str, seats: int | None) -> int | None:
    """How many service accounts a license allows; None means no limit.

    Free: none. Premium: one per paid seat (a license without a seat count has unlimited seats,
    hence unlimited accounts). Ultimate: unlimited.
    """
    if plan == Plan.ULTIMATE:
        return None
    if plan == Plan.PREMIUM:
        return seats
    return 0


def may_create_service_account(plan: str, seats: int | None, existing: int) -> bool:
    """Whether one more service account fits the license, with ``existing`` ones on the instance."""
    limit = service_account_limit(plan, seats)
    return limit is None or existing < limit


def service_accounts_count(ctx: Ctx) -> int:
    query = select(func.count(User.id)).where(User.user_type == int(UserType.SERVICE_ACCOUNT))
    return int(ctx.db.scalar(query) or 0)


def check_service_account_seat(ctx: Ctx) -> None:
    """Forbidden (GitLab's words) when the license has no room for one more service account."""
    settings = instance_settings(ctx)
    if not may_create_service_account(settings.plan, settings.seats, service_accounts_count(ctx)):
        raise Forbidden(NO_SEATS)
