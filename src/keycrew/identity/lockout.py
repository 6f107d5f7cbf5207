"""GitLab's lockout rule: after ``max_login_attempts`` wrong passwords an account is locked for
``failed_login_attempts_unlock_period_in_minutes``, then opens by itself."""

from __future__ import annotations

import datetime as dt

from keycrew.identity.models import User
from keycrew.instance.models import InstanceSettings


def locked_until(user: User, settings: InstanceSettings) -> dt.datetime | None:
    """When the lock on ``user`` opens by itself, or None when the account is not locked."""
    if user.locked_at is None:
        return None
    return user.locked_at + dt.timedelta(minutes=settings.failed_login_attempts_unlock_period_in_minutes)


def is_locked(user: User, settings: InstanceSettings, now: dt.datetime) -> bool:
    until = locked_until(user, settings)
    return until is not None and now < until
