"""The token-usage writer (infra/usage.py) keeps in memory only the credentials used lately."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from keycrew.clock import FixedClock
from keycrew.infra.usage import UsagePolicy, UsageRecorder

EVERY = dt.timedelta(minutes=10)


def _recorder(clock: FixedClock, writes: list[tuple[int, list[str]]]) -> UsageRecorder:
    stored: dict[int, list[str]] = {}

    def write(_db: Session, token_id: int, _at: dt.datetime, ips: list[str]) -> list[str]:
        writes.append((token_id, ips))
        stored[token_id] = sorted({*stored.get(token_id, []), *ips})
        return stored[token_id]

    return UsageRecorder(sessionmaker(), clock, write, UsagePolicy(used_every=EVERY, ips_every=EVERY))


def test_credentials_idle_for_the_write_interval_are_forgotten() -> None:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    writes: list[tuple[int, list[str]]] = []
    recorder = _recorder(clock, writes)
    for token_id in range(1, 5001):
        recorder.note(token_id, "10.0.0.1")
    assert recorder.flush() == 5000
    assert recorder.tracked() == 5000  # written just now: remembered, so repeated use writes nothing
    recorder.note(1, "10.0.0.1")
    assert recorder.pending() == 0
    clock.advance(minutes=10)
    recorder.flush()
    assert recorder.tracked() == 0


def test_a_forgotten_credential_is_written_again_on_its_next_use() -> None:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    writes: list[tuple[int, list[str]]] = []
    recorder = _recorder(clock, writes)
    recorder.note(7, "10.0.0.1")
    recorder.flush()
    clock.advance(minutes=11)
    recorder.flush()
    assert recorder.tracked() == 0
    recorder.note(7, "10.0.0.2")
    assert recorder.pending() == 1
    recorder.flush()
    assert writes == [(7, ["10.0.0.1"]), (7, ["10.0.0.2"])]
    assert recorder.tracked() == 1


def test_a_credential_with_a_pending_write_is_kept() -> None:
    clock = FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    recorder = _recorder(clock, [])
    recorder.note(3, None)
    recorder._forget_idle()
    assert recorder.tracked() == 1
    assert recorder.pending() == 1
