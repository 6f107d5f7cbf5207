"""The instance always keeps an administrator: the last active one can never be blocked, banned,
deactivated, deleted or demoted, by anyone and through any adapter (API, web UI, CLI).

An active administrator is a human user (no bot or service account: they cannot sign in to the
web UI) with the admin flag, in the active state. Use cases that would take one away call
``keep_an_admin`` before they lock the user's row: it locks the rows of every active
administrator in id order, so that two admins removing each other at the same moment queue up on
PostgreSQL and the second finds itself the last (SQLite's writers already run one at a time).
"""

from __future__ import annotations

from sqlalchemy import select

from keycrew.context import Ctx
from keycrew.errors import Forbidden
from keycrew.identity.models import User
from keycrew.identity.types import UserState, UserType


def active_admin_ids(ctx: Ctx, *, lock: bool = False) -> list[int]:
    """The ids of the active human administrators, in id order; with ``lock``, their rows locked."""
    query = (
        select(User.id)
        .where(
            User.admin.is_(True),
            User.state == UserState.ACTIVE.value,
            User.user_type == int(UserType.HUMAN),
        )
        .order_by(User.id)
    )
    if lock:
        query = query.with_for_update()
    return list(ctx.db.scalars(query))


def keep_an_admin(ctx: Ctx, user: User, undone: str) -> None:
    """Forbidden ("The last administrator cannot be <undone>") when ``user`` is the only active
    administrator. Call it before locking ``user``'s row (see the module's docstring)."""
    if not user.admin:
        return
    admins = active_admin_ids(ctx, lock=True)
    if admins == [user.id]:
        raise Forbidden(f"The last administrator cannot be {undone}")
