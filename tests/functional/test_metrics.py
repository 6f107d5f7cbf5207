"""/-/metrics: Prometheus figures of requests, authentications, the database and tokens by expiry,
readable from the allowed addresses only."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.live import BACKENDS, Factory, LiveServer, start_server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: LiveServer) -> tuple[str, Samples]:
    response = requests.get(f"{server.url}/-/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def requests_total(samples: Samples, route: str, method: str, status: str) -> float:
    return value(samples, "keycrew_http_requests_total", route=route, method=method, status=status)


def test_the_endpoint_answers_prometheus_text(server: LiveServer) -> None:
    assert requests.get(f"{server.url}/-/health", timeout=10).status_code == 200
    text, samples = scrape(server)
    names = {name for name, _ in samples}
    for name in (
        "keycrew_http_requests_total",
        "keycrew_http_request_duration_seconds_bucket",
        "keycrew_db_queries_total",
        "keycrew_db_pool_checked_out",
        "keycrew_db_pool_size",
        "keycrew_tokens",
        "keycrew_token_usage_pending",
    ):
        assert name in names, name
    assert value(samples, "keycrew_db_pool_size") >= 1
    assert "# TYPE keycrew_auth_total counter" in text


def test_requests_are_counted_by_route_template_and_status(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    _, before = scrape(server)
    for _ in range(3):
        assert server.root("GET", f"/users/{user['id']}").status_code == 200
    assert server.root("GET", "/users/999999999").status_code == 404
    _, after = scrape(server)
    route = "/api/v4/users/{user_id}"
    assert requests_total(after, route, "GET", "200") - requests_total(before, route, "GET", "200") == 3
    assert requests_total(after, route, "GET", "404") - requests_total(before, route, "GET", "404") == 1
    assert (
        requests_total(after, "/-/metrics", "GET", "200") - requests_total(before, "/-/metrics", "GET", "200")
        == 1
    )
    count = "keycrew_http_request_duration_seconds_count"
    assert value(after, count, route=route) - value(before, count, route=route) == 4


def test_git_and_unrouted_requests_have_fixed_labels(server: LiveServer) -> None:
    _, before = scrape(server)
    git = requests.get(f"{server.url}/nobody/nothing.git/info/refs?service=git-upload-pack", timeout=10)
    static = requests.get(f"{server.url}/-/static/no-such-file.css", timeout=10)
    _, after = scrape(server)
    status = str(git.status_code)
    assert requests_total(after, "git", "GET", status) - requests_total(before, "git", "GET", status) == 1
    assert static.status_code == 404


def test_authentication_outcomes_are_counted(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token()
    _, before = scrape(server)
    for _ in range(4):
        assert server.request("GET", "/user", token=token).status_code == 200
    assert server.request("GET", "/user", token="glpat-no-such-token-000000000").status_code == 401
    _, after = scrape(server)

    def delta(outcome: str) -> float:
        return value(after, "keycrew_auth_total", outcome=outcome) - value(
            before, "keycrew_auth_total", outcome=outcome
        )

    assert delta("cache_hit") >= 1
    assert delta("cache_hit") + delta("cache_miss") == 4
    assert delta("unknown") == 1


def test_tokens_are_counted_by_kind_and_expiry(server: LiveServer, factory: Factory) -> None:
    # A fixed moment, so that "today" cannot change between two scrapes.
    base = dt.datetime.combine(server.clock.now().date() + dt.timedelta(days=1), dt.time(12), tzinfo=dt.UTC)
    later = base + dt.timedelta(days=5)

    def tokens(samples: Samples, bucket: str) -> float:
        return value(samples, "keycrew_tokens", kind="personal", bucket=bucket)

    server.clock.travel_to(later)
    _, at_later_before = scrape(server)
    server.clock.travel_to(base)
    _, before = scrape(server)
    user = factory.user()
    factory.token(user["id"], expires_at=(base.date() + dt.timedelta(days=5)).isoformat())
    factory.token(user["id"], expires_at=(base.date() + dt.timedelta(days=2)).isoformat())
    _, after = scrape(server)
    assert tokens(after, "within_7_days") - tokens(before, "within_7_days") == 2
    assert tokens(after, "expired") == tokens(before, "expired")

    server.clock.travel_to(later)  # the second token has expired, the first expires today
    _, at_later = scrape(server)
    assert tokens(at_later, "expired") - tokens(at_later_before, "expired") == 2
    server.clock.travel_to(later - dt.timedelta(days=1))
    _, day_before = scrape(server)
    server.clock.reset()
    assert tokens(day_before, "within_7_days") >= 1
    for bucket in ("expired", "within_7_days", "within_30_days", "within_60_days", "later", "never"):
        assert ("keycrew_tokens", (("bucket", bucket), ("kind", "deploy"))) in after


def test_no_label_holds_a_token_or_a_numeric_id(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    server.request("GET", f"/users/{user['id']}", token=token)
    server.request("GET", "/user", params={"private_token": token})
    requests.get(
        f"{server.url}/{user['username']}/x{user['id']}.git/info/refs?service=git-upload-pack", timeout=10
    )
    text, samples = scrape(server)
    assert token not in text
    assert server.root_token not in text
    fixed = {
        "method": {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"},
        "outcome": {"cache_hit", "cache_miss", "unknown", "expired", "revoked", "refused_user"},
        "kind": {"personal", "impersonation", "resource", "deploy"},
        "bucket": {"expired", "within_7_days", "within_30_days", "within_60_days", "later", "never"},
    }
    for _, labels in samples:
        for name, label in labels:
            assert "glpat-" not in label
            if name == "route":
                # A template: no segment is or holds a number (but the API's version and the
                # placeholders, whose names may hold digits: {sha256}).
                segments = [s for s in label.split("/") if s != "v4" and not re.fullmatch(r"\{\w+\}", s)]
                assert not any(re.search(r"\d", s) for s in segments), label
                assert user["username"] not in label
            elif name in fixed:
                assert label in fixed[name], (name, label)
            elif name == "status":
                assert re.fullmatch(r"[1-5]\d\d", label)
            else:
                assert name == "le", name  # a histogram bucket's bound


@pytest.fixture(scope="module", params=BACKENDS)
def elsewhere(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    nodes = start_server(request.param, tmp_path_factory.mktemp(f"metrics-{request.param}"))
    with pytest.MonkeyPatch.context() as env:
        # Only a range that excludes the test client (127.0.0.1) may read the metrics.
        env.setenv("KEYCREW_METRICS_ALLOW_IPS", "10.0.0.0/8, 2001:db8::/32")
        node = next(nodes)
    yield node
    nodes.close()


def test_clients_outside_the_allowlist_get_404(elsewhere: LiveServer) -> None:
    response = requests.get(f"{elsewhere.url}/-/metrics", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"error": "404 Not Found"}
