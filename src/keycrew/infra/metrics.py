"""Prometheus figures: HTTP requests, authentication outcomes, the database pool and queries.

One ``Metrics`` per runtime, with a registry of its own (several test servers share a process).
With ``PROMETHEUS_MULTIPROC_DIR`` set (``keycrew serve --workers N``), prometheus-client writes
the counters and histograms of every worker to files there, and a scrape, answered by any one
worker, reads them all through ``MultiProcessCollector``; the figures read at scrape time (pool,
queue, callbacks such as the tokens by expiry) are those of the answering worker, or the database's.

Labels never carry a raw path, an id or a token: requests are labelled by route template.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, event
from sqlalchemy.pool import QueuePool

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_ALLOW_IPS = "127.0.0.0/8,::1"
UNMATCHED = "unmatched"
GIT = "git"
AUTH_OUTCOMES = ("cache_hit", "cache_miss", "unknown", "expired", "revoked", "refused_user")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Any other method a client sends is labelled "other": labels must stay a small, fixed set.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"127.0.0.0/8, ::1"`` → networks; a bare address is a network of one. ValueError if malformed."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def ip_allowed(ip: str | None, networks: Iterable[Network]) -> bool:
    """Whether the client address is in one of the networks (an IPv4-mapped IPv6 address as IPv4)."""
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)


# Reads plain numbers at scrape time: {label values: value}.
Reading = Callable[[], Mapping[tuple[str, ...], float]]


class ReadingCollector(Collector):
    """One gauge family whose samples a callback computes at scrape time."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], read: Reading) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = list(labels)
        self.read = read

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, value in sorted(self.read().items()):
            family.add_metric(list(values), value)
        yield family


class PoolCollector(Collector):
    """The SQLAlchemy connection pool, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        pool = self.engine.pool
        checked_out = GaugeMetricFamily(
            "keycrew_db_pool_checked_out", "Database connections in use by this process"
        )
        size = GaugeMetricFamily("keycrew_db_pool_size", "Database connections the pool keeps open")
        overflow = GaugeMetricFamily(
            "keycrew_db_pool_max_overflow", "Database connections the pool may open beyond its size"
        )
        if isinstance(pool, QueuePool):
            checked_out.add_metric([], pool.checkedout())
            size.add_metric([], pool.size())
            overflow.add_metric([], getattr(pool, "_max_overflow", 0))
        yield checked_out
        yield size
        yield overflow


class Metrics:
    """The runtime's figures and the registry a scrape renders."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.requests = Counter(
            "keycrew_http_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "keycrew_http_request_duration_seconds",
            "HTTP request duration by route template",
            ["route"],
            registry=self.registry,
        )
        self.auth_outcomes = Counter(
            "keycrew_auth_total",
            "API token authentications by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self._auth = {outcome: self.auth_outcomes.labels(outcome) for outcome in AUTH_OUTCOMES}
        self.queries = Counter("keycrew_db_queries_total", "SQL statements sent", registry=self.registry)
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        # Collected only by this process, also in multiprocess mode (read at scrape time).
        self._live: list[Collector] = []

    def auth(self, outcome: str) -> None:
        self._auth[outcome].inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per key, which holds only bounded values (a
        # template, a known method, a status): then a dict lookup, an increment, an observation.
        key = (route, method if method in METHODS else "other", status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(route, key[1], str(status)),
                self.duration.labels(route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def add(self, collector: Collector) -> None:
        """A collector read at scrape time (pool, queue, a database query)."""
        self._live.append(collector)
        self.registry.register(collector)

    def add_reading(self, name: str, documentation: str, labels: Sequence[str], read: Reading) -> None:
        self.add(ReadingCollector(name, documentation, labels, read))

    def watch_engine(self, engine: Engine) -> None:
        """Count every statement and report the pool at scrape time."""
        counter = self.queries

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_args: Any) -> None:
            counter.inc()

        self.add(PoolCollector(engine))

    def render(self) -> bytes:
        """The exposition text of every figure (every worker's, in multiprocess mode)."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
        for collector in self._live:
            registry.register(collector)
        return generate_latest(registry)
