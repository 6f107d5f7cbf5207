"""The settings every request consults (Admin Mode, the token prefix), cached: read from the
settings row at most every ``ttl`` seconds, never per request.

A change committed in this process reloads them at once (``invalidate``, wired to the session's
commit in bootstrap); other processes and nodes see it within a second (``ttl`` is half of one:
the first request after it runs out still gets the old values while they are read again). A stale value is
refreshed in a thread of its own while requests go on with the one they have; if the database
cannot be read the previous values stay.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from keycrew.context import DEFAULT_LIVE_SETTINGS, LiveSettings
from keycrew.infra.refresh import Refreshed
from keycrew.instance.models import InstanceSettings

_LIVE_COLUMNS = select(InstanceSettings.admin_mode, InstanceSettings.personal_access_token_prefix).where(
    InstanceSettings.id == 1
)


def load_live_settings(db: Session) -> LiveSettings:
    """The cached settings as the row holds them (the defaults while there is no row)."""
    row = db.execute(_LIVE_COLUMNS).first()
    if row is None:
        return DEFAULT_LIVE_SETTINGS
    return LiveSettings(admin_mode=bool(row[0]), token_prefix=row[1])


class LiveSettingsCache(Refreshed[LiveSettings]):
    """See the module's docstring. ``get`` is what ``Instance.live`` calls."""

    def __init__(self, load: Callable[[], LiveSettings], ttl: float = 0.5) -> None:
        super().__init__(
            load,
            fallback=DEFAULT_LIVE_SETTINGS,
            ttl=ttl,
            thread_name="keycrew-live-settings",
            what="instance settings",
        )
