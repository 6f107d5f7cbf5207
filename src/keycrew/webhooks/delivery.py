"""Sending webhook requests: one request (``send``), the test endpoints' synchronous run, and the
worker that drains the persistent queue (a Runtime service).

The worker claims a due delivery with a conditional UPDATE (only one node wins it), sends it with
no transaction open, then records the outcome (the log entry, the hook's failure count, the
retry) in a second transaction. A node that dies mid-send leaves a claim that lapses; the
delivery is then sent again with the same Idempotency-Key.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from keycrew import GITLAB_COMPAT_VERSION
from keycrew.clock import Clock
from keycrew.context import Actor, Ctx, Instance
from keycrew.infra.worker import PollingLoop
from keycrew.webhooks import secrets, service, urls
from keycrew.webhooks.models import FAILED, PENDING, SENT, SYSTEM, WebHook, WebHookDelivery, WebHookLog

log = logging.getLogger("keycrew.webhooks")

# GitLab's gitlab.webhook_timeout default.
TIMEOUT_SECONDS = 10.0
# Attempts of one delivery (the first and its retries), and the wait before each retry.
MAX_ATTEMPTS = 4
RETRY_BASE = dt.timedelta(minutes=1)
# How long a claim holds (longer than a request may take); a lapsed claim is taken again.
CLAIM_SECONDS = 60
# How often the worker looks for due deliveries when nothing wakes it.
POLL_SECONDS = 1.0
BATCH = 20
USER_AGENT = f"GitLab/{GITLAB_COMPAT_VERSION}"
REDACTED = "[REDACTED]"


@dataclass
class Outcome:
    """What one request did: what was sent (secrets masked) and what came back."""

    url: str
    request_headers: dict[str, str]
    request_data: str
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str = ""
    duration: float = 0.0
    error: str | None = None

    @property
    def success(self) -> bool:
        return self.status is not None and 200 <= self.status < 400

    @property
    def status_text(self) -> str:
        return "internal error" if self.status is None else str(self.status)

    def message(self) -> str:
        """The test endpoint's error: the status, or what went wrong."""
        if self.status is not None:
            return f"{self.status}"
        return self.error or "internal error"


@dataclass(frozen=True)
class Request:
    """What to send to one hook (decrypted secrets included: never logged, never stored)."""

    hook_id: int
    kind: str
    url: str
    token: str | None
    custom_headers: dict[str, str]
    verify: bool
    allow_local: bool


def prepare(ctx: Ctx, hook: WebHook) -> Request:
    key = ctx.instance.secret_key
    token = None if hook.encrypted_token is None else secrets.decrypt(key, hook.encrypted_token)
    variables = secrets.decrypt_map(key, hook.encrypted_url_variables)
    try:
        url = service.interpolate(hook.url, variables)
    except KeyError:
        url = hook.url
    return Request(
        hook_id=hook.id,
        kind=hook.type,
        url=url,
        token=token,
        custom_headers=secrets.decrypt_map(key, hook.encrypted_custom_headers),
        verify=hook.enable_ssl_verification,
        allow_local=service.allow_local(ctx, hook.type),
    )


def send(
    request: Request,
    payload: dict[str, Any],
    event_header: str,
    *,
    idempotency_key: str,
    event_uuid: str,
    instance: Instance,
    shown_url: str,
) -> Outcome:
    """POST ``payload`` to the hook; checks the URL again after resolving its name and connects
    to the checked address (Host and TLS name from the URL)."""
    body = json.dumps(payload)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": idempotency_key,
        "X-Gitlab-Event": event_header,
        "X-Gitlab-Webhook-UUID": str(uuid.uuid4()),
        "X-Gitlab-Instance": instance.external_url.rstrip("/"),
        "X-Gitlab-Event-UUID": event_uuid,
    }
    shown = dict(headers)
    if request.token:
        headers["X-Gitlab-Token"] = request.token.replace("\r", "").replace("\n", "")
        shown["X-Gitlab-Token"] = REDACTED
    for name, value in request.custom_headers.items():
        headers[name] = value
        shown[name] = REDACTED
    outcome = Outcome(urls.mask_userinfo(shown_url), shown, body)
    started = time.monotonic()
    try:
        target = urls.check(
            request.url, allow_local=request.allow_local, instance_host=instance.host, resolve_now=True
        )
        assert target is not None
        parts = target.parts
        if parts.username is not None:
            token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode())
            headers["Authorization"] = f"Basic {token.decode()}"
        address = f"[{target.address}]" if ":" in target.address else target.address
        netloc = f"{address}:{target.port}"
        host_header = parts.hostname or ""
        if ":" in host_header:
            host_header = f"[{host_header}]"
        if parts.port:
            host_header += f":{parts.port}"
        headers["Host"] = host_header
        direct = parts._replace(netloc=netloc).geturl()
        extensions = {"sni_hostname": target.host} if parts.scheme == "https" else {}
        with httpx.Client(verify=request.verify, timeout=TIMEOUT_SECONDS, trust_env=False) as client:
            response = client.post(direct, content=body.encode(), headers=headers, extensions=extensions)
            outcome.status = response.status_code
            outcome.response_headers = dict(response.headers.items())
            outcome.response_body = response.content[: service.RESPONSE_BODY_LIMIT].decode(errors="replace")
    except urls.BlockedUrl as exc:
        outcome.error = exc.message
    except (httpx.HTTPError, OSError, ValueError) as exc:
        outcome.error = _describe(exc)
    outcome.duration = time.monotonic() - started
    return outcome


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:1000]


def log_outcome(ctx: Ctx, hook: WebHook, trigger: str, outcome: Outcome, delivery_id: int | None) -> None:
    service.add_log(
        ctx,
        WebHookLog(
            hook_id=hook.id,
            delivery_id=delivery_id,
            trigger=trigger,
            url=outcome.url,
            request_headers=outcome.request_headers,
            request_data=outcome.request_data,
            response_status=outcome.status_text,
            response_headers=outcome.response_headers,
            response_body=outcome.response_body,
            execution_duration=round(outcome.duration, 6),
            internal_error_message=outcome.error,
            created_at=ctx.now(),
        ),
    )


def run_now(
    ctx: Ctx,
    hook: WebHook,
    trigger: str,
    payload: dict[str, Any],
    *,
    test: bool,
    idempotency_key: str | None = None,
) -> Outcome:
    """Send to ``hook`` at once (the test endpoints, a resend), outside any transaction, then log
    the request and update the hook's state in a new one (a successful test re-enables a disabled
    hook; the test runs even while the hook is disabled)."""
    request = prepare(ctx, hook)
    hook_id, shown_url = hook.id, hook.url
    header = "System Hook" if hook.type == SYSTEM else service.event_header(trigger)
    ctx.db.commit()  # no lock held while the receiver answers
    outcome = send(
        request,
        payload,
        header,
        idempotency_key=idempotency_key or str(uuid.uuid4()),
        event_uuid=str(uuid.uuid4()),
        instance=ctx.instance,
        shown_url=shown_url,
    )
    fresh = ctx.db.get(WebHook, hook_id)
    if fresh is None:
        return outcome
    if outcome.success:
        service.note_success(fresh)
    elif not test:
        service.note_failure(fresh, ctx.now())
    log_outcome(ctx, fresh, trigger, outcome, None)
    return outcome


def resend(ctx: Ctx, hook: WebHook, log: WebHookLog) -> Outcome:
    """Send a logged request again (same payload and, if it came from the queue, the same
    Idempotency-Key)."""
    try:
        payload = json.loads(log.request_data)
    except ValueError:
        payload = {}
    key = None
    if log.delivery_id is not None:
        queued = ctx.db.get(WebHookDelivery, log.delivery_id)
        key = None if queued is None else queued.idempotency_key
    return run_now(
        ctx, hook, log.trigger, payload if isinstance(payload, dict) else {}, test=False, idempotency_key=key
    )


# -- the worker ------------------------------------------------------------------------------
class DeliveryWorker:
    """Drains the queue: wakes when this process commits a delivery, else polls."""

    def __init__(self, sessions: sessionmaker[Session], instance: Instance, clock: Clock) -> None:
        self.sessions = sessions
        self.instance = instance
        self.clock = clock
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._loop = PollingLoop(
            "keycrew-webhooks",
            lambda: self.drain_once() > 0,
            poll_seconds=lambda: POLL_SECONDS,
            join_timeout=TIMEOUT_SECONDS + 5,
            failed=lambda exc: log.error("webhook delivery failed", exc_info=exc),
        )

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def wake(self) -> None:
        self._loop.wake()

    def _ctx(self, db: Session) -> Ctx:
        return Ctx(db, Actor.system(), self.instance, self.clock)

    def drain_once(self) -> int:
        """Send the deliveries due now (at most a batch); how many were handled."""
        now = self.clock.now()
        with self.sessions() as db:
            ids = list(
                db.scalars(
                    select(WebHookDelivery.id)
                    .where(
                        WebHookDelivery.status == PENDING,
                        WebHookDelivery.next_attempt_at <= now,
                        or_(WebHookDelivery.claimed_until.is_(None), WebHookDelivery.claimed_until < now),
                    )
                    .order_by(WebHookDelivery.next_attempt_at, WebHookDelivery.id)
                    .limit(BATCH)
                )
            )
            db.rollback()
        handled = 0
        for delivery_id in ids:
            if self._loop.stopping:
                break
            if self.deliver(delivery_id):
                handled += 1
        return handled

    def _claim(self, delivery_id: int) -> bool:
        now = self.clock.now()
        with self.sessions() as db, db.begin():
            claimed = db.execute(
                update(WebHookDelivery)
                .where(
                    WebHookDelivery.id == delivery_id,
                    WebHookDelivery.status == PENDING,
                    WebHookDelivery.next_attempt_at <= now,
                    or_(WebHookDelivery.claimed_until.is_(None), WebHookDelivery.claimed_until < now),
                )
                .values(claimed_by=self.name, claimed_until=now + dt.timedelta(seconds=CLAIM_SECONDS))
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(claimed, "rowcount", 0) == 1)

    def deliver(self, delivery_id: int) -> bool:
        """Send one delivery if this worker wins its claim."""
        if not self._claim(delivery_id):
            return False
        with self.sessions() as db:
            ctx = self._ctx(db)
            delivery = db.get(WebHookDelivery, delivery_id)
            hook = None if delivery is None else db.get(WebHook, delivery.hook_id)
            if delivery is None or hook is None:
                db.rollback()
                return True
            now = ctx.now()
            if hook.permanently_disabled:
                delivery.status, delivery.finished_at = FAILED, now
                delivery.last_error = "the hook is disabled"
                delivery.claimed_by = delivery.claimed_until = None
                db.commit()
                return True
            if not service.executable(hook, now):
                assert hook.disabled_until is not None
                delivery.next_attempt_at = hook.disabled_until
                delivery.claimed_by = delivery.claimed_until = None
                db.commit()
                return True
            request = prepare(ctx, hook)
            payload, header, trigger = dict(delivery.payload), delivery.event_header, delivery.trigger
            key, event_uuid, shown_url = delivery.idempotency_key, delivery.event_uuid, hook.url
            db.rollback()
        outcome = send(
            request,
            payload,
            header,
            idempotency_key=key,
            event_uuid=event_uuid,
            instance=self.instance,
            shown_url=shown_url,
        )
        with self.sessions() as db, db.begin():
            ctx = self._ctx(db)
            delivery = db.get(WebHookDelivery, delivery_id)
            hook = None if delivery is None else db.get(WebHook, delivery.hook_id)
            if delivery is None or hook is None:
                return True
            now = ctx.now()
            delivery.attempts += 1
            delivery.claimed_by = delivery.claimed_until = None
            if outcome.success:
                service.note_success(hook)
                delivery.status, delivery.finished_at, delivery.last_error = SENT, now, None
            else:
                service.note_failure(hook, now)
                delivery.last_error = outcome.error or outcome.status_text
                if delivery.attempts >= MAX_ATTEMPTS or hook.permanently_disabled:
                    delivery.status, delivery.finished_at = FAILED, now
                else:
                    retry = now + RETRY_BASE * 2 ** (delivery.attempts - 1)
                    if hook.disabled_until is not None and hook.disabled_until > retry:
                        retry = hook.disabled_until
                    delivery.next_attempt_at = retry
            log_outcome(ctx, hook, trigger, outcome, delivery.id)
        return True


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""
