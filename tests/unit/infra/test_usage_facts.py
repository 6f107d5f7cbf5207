"""The token-hygiene facts the usage writer aggregates in memory (infra/usage.py): scopes and
methods exercised, client IPs per day, hours and request counts per day."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from keycrew.clock import FixedClock
from keycrew.infra.usage import UsagePolicy, UsageRecorder, UseFacts

EVERY = dt.timedelta(minutes=10)
T0 = dt.datetime(2030, 1, 1, 23, 50, tzinfo=dt.UTC)


def _recorder(clock: FixedClock, facts: list[tuple[int, UseFacts]]) -> UsageRecorder:
    def write(_db: Session, _token_id: int, _at: dt.datetime, ips: list[str]) -> list[str]:
        return ips

    def write_facts(_db: Session, token_id: int, written: UseFacts) -> None:
        facts.append((token_id, written))

    policy = UsagePolicy(used_every=EVERY, ips_every=dt.timedelta(minutes=1))
    return UsageRecorder(sessionmaker(), clock, write, policy, write_facts=write_facts)


def test_counts_ride_along_and_a_new_scope_is_due_at_once() -> None:
    clock = FixedClock(T0)
    facts: list[tuple[int, UseFacts]] = []
    recorder = _recorder(clock, facts)
    recorder.note(1, "10.0.0.1")
    recorder.exercise(1, "read_api", "GET")
    recorder.flush()
    [(token_id, first)] = facts
    assert token_id == 1
    assert first.uses == [("read_api", "GET")]
    assert first.ips == {T0.date(): ["10.0.0.1"]}
    assert first.days == {T0.date(): (1 << 23, 1)}
    # The same use again within 10 minutes: counted, not written...
    for _ in range(4):
        recorder.note(1, "10.0.0.1")
        recorder.exercise(1, "read_api", "GET")
    assert recorder.flush() == 0
    # ...until a new (scope, method) makes it due: the counts go with it.
    recorder.exercise(1, "api", "POST")
    assert recorder.flush() == 1
    assert facts[-1][1].uses == [("api", "POST")]
    assert facts[-1][1].days == {T0.date(): (1 << 23, 4)}
    assert facts[-1][1].ips == {}


def test_idle_counts_and_ips_of_a_past_day_are_written_later() -> None:
    start = dt.datetime(2030, 1, 1, 23, 59, tzinfo=dt.UTC)
    clock = FixedClock(start)
    facts: list[tuple[int, UseFacts]] = []
    recorder = _recorder(clock, facts)
    recorder.note(2, "10.0.0.1")
    recorder.flush()
    clock.advance(seconds=20)
    recorder.note(2, "10.0.0.2")  # a new IP within a minute of the last: waits
    clock.advance(minutes=1)  # 00:00:20 the next day; the old day's IP still pending
    recorder.note(2, "10.0.0.2")
    assert recorder.flush() == 1  # 10.0.0.2 is new for the new day, and a minute passed
    written = facts[-1][1]
    assert written.ips == {start.date(): ["10.0.0.2"], start.date() + dt.timedelta(days=1): ["10.0.0.2"]}
    assert written.days == {start.date(): (1 << 23, 1), start.date() + dt.timedelta(days=1): (1, 1)}
    recorder.note(2, "10.0.0.2")
    assert recorder.flush() == 0
    clock.advance(minutes=10)
    assert recorder.flush() == 1  # idle for the write interval: its counts are written
    assert facts[-1][1].days == {start.date() + dt.timedelta(days=1): (1, 1)}
    assert recorder.tracked() == 0  # nothing pending any more: forgotten


def test_shutdown_writes_every_count() -> None:
    clock = FixedClock(T0)
    facts: list[tuple[int, UseFacts]] = []
    recorder = _recorder(clock, facts)
    recorder.note(3, None)
    recorder.flush()
    recorder.note(3, None)
    assert recorder.flush() == 0
    recorder.stop()
    assert facts[-1][1].days == {T0.date(): (1 << 23, 1)}
