"""The settings every request consults (Admin Mode, the token prefix), cached: read from the
settings row at most every ``ttl`` seconds, never per request.

A change committed in this process reloads them at once (``invalidate``, wired to the session's
commit in bootstrap); other processes and nodes see it within a second (``ttl`` is half of one:
the first request after it runs out still gets the old values while they are read again). A stale value is
refreshed in a thread of its own while requests go on with the one they have; if the database
cannot be read the previous values stay.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from keycrew.context import DEFAULT_LIVE_SETTINGS, LiveSettings
from keycrew.instance.models import InstanceSettings

log = logging.getLogger("keycrew.settings")

_LIVE_COLUMNS = select(InstanceSettings.admin_mode, InstanceSettings.personal_access_token_prefix).where(
    InstanceSettings.id == 1
)


def load_live_settings(db: Session) -> LiveSettings:
    """The cached settings as the row holds them (the defaults while there is no row)."""
    row = db.execute(_LIVE_COLUMNS).first()
    if row is None:
        return DEFAULT_LIVE_SETTINGS
    return LiveSettings(admin_mode=bool(row[0]), token_prefix=row[1])


class LiveSettingsCache:
    """See the module's docstring. ``get`` is what ``Instance.live`` calls."""

    def __init__(self, load: Callable[[], LiveSettings], ttl: float = 0.5) -> None:
        self.load = load
        self.ttl = ttl
        self._value: LiveSettings | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self._refreshing = False

    def get(self) -> LiveSettings:
        value = self._value
        if value is None:
            return self.reload()
        if time.monotonic() >= self._expires and not self._refreshing:
            with self._lock:
                if self._refreshing:
                    return value
                self._refreshing = True
            threading.Thread(target=self._refresh, name="keycrew-live-settings", daemon=True).start()
        return value

    def _refresh(self) -> None:
        try:
            self.reload()
        finally:
            self._refreshing = False

    def reload(self) -> LiveSettings:
        """Read the settings now (keep the previous ones, or the defaults, if that fails)."""
        try:
            value = self.load()
        except Exception as exc:  # the database may be down: keep what we had
            log.warning("instance settings could not be read (%s)", type(exc).__name__)
            value = self._value or DEFAULT_LIVE_SETTINGS
        self._value = value
        self._expires = time.monotonic() + self.ttl
        return value

    def invalidate(self) -> None:
        self.reload()


_CHANGED = "keycrew.live_settings_changed"


def reload_on_commit(sessions: sessionmaker[Session], cache: LiveSettingsCache) -> None:
    """Reload ``cache`` after a commit of a session of ``sessions`` that changed the settings row."""

    def after_flush(session: Session, _context: object) -> None:
        if any(isinstance(row, InstanceSettings) for row in (*session.new, *session.dirty)):
            session.info[_CHANGED] = True

    def after_commit(session: Session) -> None:
        if session.info.pop(_CHANGED, False):
            cache.invalidate()

    def after_soft_rollback(session: Session, _previous: object) -> None:
        session.info.pop(_CHANGED, None)

    event.listen(sessions, "after_flush", after_flush)
    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_soft_rollback", after_soft_rollback)
