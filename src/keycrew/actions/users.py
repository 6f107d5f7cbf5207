"""Use cases on users that cross packages: rejecting a sign-up deletes the account."""

from __future__ import annotations

from keycrew.actions.deletion import destroy_user
from keycrew.audit.events import Event
from keycrew.audit.service import Target, record
from keycrew.context import Ctx
from keycrew.errors import Conflict, Forbidden, Refused
from keycrew.identity import lifecycle
from keycrew.identity.models import User
from keycrew.identity.queries import lock_user
from keycrew.identity.types import UserState
from keycrew.identity.users import user_entity
from keycrew.records.ghost_migrations import pending_migration


def reject_user(ctx: Ctx, user: User) -> None:
    """Reject a user pending approval: the account is deleted with everything it owns.

    Callers render ``user`` before calling (it is gone afterwards). Raises Refused (not an admin),
    Conflict (the user is not pending approval).
    """
    if not ctx.actor.is_admin:
        raise Refused("You are not allowed to reject a user")
    user = lock_user(ctx, user)
    if user.state != UserState.BLOCKED_PENDING_APPROVAL:
        raise Conflict("User does not have a pending request")
    record(
        ctx,
        Event.USER_REJECTED,
        user_entity(user),
        target=Target("User", user.id, user.username),
    )
    destroy_user(ctx, user, hard_delete=True, skip_authorization=True)


PENDING_DELETION = "Error occurred. A user whose deletion is under way cannot be unblocked"


def unblock_user(ctx: Ctx, user: User) -> bool:
    """Unblock ``user`` (identity's rules), except a user whose deferred deletion is under way
    (blocked by DELETE /users/:id until the ghost-migration job deletes them): Forbidden."""
    if pending_migration(ctx, user.id) is not None:
        raise Forbidden(PENDING_DELETION)
    return lifecycle.unblock_user(ctx, user)
