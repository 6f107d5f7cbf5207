"""Webhook rules without a server: the blocked addresses, auto-disabling, event names, branch
filters and the encryption of hook secrets."""

from __future__ import annotations

import datetime as dt

import pytest

from keycrew.webhooks import secrets, service, urls
from keycrew.webhooks.models import GROUP, PROJECT, SYSTEM, WebHook

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def _hook(kind: str = PROJECT, **attrs: object) -> WebHook:
    values: dict[str, object] = {
        "type": kind,
        "recent_failures": 0,
        "backoff_count": 0,
        "permanently_disabled": False,
        "disabled_until": None,
        "push_events_branch_filter": None,
        "branch_filter_strategy": "wildcard",
    }
    return WebHook(**(values | attrs))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/x", urls.LOCALHOST),
        ("http://127.8.9.10/x", urls.LOCALHOST),
        ("http://[::1]/x", urls.LOCALHOST),
        ("http://[::ffff:127.0.0.1]/x", urls.LOCALHOST),
        ("http://localhost:8080/x", urls.LOCALHOST),
        ("http://0.0.0.0/x", urls.LOCAL_NETWORK),
        ("http://10.0.0.1/x", urls.LOCAL_NETWORK),
        ("http://172.16.5.4/x", urls.LOCAL_NETWORK),
        ("http://192.168.1.1/x", urls.LOCAL_NETWORK),
        ("http://169.254.169.254/x", urls.LOCAL_NETWORK),
        ("http://[fd00::1]/x", urls.LOCAL_NETWORK),
        ("http://[fe80::1]/x", urls.LOCAL_NETWORK),
        ("http://keycrew.example/x", urls.LOCAL_NETWORK),
    ],
)
def test_local_addresses_are_blocked_unless_allowed(url: str, reason: str) -> None:
    with pytest.raises(urls.BlockedUrl) as refused:
        urls.check(url, allow_local=False, instance_host="keycrew.example", resolve_now=False)
    assert refused.value.message == reason
    urls.check(url, allow_local=True, instance_host="keycrew.example", resolve_now=False)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "http://"]
)
def test_only_http_and_https_urls(url: str) -> None:
    with pytest.raises(urls.BlockedUrl):
        urls.check(url, allow_local=True, instance_host="keycrew.example", resolve_now=False)


def test_every_resolved_address_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urls, "resolve", lambda host, port: ["93.184.216.34", "10.0.0.7"])
    with pytest.raises(urls.BlockedUrl) as refused:
        urls.check("https://mixed.example/x", allow_local=False, instance_host="k", resolve_now=True)
    assert refused.value.message == urls.LOCAL_NETWORK
    monkeypatch.setattr(urls, "resolve", lambda host, port: ["93.184.216.34"])
    target = urls.check(
        "https://public.example:8443/x", allow_local=False, instance_host="k", resolve_now=True
    )
    assert target is not None
    assert (target.address, target.host, target.port) == ("93.184.216.34", "public.example", 8443)


def test_save_refuses_a_name_that_resolves_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urls, "resolve", lambda host, port: ["127.0.0.1"])
    with pytest.raises(urls.BlockedUrl) as refused:
        urls.validate_for_save("http://sneaky.example/x", allow_local=False, instance_host="k")
    assert refused.value.message == urls.INVALID_URL


def test_auto_disabling_follows_gitlab() -> None:
    hook = _hook()
    for _ in range(3):
        service.note_failure(hook, NOW)
    assert service.alert_status(hook, NOW) == "executable"
    service.note_failure(hook, NOW)  # the 4th: 1 minute x 2^(4 - 3)
    assert hook.disabled_until == NOW + dt.timedelta(minutes=2)
    assert service.alert_status(hook, NOW) == "temporarily_disabled"
    assert service.alert_status(hook, NOW + dt.timedelta(minutes=3)) == "executable"
    for _ in range(30):
        service.note_failure(hook, NOW)
    assert hook.disabled_until == NOW + dt.timedelta(days=1)  # capped at a day
    for _ in range(5):
        service.note_failure(hook, NOW)
    assert hook.recent_failures == 39
    assert not hook.permanently_disabled
    service.note_failure(hook, NOW)
    assert hook.permanently_disabled
    assert service.alert_status(hook, NOW + dt.timedelta(days=30)) == "disabled"
    service.note_success(hook)
    assert service.alert_status(hook, NOW) == "executable"
    assert hook.recent_failures == 0


def test_system_hooks_are_never_disabled() -> None:
    hook = _hook(SYSTEM)
    for _ in range(50):
        service.note_failure(hook, NOW)
    assert hook.recent_failures == 0
    assert service.alert_status(hook, NOW) == "executable"


def test_event_headers_and_kinds() -> None:
    assert service.event_header("push_hooks") == "Push Hook"
    assert service.event_header("tag_push_hooks") == "Tag Push Hook"
    assert service.event_header("member_hooks") == "Member Hook"
    assert service.event_header("resource_access_token_hooks") == "Resource Access Token Hook"
    assert "member_events" in service.EVENTS[GROUP]
    assert "member_events" not in service.EVENTS[PROJECT]
    assert "resource_deploy_token_events" in service.EVENTS[PROJECT]


@pytest.mark.parametrize(
    ("strategy", "pattern", "ref", "matches"),
    [
        ("wildcard", "release/*", "refs/heads/release/1.0", True),
        ("wildcard", "release/*", "refs/heads/main", False),
        ("regex", "^(main|dev)$", "refs/heads/dev", True),
        ("regex", "^(main|dev)$", "refs/heads/feature", False),
        ("all_branches", "main", "refs/heads/other", True),
        ("wildcard", "main", "refs/tags/v1", True),
        ("wildcard", None, "refs/heads/anything", True),
    ],
)
def test_branch_filters(strategy: str, pattern: str | None, ref: str, matches: bool) -> None:
    hook = _hook(branch_filter_strategy=strategy, push_events_branch_filter=pattern)
    assert service.branch_matches(hook, ref) is matches


def test_secrets_are_encrypted_and_bound_to_the_instance_key() -> None:
    sealed = secrets.encrypt(b"key-one", "s3cret")
    assert "s3cret" not in sealed
    assert sealed != secrets.encrypt(b"key-one", "s3cret")  # a fresh nonce each time
    assert secrets.decrypt(b"key-one", sealed) == "s3cret"
    assert secrets.decrypt(b"key-two", sealed) is None
    assert secrets.decrypt_map(b"key-one", secrets.encrypt_map(b"key-one", {"a": "1"})) == {"a": "1"}
    assert secrets.encrypt_map(b"key-one", {}) is None


def test_url_variables_fill_the_url() -> None:
    assert service.interpolate("https://h/{team}/x", {"team": "ops"}) == "https://h/ops/x"
    with pytest.raises(KeyError):
        service.interpolate("https://h/{team}", {})
