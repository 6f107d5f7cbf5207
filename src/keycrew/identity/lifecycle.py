"""A user's state over time: block, unblock, ban, unban, deactivate, activate, approve, reject.

Each use case returns what GitLab's API answers for it (``True``, ``False`` or ``None``, which the
API renders as ``true``, ``false`` or ``null``), follows GitLab's state machine, refuses with its
wording, and writes one audit event per change in the caller's transaction.

An admin can neither block nor ban themself, and the last active administrator can be neither
blocked, banned nor deactivated (identity/admins.py), so that the instance always keeps one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Ctx
from keycrew.errors import Conflict, Forbidden, Refused
from keycrew.identity.admins import keep_an_admin
from keycrew.identity.models import User
from keycrew.identity.queries import lock_user
from keycrew.identity.types import UserState
from keycrew.identity.users import user_entity
from keycrew.instance.settings import instance_settings

# GitLab's deactivate_dormant_users_period default (and minimum): a user active more recently
# than this cannot be deactivated.
DORMANT_AFTER_DAYS = 90


def dormant_period(ctx: Ctx) -> int:
    """Days without activity after which a user may be deactivated (the instance's
    ``deactivate_dormant_users_period``, GitLab's default 90)."""
    return int(instance_settings(ctx).deactivate_dormant_users_period or DORMANT_AFTER_DAYS)


def _require_admin(ctx: Ctx, user: User, *, undone: str | None = None) -> User:
    """Admins only; returns ``user`` re-read under a row lock, so that two requests never both
    change the same state. With ``undone`` (the change takes ``user`` out of the active state),
    Forbidden when ``user`` is the last active administrator."""
    if not ctx.actor.is_admin:
        raise Forbidden()
    if undone is not None:
        keep_an_admin(ctx, user, undone)
    return lock_user(ctx, user)


def _change_state(ctx: Ctx, user: User, state: UserState, event: Event) -> None:
    old = user.state
    user.state = state.value
    user.updated_at = ctx.now()
    ctx.db.flush()
    record(
        ctx,
        event,
        user_entity(user),
        target=Target("User", user.id, user.username),
        **{"from": old, "to": state.value},
    )


def block_user(ctx: Ctx, user: User) -> bool | None:
    """Block ``user``: True when blocked now, None when already blocked (or banned, or pending).

    Raises Forbidden for non-admins, for blocking oneself and the last active administrator,
    Refused for internal users.
    """
    if ctx.actor.is_admin and user.id == ctx.actor.user_id:
        raise Forbidden("The API initiating user cannot be blocked by the API")
    user = _require_admin(ctx, user, undone="blocked")
    if user.is_blocked:
        return None
    if user.is_internal:
        raise Refused("An internal user cannot be blocked")
    _change_state(ctx, user, UserState.BLOCKED, Event.USER_BLOCKED)
    return True


def unblock_user(ctx: Ctx, user: User) -> bool:
    """Unblock ``user`` (blocked, banned or pending approval → active): False if already active.

    Raises Forbidden for non-admins and for deactivated users (they are activated instead).
    """
    user = _require_admin(ctx, user)
    if user.state == UserState.DEACTIVATED:
        raise Forbidden("Deactivated users cannot be unblocked by the API")
    if user.state == UserState.ACTIVE:
        return False
    _change_state(ctx, user, UserState.ACTIVE, Event.USER_UNBLOCKED)
    return True


def ban_user(ctx: Ctx, user: User) -> bool:
    """Ban an active user. Raises Forbidden (not an admin, oneself, the last active
    administrator), Refused (not active, or internal)."""
    if ctx.actor.is_admin and user.id == ctx.actor.user_id:
        # GitLab's ban service has no such rule, its block has (and its UI offers neither).
        raise Forbidden("The API initiating user cannot be banned by the API")
    user = _require_admin(ctx, user, undone="banned")
    if user.state != UserState.ACTIVE:
        raise Refused(f"You cannot ban {user.state} users.")
    if user.is_internal:
        raise Refused("An internal user cannot be banned")
    _change_state(ctx, user, UserState.BANNED, Event.USER_BANNED)
    return True


def unban_user(ctx: Ctx, user: User) -> bool:
    """Unban a banned user. Raises Forbidden (not an admin), Refused (not banned)."""
    user = _require_admin(ctx, user)
    if user.state != UserState.BANNED:
        raise Refused(f"You cannot unban {user.state} users.")
    _change_state(ctx, user, UserState.ACTIVE, Event.USER_UNBANNED)
    return True


def _last_active_at(user: User) -> dt.datetime | None:
    moments = [user.current_sign_in_at]
    if user.last_activity_on is not None:
        moments.append(dt.datetime.combine(user.last_activity_on, dt.time(), dt.UTC))
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def deactivate_user(ctx: Ctx, user: User) -> bool | None:
    """Deactivate a dormant active user: True, or None when already deactivated.

    Raises Forbidden (not an admin, the last active administrator); Refused for blocked users,
    internal users, and users active within the instance's ``deactivate_dormant_users_period``
    (90 days by default), as GitLab's API refuses them.
    """
    user = _require_admin(ctx, user, undone="deactivated")
    if user.state == UserState.DEACTIVATED:
        return None
    if user.is_blocked:
        raise Refused("Error occurred. A blocked user cannot be deactivated")
    if user.is_internal:
        raise Refused("Internal users cannot be deactivated")
    last_active = _last_active_at(user)
    period = dormant_period(ctx)
    if last_active is not None and last_active > ctx.now() - dt.timedelta(days=period):
        raise Refused(
            f"The user you are trying to deactivate has been active in the past {period} "
            "days and cannot be deactivated"
        )
    _change_state(ctx, user, UserState.DEACTIVATED, Event.USER_DEACTIVATED)
    return True


def activate_user(ctx: Ctx, user: User) -> bool:
    """Activate a deactivated user (True; also True when already active).

    Raises Forbidden (not an admin), Refused for blocked, banned or pending users.
    """
    user = _require_admin(ctx, user)
    if user.is_blocked:
        raise Refused("Error occurred. A blocked user must be unblocked to be activated")
    if user.state == UserState.ACTIVE:
        return True
    _change_state(ctx, user, UserState.ACTIVE, Event.USER_ACTIVATED)
    return True


def approve_user(ctx: Ctx, user: User) -> dict[str, Any]:
    """Approve a user pending approval; returns GitLab's service result.

    Raises Refused (not an admin), Conflict (the user is not pending approval).
    """
    if not ctx.actor.is_admin:
        raise Refused("You are not allowed to approve a user")
    user = lock_user(ctx, user)
    if user.state != UserState.BLOCKED_PENDING_APPROVAL:
        raise Conflict("The user you are trying to approve is not pending approval")
    _change_state(ctx, user, UserState.ACTIVE, Event.USER_APPROVED)
    return {"message": "Success", "http_status": "created", "status": "success"}
