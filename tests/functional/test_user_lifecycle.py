"""User states through python-gitlab: block, unblock, ban, unban, deactivate, activate, approve, reject.

Return values and refusals follow GitLab's lib/api/users.rb and app/services/users/*; every change
writes an audit event and takes effect on the user's tokens at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import gitlab
import pytest
from sqlalchemy import select, update

from keycrew.audit.models import AuditEvent
from keycrew.context import Actor
from keycrew.identity.models import User
from keycrew.identity.types import UserState
from keycrew.identity.users import create_user
from tests.support.live import Factory, LiveServer, uid

PASSWORD = "E4596f8be406Bc3a14a4ccdb1df80587$3"


def new_user(gl: gitlab.Gitlab) -> Any:
    name = uid("u")
    return gl.users.create(email=f"{name}@example.com", username=name, name=name, password=PASSWORD)


def set_user(server: LiveServer, user_id: int, **values: object) -> None:
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(User).where(User.id == user_id).values(**values))


def events_for(server: LiveServer, user_id: int) -> list[str]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent.event_name)
                .where(AuditEvent.target_type == "User", AuditEvent.target_id == user_id)
                .order_by(AuditEvent.id)
            ).all()
        )


def pending_user(server: LiveServer) -> int:
    """A user awaiting approval (as sign-ups are when admin approval is required)."""
    name = uid("p")
    with server.runtime.sessions() as db, db.begin():
        ctx = server.runtime.ctx(db, Actor.system())
        user = create_user(
            ctx,
            username=name,
            email=f"{name}@example.com",
            name=name,
            password=PASSWORD,
            state=UserState.BLOCKED_PENDING_APPROVAL,
        )
        return user.id


def test_block_unblock_return_values(server: LiveServer, gl: gitlab.Gitlab) -> None:
    # python-gitlab's upstream functional test, step by step.
    user = new_user(gl)
    assert user.block() is True
    assert user.state == "blocked"
    assert user in gl.users.list(blocked=True, get_all=True)
    assert user.block() is None  # already blocked: GitLab answers null
    assert user.unblock() is True
    assert user.state == "active"
    assert user in gl.users.list(blocked=False, username=user.username)
    assert user.unblock() is False  # already active
    assert events_for(server, user.id)[-2:] == ["user.blocked", "user.unblocked"]
    assert events_for(server, user.id).count("user.blocked") == 1


def test_actions_answer_201_with_raw_json(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    response = server.root("POST", f"/users/{user['id']}/block")
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    assert response.text == "true"
    again = server.root("POST", f"/users/{user['id']}/block")
    assert (again.status_code, again.text) == (201, "null")


def test_blocking_stops_the_token_at_once(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    assert server.request("GET", "/user", token=token).status_code == 200
    assert server.root("POST", f"/users/{user['id']}/block").json() is True
    response = server.request("GET", "/user", token=token)
    assert response.status_code == 403
    assert response.json() == {"message": "403 Forbidden - Your account has been blocked."}
    assert server.root("POST", f"/users/{user['id']}/unblock").json() is True
    assert server.request("GET", "/user", token=token).status_code == 200


def test_block_refusals(server: LiveServer, factory: Factory) -> None:
    response = server.root("POST", "/users/1/block")
    assert response.status_code == 403
    assert response.json() == {
        "message": "403 Forbidden - The API initiating user cannot be blocked by the API"
    }
    _user, token = factory.user_with_token(["api"])
    other = factory.user()
    response = server.request("POST", f"/users/{other['id']}/block", token=token)
    assert response.status_code == 403
    assert server.root("GET", f"/users/{other['id']}").json()["state"] == "active"
    assert server.request("POST", f"/users/{other['id']}/block").status_code == 401


def test_ban_and_unban(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl)
    user.ban()
    assert gl.users.get(user.id).state == "banned"
    with pytest.raises(gitlab.GitlabBanError) as twice:
        user.ban()
    assert twice.value.response_code == 403
    assert twice.value.error_message == "You cannot ban banned users."
    # A banned user counts as blocked: blocking again is a no-op.
    assert server.root("POST", f"/users/{user.id}/block").json() is None
    user.unban()
    assert gl.users.get(user.id).state == "active"
    with pytest.raises(gitlab.GitlabUnbanError) as active:
        user.unban()
    assert active.value.error_message == "You cannot unban active users."
    assert user.block() is True
    with pytest.raises(gitlab.GitlabBanError) as blocked:
        user.ban()
    assert blocked.value.error_message == "You cannot ban blocked users."
    assert events_for(server, user.id)[-3:] == ["user.banned", "user.unbanned", "user.blocked"]


def test_unblock_lifts_a_ban(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl)
    user.ban()
    assert user.unblock() is True
    assert gl.users.get(user.id).state == "active"


def test_deactivate_and_activate(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    user = new_user(gl)
    token = factory.token(user.id)
    assert user.deactivate() is True
    assert user.state == "deactivated"
    assert gl.users.get(user.id).state == "deactivated"
    response = server.request("GET", "/user", token=token)
    assert response.status_code == 403
    assert "Your account has been deactivated by your administrator" in response.json()["message"]
    assert user.deactivate() is None  # already deactivated
    with pytest.raises(gitlab.GitlabUnblockError) as unblock:
        user.unblock()
    assert unblock.value.error_message == "403 Forbidden - Deactivated users cannot be unblocked by the API"
    assert user.activate() is True
    assert user.state == "active"
    assert user.activate() is True  # activating an active user succeeds too
    assert server.request("GET", "/user", token=token).status_code == 200
    assert events_for(server, user.id)[-2:] == ["user.deactivated", "user.activated"]


def test_deactivate_and_activate_refusals(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl)
    assert user.block() is True
    with pytest.raises(gitlab.GitlabDeactivateError) as blocked:
        user.deactivate()
    assert blocked.value.response_code == 403
    assert blocked.value.error_message == "Error occurred. A blocked user cannot be deactivated"
    with pytest.raises(gitlab.GitlabActivateError) as activate:
        user.activate()
    assert activate.value.error_message == "Error occurred. A blocked user must be unblocked to be activated"
    recent = new_user(gl)
    set_user(server, recent.id, last_activity_on=server.clock.now().date() - dt.timedelta(days=10))
    with pytest.raises(gitlab.GitlabDeactivateError) as active:
        recent.deactivate()
    assert active.value.error_message == (
        "The user you are trying to deactivate has been active in the past 90 days and cannot be deactivated"
    )
    set_user(server, recent.id, last_activity_on=server.clock.now().date() - dt.timedelta(days=91))
    assert recent.deactivate() is True


def test_deactivation_follows_the_dormant_users_period(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl)
    set_user(server, user.id, last_activity_on=server.clock.now().date() - dt.timedelta(days=100))
    setting = "deactivate_dormant_users_period"
    assert server.root("PUT", "/application/settings", json={setting: 120}).status_code == 200
    try:
        with pytest.raises(gitlab.GitlabDeactivateError) as active:
            user.deactivate()
        assert active.value.error_message == (
            "The user you are trying to deactivate has been active in the past 120 days and cannot be "
            "deactivated"
        )
    finally:
        assert server.root("PUT", "/application/settings", json={setting: 90}).status_code == 200
    assert user.deactivate() is True


def test_approve_and_reject(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    user_id = pending_user(server)
    assert gl.users.get(user_id).state == "blocked_pending_approval"
    response = server.root("POST", f"/users/{user_id}/approve")
    assert response.status_code == 201
    assert response.json() == {"message": "Success", "http_status": "created", "status": "success"}
    assert gl.users.get(user_id).state == "active"
    again = server.root("POST", f"/users/{user_id}/approve")
    assert again.status_code == 409
    assert again.json() == {"message": "The user you are trying to approve is not pending approval"}
    with pytest.raises(gitlab.GitlabUserRejectError) as not_pending:
        gl.users.get(user_id).reject()
    assert not_pending.value.response_code == 409
    assert not_pending.value.error_message == "User does not have a pending request"

    rejected = pending_user(server)
    user = gl.users.get(rejected)
    user.reject()
    with pytest.raises(gitlab.GitlabGetError):
        gl.users.get(rejected)
    events = events_for(server, rejected)
    assert "user.rejected" in events
    assert "user.deleted" in events

    approved = gl.users.get(pending_user(server))
    assert approved.approve() == {"message": "Success", "http_status": "created", "status": "success"}
    assert gl.users.get(approved.id).state == "active"
    _member, token = factory.user_with_token(["api"])
    response = server.request("POST", f"/users/{pending_user(server)}/approve", token=token)
    assert response.status_code == 403
    assert response.json() == {"message": "You are not allowed to approve a user"}
    response = server.request("POST", f"/users/{pending_user(server)}/reject", token=token)
    assert response.json() == {"message": "You are not allowed to reject a user"}


def test_unblock_approves_a_pending_user(server: LiveServer) -> None:
    user_id = pending_user(server)
    assert server.root("POST", f"/users/{user_id}/unblock").json() is True
    assert server.root("GET", f"/users/{user_id}").json()["state"] == "active"


def test_concurrent_blocks_change_the_state_once(server: LiveServer, factory: Factory) -> None:
    from concurrent.futures import ThreadPoolExecutor

    user = factory.user()
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: server.root("POST", f"/users/{user['id']}/block"), range(5)))
    assert all(a.status_code == 201 for a in answers)
    assert sorted(a.text for a in answers) == ["null"] * 4 + ["true"]
    assert events_for(server, user["id"]).count("user.blocked") == 1
