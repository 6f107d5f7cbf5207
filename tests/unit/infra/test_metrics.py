"""The metrics allowlist, the figures' rendering and the usage writer's queue size."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.orm import sessionmaker

from keycrew.clock import FixedClock
from keycrew.config import Settings
from keycrew.infra.metrics import DEFAULT_ALLOW_IPS, Metrics, ip_allowed, parse_networks
from keycrew.infra.usage import UsagePolicy, UsageRecorder


@pytest.mark.parametrize(
    ("ip", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("192.168.1.1", False),
        ("::2", False),
        ("", False),
        (None, False),
        ("not-an-address", False),
    ],
)
def test_default_allowlist_is_loopback(ip: str | None, allowed: bool) -> None:
    assert ip_allowed(ip, parse_networks(DEFAULT_ALLOW_IPS)) is allowed


def test_allowlist_of_addresses_and_ranges() -> None:
    networks = parse_networks(" 10.1.0.0/16 , 192.0.2.7, 2001:db8::/32 ")
    assert ip_allowed("10.1.200.3", networks)
    assert ip_allowed("192.0.2.7", networks)
    assert not ip_allowed("192.0.2.8", networks)
    assert ip_allowed("2001:db8::42", networks)
    assert not ip_allowed("127.0.0.1", networks)
    assert parse_networks("") == ()
    assert not ip_allowed("127.0.0.1", ())


def test_settings_default_and_refuse_a_malformed_allowlist() -> None:
    assert Settings().metrics_allow_ips == DEFAULT_ALLOW_IPS
    with pytest.raises(ValueError, match="not an IP address"):
        Settings(metrics_allow_ips="127.0.0.1, nonsense")


def test_metrics_render_requests_auth_queries_pool_and_readings(tmp_path: Path) -> None:
    metrics = Metrics()
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}", pool_size=3)
    metrics.watch_engine(engine)
    metrics.add_reading("keycrew_things", "Things", ["kind"], lambda: {("a",): 2.0, ("b",): 0.0})
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        conn.execute(text("SELECT 2"))
    metrics.observe_request("/api/v4/users/{user_id}", "GET", 200, 0.01)
    metrics.observe_request("/api/v4/users/{user_id}", "GET", 200, 0.02)
    metrics.observe_request("unmatched", "BREW", 404, 0.01)
    metrics.auth("unknown")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for s in family.samples
    }
    assert (
        samples[
            (
                "keycrew_http_requests_total",
                (("method", "GET"), ("route", "/api/v4/users/{user_id}"), ("status", "200")),
            )
        ]
        == 2
    )
    assert (
        samples[("keycrew_http_request_duration_seconds_count", (("route", "/api/v4/users/{user_id}"),))] == 2
    )
    assert (
        samples[
            ("keycrew_http_requests_total", (("method", "other"), ("route", "unmatched"), ("status", "404")))
        ]
        == 1
    )
    assert samples[("keycrew_auth_total", (("outcome", "unknown"),))] == 1
    assert samples[("keycrew_auth_total", (("outcome", "cache_hit"),))] == 0
    assert samples[("keycrew_db_queries_total", ())] >= 2
    assert samples[("keycrew_db_pool_checked_out", ())] == 0
    assert samples[("keycrew_db_pool_size", ())] == 3
    assert samples[("keycrew_things", (("kind", "a"),))] == 2
    engine.dispose()


def test_two_runtimes_count_apart() -> None:
    first, second = Metrics(), Metrics()
    first.auth("cache_hit")
    assert b'keycrew_auth_total{outcome="cache_hit"} 1.0' in first.render()
    assert b'keycrew_auth_total{outcome="cache_hit"} 0.0' in second.render()


def test_usage_recorder_reports_its_pending_writes() -> None:
    every = dt.timedelta(minutes=10)
    recorder = UsageRecorder(
        sessionmaker(),
        FixedClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
        lambda _db, _id, _at, ips: ips,
        UsagePolicy(used_every=every, ips_every=every),
    )
    assert recorder.pending() == 0
    recorder.note(1, "10.0.0.1")
    recorder.note(1, "10.0.0.1")
    recorder.note(2, None)
    assert recorder.pending() == 2
