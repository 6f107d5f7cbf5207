"""Time comes from here so that tests can move it; every value is aware UTC."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock tests set and move by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self._now = now

    def now(self) -> dt.datetime:
        return self._now

    def set(self, now: dt.datetime) -> None:
        self._now = now

    def advance(self, **delta: float) -> None:
        self._now += dt.timedelta(**delta)


def today(clock: Clock) -> dt.date:
    return clock.now().date()


class OffsetClock:
    """The system clock shifted by an adjustable offset (tests move a live server's time)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def travel_to(self, moment: dt.datetime) -> None:
        self.offset = moment - dt.datetime.now(dt.UTC)

    def reset(self) -> None:
        self.offset = dt.timedelta()
