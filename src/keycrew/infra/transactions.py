"""Side effects tied to a database transaction, and session housekeeping after bulk statements.

Work outside the database (creating or removing a repository or package files) is tied to the
transaction that decides it: ``on_rollback`` undoes what was made for a transaction that does not
commit, ``after_commit`` does what must wait until the change is durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger("keycrew.transactions")

_COMMIT_KEY = "keycrew.after_commit"
_ROLLBACK_KEY = "keycrew.on_rollback"


def after_commit(db: Session, action: Callable[[], None]) -> None:
    """Run ``action`` once the session's transaction has committed (never if it rolls back)."""
    db.info.setdefault(_COMMIT_KEY, []).append(action)


def on_rollback(db: Session, action: Callable[[], None]) -> None:
    """Run ``action`` if the session's transaction ends without committing."""
    db.info.setdefault(_ROLLBACK_KEY, []).append(action)


def _run_all(actions: Iterable[Callable[[], None]], what: str) -> None:
    for action in actions:
        try:
            action()
        except Exception:
            # The database has already settled; an action is housekeeping (a leftover directory is
            # harmless: ids are never reused), so log a failure rather than fail the caller.
            log.exception("%s action failed", what)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():
        # SQLAlchemy also says "after_commit" when a savepoint is released: the transaction that
        # decides is still open (and may yet roll back), so nothing is done or dropped yet.
        return
    session.info.pop(_ROLLBACK_KEY, None)
    _run_all(session.info.pop(_COMMIT_KEY, []), "after-commit")


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return
    session.info.pop(_COMMIT_KEY, None)
    _run_all(session.info.pop(_ROLLBACK_KEY, []), "rollback")


def forget(db: Session, model: type[Any], ids: list[int]) -> None:
    """Drop rows deleted by a bulk statement from the session, so no stale copy is served later."""
    wanted = set(ids)
    for obj in list(db.identity_map.values()):
        if isinstance(obj, model) and getattr(obj, "id", None) in wanted:
            db.expunge(obj)
