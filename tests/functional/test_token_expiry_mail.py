"""Token e-mail: the expiry notifications (60, 30 and 7 days before, and on the day), their
recipients, and the created/rotated/revoked notices, received by a real SMTP server.

The jobs run in the test (``JobRun`` on the live server's runtime) with the server's clock moved;
they scan the whole shared database, so each test looks only at its own users' mail.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from keycrew.automation.jobs import JobRun
from keycrew.automation.registry import JOBS
from keycrew.outbox.models import OutboxMessage
from keycrew.tokens.models import PersonalAccessToken
from keycrew.webhooks.models import WebHookDelivery
from tests.support.live import Factory, LiveServer, uid
from tests.support.mail import MailSink, Received
from tests.support.receiver import Receiver

EXPIRING = "token-expiry-notifications"
EXPIRED = "expired-token-notifications"
CREATED = "A new personal access token has been created"
ROTATED = "Your personal access token has been rotated"
REVOKED = "Your personal access token has been revoked"
EXPIRED_SUBJECT = "Your personal access token has expired"
PROJECT_BOT_SUBJECT = "A project access token will expire soon"
GROUP_BOT_SUBJECT = "A group access token will expire soon"


def personal_subject(days: int) -> str:
    return f"Your personal access tokens will expire in {days} days or less"


def run(server: LiveServer, name: str, *, dry_run: bool = False) -> JobRun:
    runtime = server.runtime
    job_run = JobRun(runtime.sessions, runtime.instance, runtime.clock, dry_run=dry_run)
    JOBS[name].body(job_run)
    return job_run


def outbox(server: LiveServer, to: str, subject: str | None = None) -> list[OutboxMessage]:
    """What keycrew wrote to ``to`` (the outbox: written at once, unlike delivery)."""
    with server.runtime.sessions() as db:
        query = select(OutboxMessage).where(OutboxMessage.to_address == to.lower())
        if subject is not None:
            query = query.where(OutboxMessage.subject == subject)
        return list(db.scalars(query.order_by(OutboxMessage.id)).all())


def received(sink: MailSink, to: str, subject: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
    """The messages with ``subject`` the SMTP server received for ``to``, once there are ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in sink.messages(to) if m.subject == subject]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} {subject!r} message(s) to {to}, expected {count}")
        time.sleep(0.05)


def token_row(server: LiveServer, token_id: int) -> PersonalAccessToken:
    with server.runtime.sessions() as db:
        row = db.get(PersonalAccessToken, token_id)
        assert row is not None
        db.expunge(row)
        return row


def today(server: LiveServer) -> dt.date:
    return server.clock.now().date()


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, 30), dt.UTC)


def person(factory: Factory) -> dict[str, Any]:
    return factory.user()


def pat(server: LiveServer, user_id: int, expires_at: dt.date, name: str | None = None) -> dict[str, Any]:
    response = server.root(
        "POST",
        f"/users/{user_id}/personal_access_tokens",
        json={"name": name or uid("tok"), "scopes": ["read_api"], "expires_at": expires_at.isoformat()},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_each_interval_is_announced_once_and_the_expiry_on_the_day(
    server: LiveServer, factory: Factory, smtp_sink: MailSink
) -> None:
    user = person(factory)
    email = user["email"]
    expiry = today(server) + dt.timedelta(days=70)
    token = pat(server, user["id"], expiry, name=uid("deploy-"))

    # 70 days before: in no window yet.
    run(server, EXPIRING)
    assert outbox(server, email, personal_subject(60)) == []

    for days, day_offset in ((60, 60), (30, 30), (7, 7)):
        server.clock.travel_to(at(expiry - dt.timedelta(days=day_offset), 1))
        first = run(server, EXPIRING)
        again = run(server, EXPIRING)
        assert len(outbox(server, email, personal_subject(days))) == 1, days
        assert again.counts["emails"] == 0 or all(email not in line for line in again.notes)
        message = received(smtp_sink, email, personal_subject(days))[0]
        assert token["name"] in message.body()
        assert f"{day_offset} days left" in message.body()
        assert token["name"] in message.body("html")
        assert first.counts["tokens"] >= 1
    row = token_row(server, token["id"])
    assert row.sixty_days_notification_sent_at is not None
    assert row.thirty_days_notification_sent_at is not None
    assert row.seven_days_notification_sent_at is not None
    assert row.expire_notification_delivered is True
    assert row.after_expiry_notification_delivered is False

    # The days between send nothing more; the expired e-mail waits for the day itself.
    server.clock.travel_to(at(expiry - dt.timedelta(days=1), 2))
    run(server, EXPIRING)
    run(server, EXPIRED)
    assert outbox(server, email, EXPIRED_SUBJECT) == []
    assert len([m for m in outbox(server, email) if "will expire" in m.subject]) == 3

    server.clock.travel_to(at(expiry, 2))
    run(server, EXPIRED)
    run(server, EXPIRED)
    assert len(outbox(server, email, EXPIRED_SUBJECT)) == 1
    assert token["name"] in received(smtp_sink, email, EXPIRED_SUBJECT)[0].body()
    assert token_row(server, token["id"]).after_expiry_notification_delivered is True


def test_one_email_lists_all_of_a_persons_expiring_tokens(
    server: LiveServer, factory: Factory, smtp_sink: MailSink
) -> None:
    user = person(factory)
    names = [uid("a-"), uid("b-"), uid("c-")]
    for offset, name in zip((2, 4, 6), names, strict=True):
        pat(server, user["id"], today(server) + dt.timedelta(days=offset), name=name)
    # A token far from expiry and a revoked one are not mentioned.
    later = pat(server, user["id"], today(server) + dt.timedelta(days=200), name=uid("later-"))
    gone = pat(server, user["id"], today(server) + dt.timedelta(days=3), name=uid("gone-"))
    assert server.root("DELETE", f"/personal_access_tokens/{gone['id']}").status_code == 204

    run(server, EXPIRING)

    assert len(outbox(server, user["email"], personal_subject(7))) == 1
    body = received(smtp_sink, user["email"], personal_subject(7))[0].body()
    for name in names:
        assert name in body
    assert later["name"] not in body
    assert gone["name"] not in body


def _project_token(server: LiveServer, project_id: int, token: str, expires_at: dt.date) -> dict[str, Any]:
    response = server.request(
        "POST",
        f"/projects/{project_id}/access_tokens",
        token=token,
        json={
            "name": uid("ptok-"),
            "scopes": ["read_api"],
            "access_level": 30,
            "expires_at": expires_at.isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _bot_email(server: LiveServer, bot_user_id: int) -> str:
    response = server.root("GET", f"/users/{bot_user_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["email"])


def test_a_project_bots_token_goes_to_the_projects_owners_and_maintainers(
    server: LiveServer, factory: Factory, smtp_sink: MailSink
) -> None:
    inherited_owner = factory.user()
    maintainer = factory.user()
    developer = factory.user()
    silenced, silenced_token = factory.user_with_token()
    group_silenced, group_silenced_token = factory.user_with_token()
    group = factory.group()
    factory.member("groups", group["id"], inherited_owner["id"], 50)
    factory.member("groups", group["id"], group_silenced["id"], 10)
    project = factory.project(namespace_id=group["id"])
    factory.member("projects", project["id"], maintainer["id"], 40)
    factory.member("projects", project["id"], developer["id"], 30)
    factory.member("projects", project["id"], silenced["id"], 40)
    factory.member("projects", project["id"], group_silenced["id"], 40)
    # Another turned them off for the group above, leaving the project's at "global".
    response = server.request(
        "PUT",
        f"/groups/{group['id']}/notification_settings",
        token=group_silenced_token,
        json={"level": "disabled"},
    )
    assert response.status_code == 200, response.text
    # One Maintainer turned notifications off for this project only.
    response = server.request(
        "PUT",
        f"/projects/{project['id']}/notification_settings",
        token=silenced_token,
        json={"level": "disabled"},
    )
    assert response.status_code == 200, response.text
    bot_token = _project_token(server, project["id"], server.root_token, today(server) + dt.timedelta(days=5))
    bot_email = _bot_email(server, bot_token["user_id"])

    run(server, EXPIRING)
    run(server, EXPIRING)

    # Direct Maintainers (and Owners) are told once; not Developers, not an Owner of the group
    # above (inherited members are not told by default), not the bot, not who turned it off.
    got = {
        u["username"]: len(outbox(server, u["email"], PROJECT_BOT_SUBJECT))
        for u in (maintainer, developer, silenced, group_silenced, inherited_owner)
    }
    assert got == {
        maintainer["username"]: 1,
        developer["username"]: 0,
        silenced["username"]: 0,
        group_silenced["username"]: 0,
        inherited_owner["username"]: 0,
    }
    assert outbox(server, bot_email) == []
    message = received(smtp_sink, maintainer["email"], PROJECT_BOT_SUBJECT)[0]
    assert bot_token["name"] in message.body()
    assert project["path_with_namespace"] in message.body()
    assert token_row(server, bot_token["id"]).seven_days_notification_sent_at is not None


def test_a_personal_projects_bot_token_goes_to_its_holder(
    server: LiveServer, factory: Factory, smtp_sink: MailSink
) -> None:
    holder, holder_token = factory.user_with_token()
    project = factory.project(token=holder_token)
    bot_token = _project_token(server, project["id"], holder_token, today(server) + dt.timedelta(days=40))

    run(server, EXPIRING)

    assert len(outbox(server, holder["email"], PROJECT_BOT_SUBJECT)) == 1
    assert bot_token["name"] in received(smtp_sink, holder["email"], PROJECT_BOT_SUBJECT)[0].body()
    assert token_row(server, bot_token["id"]).sixty_days_notification_sent_at is not None


def test_a_group_bots_token_goes_to_the_groups_owners_only(
    server: LiveServer, factory: Factory, smtp_sink: MailSink
) -> None:
    owner, owner_token = factory.user_with_token()
    maintainer = factory.user()
    group = factory.group(token=owner_token)
    factory.member("groups", group["id"], maintainer["id"], 40)
    response = server.request(
        "POST",
        f"/groups/{group['id']}/access_tokens",
        token=owner_token,
        json={
            "name": uid("gtok-"),
            "scopes": ["read_api"],
            "access_level": 30,
            "expires_at": (today(server) + dt.timedelta(days=6)).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    bot_token = response.json()

    run(server, EXPIRING)

    assert len(outbox(server, owner["email"], GROUP_BOT_SUBJECT)) == 1
    assert outbox(server, maintainer["email"], GROUP_BOT_SUBJECT) == []
    assert bot_token["name"] in received(smtp_sink, owner["email"], GROUP_BOT_SUBJECT)[0].body()

    # On the day it expires, the Owner hears that too.
    server.clock.travel_to(at(today(server) + dt.timedelta(days=6), 2))
    run(server, EXPIRED)
    assert len(outbox(server, owner["email"], "A group access token has expired")) == 1


def test_disabled_notifications_and_blocked_users_receive_nothing(
    server: LiveServer, factory: Factory
) -> None:
    quiet, quiet_token = factory.user_with_token()
    blocked = factory.user()
    response = server.request("PUT", "/notification_settings", token=quiet_token, json={"level": "disabled"})
    assert response.status_code == 200, response.text
    quiet_pat = pat(server, quiet["id"], today(server) + dt.timedelta(days=3))
    blocked_pat = pat(server, blocked["id"], today(server) + dt.timedelta(days=3))
    assert server.root("POST", f"/users/{blocked['id']}/block").status_code == 201

    run(server, EXPIRING)

    assert [m for m in outbox(server, quiet["email"]) if "expire" in m.subject] == []
    assert [m for m in outbox(server, blocked["email"]) if "expire" in m.subject] == []
    # Nobody to tell: marked all the same, so the daily scans do not keep finding them.
    assert token_row(server, quiet_pat["id"]).seven_days_notification_sent_at is not None
    assert token_row(server, blocked_pat["id"]).seven_days_notification_sent_at is not None


def test_a_dry_run_says_what_it_would_send_and_sends_nothing(server: LiveServer, factory: Factory) -> None:
    user = person(factory)
    token = pat(server, user["id"], today(server) + dt.timedelta(days=25))

    dry = run(server, EXPIRING, dry_run=True)

    assert any(user["email"] in line and personal_subject(30) in line for line in dry.notes)
    assert all(
        "would e-mail" in line for line in dry.notes if "@" in line and ": " in line and "e-mail" in line
    )
    assert outbox(server, user["email"], personal_subject(30)) == []
    assert token_row(server, token["id"]).thirty_days_notification_sent_at is None

    real = run(server, EXPIRING)
    assert any(f"e-mailed {user['email']}" in line for line in real.notes)
    assert len(outbox(server, user["email"], personal_subject(30))) == 1


def test_created_rotated_and_revoked_tokens_are_announced_without_their_value(
    server: LiveServer, factory: Factory, smtp_sink: MailSink
) -> None:
    user = person(factory)
    email = user["email"]
    created = pat(server, user["id"], today(server) + dt.timedelta(days=90))
    message = received(smtp_sink, email, CREATED)[0]
    assert created["name"] in message.body()

    response = server.root("POST", f"/personal_access_tokens/{created['id']}/rotate")
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert created["name"] in received(smtp_sink, email, ROTATED)[0].body()

    assert server.root("DELETE", f"/personal_access_tokens/{rotated['id']}").status_code == 204
    assert created["name"] in received(smtp_sink, email, REVOKED)[0].body()

    # Exactly one of each, and never a token's value.
    subjects = [m.subject for m in outbox(server, email)]
    assert sorted(subjects) == sorted([CREATED, ROTATED, REVOKED])
    for value in (created["token"], rotated["token"]):
        for m in smtp_sink.messages(email):
            assert value not in m.message.as_string()
        for row in outbox(server, email):
            assert value not in str(row.context)


def test_no_notice_for_impersonation_tokens_or_bots(server: LiveServer, factory: Factory) -> None:
    user = person(factory)
    response = server.root(
        "POST", f"/users/{user['id']}/impersonation_tokens", json={"name": uid("imp"), "scopes": ["api"]}
    )
    assert response.status_code == 201, response.text
    assert (
        server.root("DELETE", f"/users/{user['id']}/impersonation_tokens/{response.json()['id']}").status_code
        == 204
    )

    owner, owner_token = factory.user_with_token()
    project = factory.project(token=owner_token)
    bot_token = _project_token(server, project["id"], owner_token, today(server) + dt.timedelta(days=90))
    bot_email = _bot_email(server, bot_token["user_id"])
    revoke = server.request(
        "DELETE", f"/projects/{project['id']}/access_tokens/{bot_token['id']}", token=owner_token
    )
    assert revoke.status_code == 204, revoke.text

    assert outbox(server, user["email"]) == []
    assert outbox(server, bot_email) == []
    # The owner hears about their own token only (created by the factory), not the bot's.
    assert [m.subject for m in outbox(server, owner["email"])] == [CREATED]


LOCAL_HOOKS = "allow_local_requests_from_web_hooks_and_services"


@pytest.fixture
def receiver(server: LiveServer) -> Iterator[Receiver]:
    """A real HTTP receiver on 127.0.0.1, which hooks may reach while the test runs."""
    found = Receiver().start()
    response = server.root("PUT", "/application/settings", json={LOCAL_HOOKS: True})
    assert response.status_code == 200, response.text
    try:
        yield found
    finally:
        server.root("PUT", "/application/settings", json={LOCAL_HOOKS: False})
        found.stop()


def test_the_seven_day_notice_of_a_bot_token_fires_the_expiring_webhook(
    server: LiveServer, factory: Factory, receiver: Receiver
) -> None:
    project = factory.project()
    path = "/" + uid("hook")
    response = server.root(
        "POST",
        f"/projects/{project['id']}/hooks",
        json={"url": receiver.url + path, "resource_access_token_events": True, "push_events": False},
    )
    assert response.status_code == 201, response.text
    hook_id = response.json()["id"]
    soon = _project_token(server, project["id"], server.root_token, today(server) + dt.timedelta(days=4))
    later = _project_token(server, project["id"], server.root_token, today(server) + dt.timedelta(days=20))

    run(server, EXPIRING)
    run(server, EXPIRING)

    hooked = receiver.wait_for(1, path=path)[0]
    payload = hooked.json()
    assert hooked.header("X-Gitlab-Event") == "Resource Access Token Hook"
    assert payload["object_kind"] == "access_token"
    assert payload["event_name"] == "expiring_access_token"
    assert payload["object_attributes"]["id"] == soon["id"]
    assert payload["project"]["id"] == project["id"]
    # The 30-day notice of the other token fires nothing, and nothing fires twice.
    assert token_row(server, later["id"]).thirty_days_notification_sent_at is not None
    with server.runtime.sessions() as db:
        queued = db.scalars(select(WebHookDelivery.payload).where(WebHookDelivery.hook_id == hook_id)).all()
    assert [p["object_attributes"]["id"] for p in queued] == [soon["id"]]


def test_service_accounts_are_told_only_at_an_address_of_their_own(server: LiveServer) -> None:
    accounts = []
    for email in (None, f"{uid('robot')}@example.com"):
        body = {"name": uid("sa"), "username": uid("sa")} | ({"email": email} if email else {})
        response = server.root("POST", "/service_accounts", json=body)
        assert response.status_code == 201, response.text
        account = response.json()
        pat(server, account["id"], today(server) + dt.timedelta(days=45))
        accounts.append(account)
    generated, own = accounts
    assert generated["email"].endswith(f"@noreply.{server.runtime.instance.host}")

    run(server, EXPIRING)

    assert outbox(server, generated["email"]) == []
    assert [m.subject for m in outbox(server, own["email"])] == [CREATED, personal_subject(60)]


@pytest.fixture
def notify_inherited(server: LiveServer) -> Iterator[None]:
    """The instance's resource_access_token_notify_inherited on for one test."""
    name = "resource_access_token_notify_inherited"
    assert server.root("GET", "/application/settings").json()[name] is False
    assert server.root("PUT", "/application/settings", json={name: True}).status_code == 200
    yield
    assert server.root("PUT", "/application/settings", json={name: False}).status_code == 200


def test_inherited_owners_are_told_when_the_instance_says_so(
    server: LiveServer, factory: Factory, notify_inherited: None
) -> None:
    parent_owner = factory.user()
    parent_maintainer = factory.user()
    parent = factory.group()
    factory.member("groups", parent["id"], parent_owner["id"], 50)
    factory.member("groups", parent["id"], parent_maintainer["id"], 40)
    child = factory.group(parent_id=parent["id"])
    project = factory.project(namespace_id=child["id"])
    project_token = _project_token(
        server, project["id"], server.root_token, today(server) + dt.timedelta(days=3)
    )
    response = server.root(
        "POST",
        f"/groups/{child['id']}/access_tokens",
        json={
            "name": uid("gtok-"),
            "scopes": ["read_api"],
            "access_level": 30,
            "expires_at": (today(server) + dt.timedelta(days=3)).isoformat(),
        },
    )
    assert response.status_code == 201, response.text

    run(server, EXPIRING)

    # The project's Maintainers include the Maintainer of the group two levels up; the child
    # group's Owners include the parent's Owner, not its Maintainer.
    assert len(outbox(server, parent_owner["email"], PROJECT_BOT_SUBJECT)) == 1
    assert len(outbox(server, parent_maintainer["email"], PROJECT_BOT_SUBJECT)) == 1
    assert len(outbox(server, parent_owner["email"], GROUP_BOT_SUBJECT)) == 1
    assert outbox(server, parent_maintainer["email"], GROUP_BOT_SUBJECT) == []
    assert token_row(server, project_token["id"]).seven_days_notification_sent_at is not None
