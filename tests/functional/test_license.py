"""GET /license: the plan, the paid seats and who takes a seat (GitLab's billable users)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gitlab
import pytest
from sqlalchemy import update

from keycrew.access.seats import billable_users_count
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.instance.models import InstanceSettings
from keycrew.instance.settings import instance_settings
from tests.support.live import Factory, LiveServer

GUEST, REPORTER, OWNER = 10, 20, 50


@pytest.fixture
def plan(server: LiveServer) -> Iterator[Any]:
    """Set the instance's plan and seats for one test; the original license comes back after."""
    with server.runtime.sessions() as db, db.begin():
        row = instance_settings(server.runtime.ctx(db, _system()))
        original = (row.plan, row.seats)

    def set_plan(name: str, seats: int | None) -> None:
        with server.runtime.sessions() as db, db.begin():
            db.execute(
                update(InstanceSettings).where(InstanceSettings.id == 1).values(plan=name, seats=seats)
            )

    yield set_plan
    set_plan(*original)


def _system() -> Any:
    from keycrew.context import Actor

    return Actor.system()


def active_users(server: LiveServer) -> int:
    response = server.root("GET", "/license")
    assert response.status_code == 200, response.text
    return int(response.json()["active_users"])


def set_user(server: LiveServer, user_id: int, **values: object) -> None:
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(User).where(User.id == user_id).values(**values))


def test_license_shape(server: LiveServer, plan: Any) -> None:
    plan("premium", 25)
    info = server.gl().get_license()
    assert info["plan"] == "premium"
    assert info["user_limit"] == 25
    assert {
        "id",
        "plan",
        "created_at",
        "starts_at",
        "expires_at",
        "historical_max",
        "maximum_user_count",
        "licensee",
        "add_ons",
        "expired",
        "overage",
        "user_limit",
        "active_users",
    } <= set(info)
    assert info["expired"] is False
    assert isinstance(info["licensee"], dict)
    assert info["historical_max"] >= info["active_users"]
    assert info["overage"] == max(0, info["historical_max"] - 25)


def test_license_is_for_admins(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["api"])
    assert server.request("GET", "/license", token=token).status_code == 403
    assert server.request("GET", "/license").status_code == 401
    with pytest.raises(gitlab.GitlabAuthenticationError):
        gitlab.Gitlab(server.url).get_license()


def test_billable_users_on_premium(server: LiveServer, factory: Factory, plan: Any) -> None:
    plan("premium", None)
    before = active_users(server)
    human = factory.user()
    assert active_users(server) == before + 1
    detail = server.root("GET", f"/users/{human['id']}").json()
    assert detail["using_license_seat"] is True
    # Blocked, deactivated and pending users take no seat.
    for state in ("blocked", "deactivated", "blocked_pending_approval", "banned"):
        set_user(server, human["id"], state=state)
        assert active_users(server) == before, state
    set_user(server, human["id"], state="active")
    assert active_users(server) == before + 1
    # Bots, service accounts and internal users never do.
    for kind in (UserType.PROJECT_BOT, UserType.SERVICE_ACCOUNT, UserType.PLACEHOLDER, UserType.IMPORT_USER):
        set_user(server, human["id"], user_type=int(kind))
        assert active_users(server) == before, kind.name
        assert server.root("GET", f"/users/{human['id']}").json()["using_license_seat"] is False
    set_user(server, human["id"], user_type=int(UserType.HUMAN))
    assert active_users(server) == before + 1
    # The overage is the seats in use beyond the paid ones.
    plan("premium", 1)
    info = server.gl().get_license()
    assert info["user_limit"] == 1
    assert info["overage"] == info["active_users"] - 1


def test_guests_take_no_seat_on_ultimate(server: LiveServer, factory: Factory, plan: Any) -> None:
    plan("ultimate", 100)
    group = factory.group()
    before = active_users(server)
    user = factory.user()
    # No role anywhere: free on Ultimate.
    assert active_users(server) == before
    factory.member("groups", group["id"], user["id"], GUEST)
    assert active_users(server) == before
    assert server.root("GET", f"/users/{user['id']}").json()["using_license_seat"] is False
    response = server.root(
        "PUT", f"/groups/{group['id']}/members/{user['id']}", json={"access_level": REPORTER}
    )
    assert response.status_code == 200, response.text
    assert active_users(server) == before + 1
    assert server.root("GET", f"/users/{user['id']}").json()["using_license_seat"] is True
    # The same user on Premium takes a seat whatever the role.
    plan("premium", 100)
    other = factory.user()
    factory.member("groups", group["id"], other["id"], GUEST)
    with server.runtime.sessions() as db:
        count = billable_users_count(server.runtime.ctx(db, _system()))
    assert active_users(server) == count
    assert server.root("GET", f"/users/{other['id']}").json()["using_license_seat"] is True
