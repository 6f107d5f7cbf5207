"""GitLab Admin Bot's jobs: deactivate-dormant-users, delete-unconfirmed-users,
delete-inactive-projects, remove-expired-members.

Each runs against a live server of its own (one per backend: the jobs act on every user and project
of the instance, so they must not touch the shared server's), with the clock moved, its e-mail
delivered to the session's real SMTP server. Each rule is checked with its exceptions, the audit
events name GitLab Admin Bot, a second run does nothing twice, and a dry run changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import gitlab
import pytest
from sqlalchemy import func, select, update

from keycrew.access.inactivity import InactiveProjectWarning
from keycrew.access.models import Member
from keycrew.activity.kinds import Action
from keycrew.activity.models import ActivityEvent
from keycrew.audit.models import AuditEvent
from keycrew.automation.admin_bot import add_months, inactive_project_subject, unconfirmed_reason
from keycrew.automation.jobs import JobRun
from keycrew.automation.registry import JOBS
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.namespaces.models import Project
from keycrew.outbox.models import OutboxMessage
from tests.support.backends import BACKENDS
from tests.support.live import Factory, LiveServer, start_server
from tests.support.mail import MailSink
from tests.support.web import sign_in

PASSWORD = "a-long-password-1"
DEVELOPER, MAINTAINER, OWNER = 30, 40, 50


@pytest.fixture(scope="module", params=BACKENDS)
def bot_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, smtp_sink: MailSink
) -> Iterator[LiveServer]:
    nodes = start_server(
        request.param,
        tmp_path_factory.mktemp(f"admin-bot-{request.param}"),
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
    )
    yield next(nodes)
    nodes.close()


@pytest.fixture
def live(bot_server: LiveServer) -> Iterator[LiveServer]:
    """The module's server; its clock and the Admin Bot settings go back after each test."""
    yield bot_server
    bot_server.clock.reset()
    reset = bot_server.root(
        "PUT",
        "/application/settings",
        json={
            "deactivate_dormant_users": False,
            "deactivate_dormant_users_period": 90,
            "user_deactivation_emails_enabled": True,
            "delete_unconfirmed_users": False,
            "email_confirmation_setting": "off",
            "delete_inactive_projects": False,
            "inactive_projects_min_size_mb": 0,
        },
    )
    assert reset.status_code == 200, reset.text


@pytest.fixture
def make(live: LiveServer) -> Factory:
    return Factory(live)


def settings(server: LiveServer, **values: Any) -> None:
    response = server.root("PUT", "/application/settings", json=values)
    assert response.status_code == 200, response.text


def run_job(server: LiveServer, name: str, *, dry_run: bool = False) -> JobRun:
    run = JobRun(server.runtime.sessions, server.runtime.instance, server.runtime.clock, dry_run=dry_run)
    JOBS[name].body(run)
    return run


def set_user(server: LiveServer, user_id: int, **values: Any) -> None:
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(User).where(User.id == user_id).values(**values))


def state_of(server: LiveServer, user_id: int) -> str | None:
    response = server.root("GET", f"/users/{user_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return str(response.json()["state"])


def admin_bot_id(server: LiveServer) -> int:
    with server.runtime.sessions() as db:
        found = db.scalar(select(User.id).where(User.user_type == int(UserType.ADMIN_BOT)))
    assert found is not None
    return int(found)


def audit(server: LiveServer, event: str, **where: Any) -> list[AuditEvent]:
    with server.runtime.sessions() as db:
        query = select(AuditEvent).where(AuditEvent.event_name == event)
        for column, value in where.items():
            query = query.where(getattr(AuditEvent, column) == value)
        return list(db.scalars(query.order_by(AuditEvent.id)))


def outbox(server: LiveServer, template: str, user_id: int) -> list[OutboxMessage]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.template == template, OutboxMessage.to_user_id == user_id
                )
            )
        )


# -- deactivate-dormant-users -------------------------------------------------------------------


def test_dormant_users_are_deactivated_by_admin_bot_emailed_and_reactivated_on_sign_in(
    live: LiveServer, make: Factory, smtp_sink: MailSink
) -> None:
    settings(live, deactivate_dormant_users=True, deactivate_dormant_users_period=90)
    later = live.clock.now() + dt.timedelta(days=200)
    dormant = make.user()
    recent = make.user()
    never_active = make.user()  # created now: 200 days before the run
    admin = make.user(admin=True)
    blocked = make.user()
    bot_project = make.project()
    bot_token = live.root(
        "POST", f"/projects/{bot_project['id']}/access_tokens", json={"name": "ci", "scopes": ["api"]}
    )
    assert bot_token.status_code == 201, bot_token.text
    bot_id = int(bot_token.json()["user_id"])
    account = live.root("POST", "/service_accounts", json={})
    assert account.status_code == 201, account.text
    service_account_id = int(account.json()["id"])
    old_day = (later - dt.timedelta(days=91)).date()
    for user_id in (dormant["id"], admin["id"], blocked["id"], bot_id, service_account_id):
        set_user(live, user_id, last_activity_on=old_day)
    set_user(live, recent["id"], last_activity_on=(later - dt.timedelta(days=10)).date())
    assert live.root("POST", f"/users/{blocked['id']}/block").status_code == 201

    live.clock.travel_to(later)
    young = make.user()  # created at the run's time: fewer than 7 days ago
    run = run_job(live, "deactivate-dormant-users")

    assert state_of(live, dormant["id"]) == "deactivated"
    assert state_of(live, never_active["id"]) == "deactivated"
    assert state_of(live, recent["id"]) == "active"
    assert state_of(live, young["id"]) == "active"
    assert state_of(live, admin["id"]) == "active"
    assert state_of(live, blocked["id"]) == "blocked"
    assert state_of(live, bot_id) == "active"
    assert state_of(live, service_account_id) == "active"
    assert run.counts["deactivated"] >= 2
    assert f"deactivated @{dormant['username']}" in run.notes

    bot = admin_bot_id(live)
    events = audit(live, "user.deactivated", target_id=dormant["id"])
    assert [e.author_id for e in events] == [bot]

    mail = smtp_sink.wait_for(to=dormant["email"])
    assert [m.subject for m in mail] == ["Your account has been deactivated"]
    assert dormant["username"] in mail[0].body()
    assert smtp_sink.wait_for(to=never_active["email"])[0].subject == "Your account has been deactivated"
    assert smtp_sink.messages(to=recent["email"]) == []

    # A second run deactivates and e-mails nobody twice.
    again = run_job(live, "deactivate-dormant-users")
    assert again.counts["deactivated"] == 0
    assert len(outbox(live, "user_deactivated", dormant["id"])) == 1
    assert len(audit(live, "user.deactivated", target_id=dormant["id"])) == 1

    # Signing in activates the account again.
    _session, status = sign_in(live.url, dormant["username"], PASSWORD)
    assert status == 303
    assert state_of(live, dormant["id"]) == "active"


def test_dormant_users_stay_when_the_setting_is_off_and_a_dry_run_changes_nothing(
    live: LiveServer, make: Factory
) -> None:
    dormant = make.user()
    later = live.clock.now() + dt.timedelta(days=120)
    set_user(live, dormant["id"], last_activity_on=(later - dt.timedelta(days=100)).date())
    live.clock.travel_to(later)

    off = run_job(live, "deactivate-dormant-users")
    assert off.counts["deactivated"] == 0
    assert state_of(live, dormant["id"]) == "active"

    settings(live, deactivate_dormant_users=True, user_deactivation_emails_enabled=False)
    dry = run_job(live, "deactivate-dormant-users", dry_run=True)
    assert f"deactivated @{dormant['username']}" in dry.notes
    assert state_of(live, dormant["id"]) == "active"
    assert audit(live, "user.deactivated", target_id=dormant["id"]) == []

    real = run_job(live, "deactivate-dormant-users")
    assert f"deactivated @{dormant['username']}" in real.notes
    assert state_of(live, dormant["id"]) == "deactivated"
    # user_deactivation_emails_enabled is off: no e-mail.
    assert outbox(live, "user_deactivated", dormant["id"]) == []


def test_a_user_active_within_a_longer_period_is_kept(live: LiveServer, make: Factory) -> None:
    settings(live, deactivate_dormant_users=True, deactivate_dormant_users_period=180)
    user = make.user()
    later = live.clock.now() + dt.timedelta(days=300)  # within the root token's life
    set_user(live, user["id"], last_activity_on=(later - dt.timedelta(days=120)).date())
    live.clock.travel_to(later)
    run_job(live, "deactivate-dormant-users")
    assert state_of(live, user["id"]) == "active"
    set_user(live, user["id"], last_activity_on=(later - dt.timedelta(days=180)).date())
    run_job(live, "deactivate-dormant-users")
    assert state_of(live, user["id"]) == "deactivated"


# -- delete-unconfirmed-users -------------------------------------------------------------------


def test_unconfirmed_users_are_deleted_after_the_days_only_while_confirmation_is_on(
    live: LiveServer, make: Factory
) -> None:
    settings(live, email_confirmation_setting="soft")
    unconfirmed = make.user()
    confirmed = make.user(skip_confirmation=True)
    signed_in_once = make.user()
    set_user(live, signed_in_once["id"], sign_in_count=1)
    assert live.root("GET", f"/users/{unconfirmed['id']}").json()["confirmed_at"] is None
    assert live.root("GET", f"/users/{confirmed['id']}").json()["confirmed_at"] is not None

    settings(live, delete_unconfirmed_users=True, unconfirmed_users_delete_after_days=3)
    live.clock.travel_to(live.clock.now() + dt.timedelta(days=4))
    young = make.user()

    # E-mail confirmation off: nothing is deleted.
    settings(live, email_confirmation_setting="off")
    assert run_job(live, "delete-unconfirmed-users").counts["deleted"] == 0
    assert state_of(live, unconfirmed["id"]) == "active"

    settings(live, email_confirmation_setting="hard")
    dry = run_job(live, "delete-unconfirmed-users", dry_run=True)
    assert f"deleted @{unconfirmed['username']}" in dry.notes
    assert state_of(live, unconfirmed["id"]) == "active"

    run = run_job(live, "delete-unconfirmed-users")
    assert f"deleted @{unconfirmed['username']}" in run.notes
    assert state_of(live, unconfirmed["id"]) is None
    for kept in (confirmed, signed_in_once, young):
        assert state_of(live, kept["id"]) == "active"
    deleted = audit(live, "user.deleted", target_id=unconfirmed["id"])
    assert [e.author_id for e in deleted] == [admin_bot_id(live)]
    assert deleted[0].details["reason"] == unconfirmed_reason(3)

    again = run_job(live, "delete-unconfirmed-users")
    assert f"deleted @{unconfirmed['username']}" not in again.notes
    assert len(audit(live, "user.deleted", target_id=unconfirmed["id"])) == 1


def test_email_confirmation_setting_takes_gitlab_values_only(live: LiveServer) -> None:
    gl = live.gl()
    current = gl.settings.get()
    assert current.email_confirmation_setting == "off"
    assert current.user_deactivation_emails_enabled is True
    bad = live.root("PUT", "/application/settings", json={"email_confirmation_setting": "sometimes"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "email_confirmation_setting does not have a valid value"}
    current.email_confirmation_setting = "soft"
    current.save()
    assert gl.settings.get().email_confirmation_setting == "soft"


# -- delete-inactive-projects -------------------------------------------------------------------


def _warning(server: LiveServer, project_id: int) -> InactiveProjectWarning | None:
    with server.runtime.sessions() as db:
        return db.get(InactiveProjectWarning, project_id)


def test_inactive_projects_are_warned_about_then_deleted_unless_active_again(
    live: LiveServer, make: Factory, smtp_sink: MailSink
) -> None:
    settings(
        live,
        inactive_projects_send_warning_email_after_months=1,
        inactive_projects_delete_after_months=2,
        inactive_projects_min_size_mb=0,
    )
    owner, owner_token = make.user_with_token(skip_confirmation=True)
    maintainer = make.user()
    developer = make.user()
    group = make.group(token=owner_token)
    staffed = make.project(namespace_id=group["id"])
    make.member("projects", staffed["id"], maintainer["id"], MAINTAINER)
    make.member("projects", staffed["id"], developer["id"], DEVELOPER)
    unstaffed = make.project(namespace_id=group["id"])  # no direct Maintainer: the group's Owners hear
    revived = make.project(namespace_id=group["id"])
    with live.runtime.sessions() as db, db.begin():  # archived projects are included
        db.execute(update(Project).where(Project.id == staffed["id"]).values(archived=True))

    warn_at = add_months(live.clock.now(), 1) + dt.timedelta(days=1)
    live.clock.travel_to(warn_at)
    # Off: nothing happens.
    assert run_job(live, "delete-inactive-projects").counts["warned"] == 0
    settings(live, delete_inactive_projects=True, inactive_projects_min_size_mb=1)
    # Above the size threshold only (an empty repository weighs far less than 1 MB).
    assert run_job(live, "delete-inactive-projects").counts["warned"] == 0
    settings(live, inactive_projects_min_size_mb=0)

    dry = run_job(live, "delete-inactive-projects", dry_run=True)
    assert dry.counts["warned"] >= 3
    assert _warning(live, staffed["id"]) is None

    run = run_job(live, "delete-inactive-projects")
    assert run.counts["warned"] >= 3
    deletion_on = add_months(warn_at, 1).date()
    warning = _warning(live, staffed["id"])
    assert warning is not None
    assert warning.deletion_on == deletion_on
    subject = inactive_project_subject(staffed["name"], deletion_on)
    mail = smtp_sink.wait_for(to=maintainer["email"])
    assert [m.subject for m in mail] == [subject]
    assert deletion_on.isoformat() in mail[0].body()
    assert deletion_on.isoformat() in mail[0].body("html")
    assert smtp_sink.messages(to=developer["email"]) == []
    # The owner also received "A new personal access token has been created".
    to_owner = smtp_sink.wait_for(to=owner["email"], count=3)
    assert {m.subject for m in to_owner if m.subject.startswith("Action required")} == {
        inactive_project_subject(unstaffed["name"], deletion_on),
        inactive_project_subject(revived["name"], deletion_on),
    }
    bot = admin_bot_id(live)
    assert [e.author_id for e in audit(live, "project.inactivity_warning_sent", entity_id=staffed["id"])] == [
        bot
    ]

    # Again the same day: nobody is warned twice.
    assert run_job(live, "delete-inactive-projects").counts["warned"] == 0
    assert len(outbox(live, "inactive_project_deletion_warning", maintainer["id"])) == 1

    # Activity after the warning voids it.
    live.clock.travel_to(warn_at + dt.timedelta(hours=1))
    issue = live.request(
        "POST", f"/projects/{revived['id']}/issues", token=owner_token, json={"title": "alive"}
    )
    assert issue.status_code == 201, issue.text
    run_job(live, "delete-inactive-projects")
    assert _warning(live, revived["id"]) is None

    # Not yet the deletion date: nothing is deleted.
    live.clock.travel_to(dt.datetime.combine(deletion_on, dt.time(), dt.UTC) - dt.timedelta(hours=1))
    assert run_job(live, "delete-inactive-projects").counts["deleted"] == 0

    live.clock.travel_to(dt.datetime.combine(deletion_on, dt.time(1), dt.UTC))
    done = run_job(live, "delete-inactive-projects")
    assert f"deleted {staffed['path_with_namespace']}" in done.notes
    assert live.root("GET", f"/projects/{staffed['id']}").status_code == 404
    assert live.root("GET", f"/projects/{unstaffed['id']}").status_code == 404
    assert live.root("GET", f"/projects/{revived['id']}").status_code == 200
    deleted = audit(live, "project.deleted", entity_id=staffed["id"])
    assert [e.author_id for e in deleted] == [bot]
    assert run_job(live, "delete-inactive-projects").counts["deleted"] == 0


# -- remove-expired-members ---------------------------------------------------------------------


def test_expired_memberships_are_removed_and_an_expired_bot_is_deleted(
    live: LiveServer, make: Factory
) -> None:
    gl: gitlab.Gitlab = live.gl()
    group = make.group()
    project = make.project(namespace_id=group["id"])
    leaving = make.user()
    staying = make.user()
    group_leaving = make.user()
    tomorrow = (live.clock.now() + dt.timedelta(days=1)).date().isoformat()
    gl_project = gl.projects.get(project["id"])
    gl_project.members.create({"user_id": leaving["id"], "access_level": DEVELOPER, "expires_at": tomorrow})
    gl_project.members.create({"user_id": staying["id"], "access_level": DEVELOPER})
    gl.groups.get(group["id"]).members.create(
        {"user_id": group_leaving["id"], "access_level": DEVELOPER, "expires_at": tomorrow}
    )
    bot_token = live.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "ci", "scopes": ["api"]}
    )
    assert bot_token.status_code == 201, bot_token.text
    bot_id = int(bot_token.json()["user_id"])
    with live.runtime.sessions() as db, db.begin():
        db.execute(
            update(Member)
            .where(Member.user_id == bot_id)
            .values(expires_at=(live.clock.now() + dt.timedelta(days=1)).date())
        )

    # Before the day: nothing goes.
    assert run_job(live, "remove-expired-members").counts["removed"] == 0
    live.clock.travel_to(live.clock.now() + dt.timedelta(days=2))
    dry = run_job(live, "remove-expired-members", dry_run=True)
    assert dry.counts["removed"] >= 3

    def memberships(user_id: int) -> int:
        with live.runtime.sessions() as db:
            return int(db.scalar(select(func.count(Member.id)).where(Member.user_id == user_id)) or 0)

    assert memberships(leaving["id"]) == 1

    run = run_job(live, "remove-expired-members")
    assert run.counts["removed"] >= 3
    assert memberships(leaving["id"]) == 0
    assert memberships(group_leaving["id"]) == 0
    assert memberships(staying["id"]) == 1
    assert state_of(live, bot_id) is None  # deleted with its membership
    bot = admin_bot_id(live)
    removed = audit(live, "member.removed", target_id=leaving["id"])
    assert [(e.author_id, e.details.get("reason")) for e in removed] == [(bot, "expired")]
    bot_deleted = audit(live, "user.deleted", target_id=bot_id)
    assert [(e.author_id, e.details["reason"]) for e in bot_deleted] == [(bot, "Membership expired")]
    with live.runtime.sessions() as db:
        expired = db.scalars(
            select(ActivityEvent.author_id).where(
                ActivityEvent.project_id == project["id"], ActivityEvent.action == int(Action.EXPIRED)
            )
        ).all()
    assert leaving["id"] in expired
    assert group_leaving["id"] not in expired
    events = live.root("GET", f"/projects/{project['id']}/events", params={"action": "expired"})
    assert events.status_code == 200, events.text
    assert {e["author_id"] for e in events.json()} >= {leaving["id"]}
    assert {e["action_name"] for e in events.json()} == {"removed due to membership expiration from"}

    assert run_job(live, "remove-expired-members").counts["removed"] == 0
    assert len(audit(live, "member.removed", target_id=leaving["id"])) == 1


def test_the_jobs_are_registered_with_gitlabs_schedules() -> None:
    assert {
        name: JOBS[name].schedule
        for name in JOBS
        if name
        in {
            "deactivate-dormant-users",
            "delete-unconfirmed-users",
            "delete-inactive-projects",
            "remove-expired-members",
        }
    } == {
        "deactivate-dormant-users": "21,42 0-4 * * *",
        "delete-unconfirmed-users": "0 * * * *",
        "delete-inactive-projects": "*/10 * * * *",
        "remove-expired-members": "10 0 * * *",
    }


def test_a_run_killed_mid_way_is_finished_by_the_next_without_doing_anything_twice(
    live: LiveServer, make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run dies inside its second batch (as under kill -9: that batch's transaction never
    commits); the next run deactivates and e-mails the rest, and each user exactly once."""
    import keycrew.automation.admin_bot as admin_bot

    settings(live, deactivate_dormant_users=True, deactivate_dormant_users_period=90)
    later = live.clock.now() + dt.timedelta(days=150)
    users = [make.user() for _ in range(5)]
    for user in users:
        set_user(live, user["id"], last_activity_on=(later - dt.timedelta(days=10)).date())
    live.clock.travel_to(later)
    # Dormant users left by earlier tests go first, so that only ours are left to walk.
    run_job(live, "deactivate-dormant-users")
    for user in users:
        set_user(live, user["id"], last_activity_on=(later - dt.timedelta(days=100)).date())
    ours = {user["id"] for user in users}
    monkeypatch.setattr(admin_bot, "USER_BATCH", 2)
    real = admin_bot.deactivate_user

    def dies_at_the_fourth(ctx: Any, user: User) -> Any:
        if user.id == users[3]["id"]:
            raise SystemExit("killed")
        return real(ctx, user)

    monkeypatch.setattr(admin_bot, "deactivate_user", dies_at_the_fourth)
    with pytest.raises(SystemExit):
        run_job(live, "deactivate-dormant-users")
    states = {user["id"]: state_of(live, user["id"]) for user in users}
    # The first batch committed; the second (users[2], users[3]) died with the run.
    assert states[users[0]["id"]] == states[users[1]["id"]] == "deactivated"
    assert states[users[2]["id"]] == states[users[3]["id"]] == states[users[4]["id"]] == "active"

    monkeypatch.setattr(admin_bot, "deactivate_user", real)
    run_job(live, "deactivate-dormant-users")
    assert {state_of(live, user_id) for user_id in ours} == {"deactivated"}
    for user_id in ours:
        assert len(audit(live, "user.deactivated", target_id=user_id)) == 1
        assert len(outbox(live, "user_deactivated", user_id)) == 1
