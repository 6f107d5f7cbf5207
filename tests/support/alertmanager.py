"""A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`, installed by the Makefile)
for the alert tests: a private process on free 127.0.0.1 ports, clustering off, its storage and
configuration in a temporary directory, whose one route sends every alert to a webhook receiver
(keycrew's Prometheus notify URL with an integration token as `Authorization: Bearer`).

Its timings are short (each alert its own group, group_wait 0 s, group_interval 1 s) so that a fired
or resolved alert reaches the receiver within a few seconds; the tests still poll for it.

    with running_alertmanager(work, url, token) as am:
        am.fire("DiskFull", severity="critical")
        am.resolve("DiskFull", severity="critical")
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.live import free_port

BINARY = "/usr/bin/prometheus-alertmanager"


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def config(webhook_url: str, token: str) -> dict[str, Any]:
    """Everything to one webhook receiver, sent at once, resolved alerts too."""
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": "keycrew",
            "group_by": ["..."],  # each alert (its whole label set) is a group of its own
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "24h",
        },
        "receivers": [
            {
                "name": "keycrew",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }


@dataclass
class Alertmanager:
    """A running alertmanager: its API, its log, and the alerts fired through it."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]
    fired: dict[tuple[tuple[str, str], ...], dt.datetime] = field(default_factory=dict)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        answer = requests.post(f"{self.url}/api/v2/alerts", json=alerts, timeout=10)
        assert answer.status_code == 200, (answer.status_code, answer.text)

    def fire(
        self, alertname: str, annotations: dict[str, str] | None = None, **labels: str
    ) -> dict[str, Any]:
        """Fire (or fire again) the alert with these labels, as Prometheus would."""
        labels = {"alertname": alertname, **labels}
        key = tuple(sorted(labels.items()))
        starts = self.fired.setdefault(key, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        alert = {
            "labels": labels,
            "annotations": annotations or {},
            "startsAt": _iso(starts),
            "generatorURL": f"http://prometheus.invalid/graph?g0.expr={alertname}",
        }
        self.post_alerts([alert])
        return alert

    def resolve(
        self, alertname: str, annotations: dict[str, str] | None = None, **labels: str
    ) -> dict[str, Any]:
        """Resolve the alert: the same labels with `endsAt` in the past."""
        labels = {"alertname": alertname, **labels}
        key = tuple(sorted(labels.items()))
        now = dt.datetime.now(dt.UTC)
        starts = self.fired.get(key, now - dt.timedelta(seconds=2))
        alert = {
            "labels": labels,
            "annotations": annotations or {},
            "startsAt": _iso(starts),
            "endsAt": _iso(now - dt.timedelta(milliseconds=500)),
            "generatorURL": f"http://prometheus.invalid/graph?g0.expr={alertname}",
        }
        self.post_alerts([alert])
        return alert

    def alerts(self) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v2/alerts", timeout=10)
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()
        return result

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include ``labels`` (0 when none)."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not match:
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total

    def wait_metric(self, name: str, at_least: float, timeout: float = 30, **labels: str) -> float:
        deadline = time.monotonic() + timeout
        while True:
            value = self.metric(name, **labels)
            if value >= at_least:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}{labels} stayed at {value} < {at_least}\n{self.output()}")
            time.sleep(0.2)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def running_alertmanager(work: Path, webhook_url: str, token: str) -> Iterator[Alertmanager]:
    """alertmanager on a free port sending to ``webhook_url`` with ``token``; SIGTERM at the end."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_path = work / "alertmanager.yml"
    config_path.write_text(json.dumps(config(webhook_url, token)))  # YAML is a superset of JSON
    config_path.chmod(0o600)
    log = work / "alertmanager.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                BINARY,
                f"--config.file={config_path}",
                f"--storage.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"alertmanager did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        yield Alertmanager(url, log, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
