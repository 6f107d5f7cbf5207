"""Seats and the license: who is billable, and how many service accounts each plan allows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from keycrew.audit.models import AuditEvent
from keycrew.context import Actor
from keycrew.errors import BadParameter, Forbidden
from keycrew.identity.internal import admin_bot, ghost
from keycrew.identity.models import User
from keycrew.identity.service_accounts import (
    may_create_service_account,
    service_account_limit,
    service_accounts_count,
)
from keycrew.instance.settings import instance_settings, set_license
from tests.support.live import Factory, LiveServer, uid

NO_SEATS = {"message": "403 Forbidden - No more seats are available to create Service Account User"}


@contextmanager
def license_as(server: LiveServer, plan: str, seats: int | None) -> Iterator[None]:
    """Run the block under another license, then restore the one before (tests share a server)."""
    with server.runtime.sessions() as db, db.begin():
        settings = instance_settings(server.runtime.ctx(db, Actor.system()))
        before = (settings.plan, settings.seats)
        set_license(server.runtime.ctx(db, Actor.system()), plan, seats)
    try:
        yield
    finally:
        with server.runtime.sessions() as db, db.begin():
            set_license(server.runtime.ctx(db, Actor.system()), *before)


def _count(server: LiveServer) -> int:
    with server.runtime.sessions() as db:
        return service_accounts_count(server.runtime.ctx(db, Actor.system()))


def _active_users(server: LiveServer) -> int:
    response = server.root("GET", "/license")
    assert response.status_code == 200, response.text
    return int(response.json()["active_users"])


@pytest.mark.parametrize(
    ("plan", "seats", "existing", "allowed"),
    [
        ("free", None, 0, False),
        ("free", 100, 0, False),
        ("premium", 3, 2, True),
        ("premium", 3, 3, False),
        ("premium", 0, 0, False),
        ("premium", None, 10_000, True),  # no seat count: unlimited seats
        ("ultimate", 1, 10_000, True),
    ],
)
def test_plan_limit_rule(plan: str, seats: int | None, existing: int, allowed: bool) -> None:
    assert may_create_service_account(plan, seats, existing) is allowed
    assert service_account_limit("ultimate", 5) is None


def test_license_counts_humans_only(server: LiveServer, factory: Factory) -> None:
    # On Premium every active human takes a seat, whatever their role.
    with license_as(server, "premium", 1000):
        license = server.root("GET", "/license").json()
        assert (license["plan"], license["user_limit"]) == ("premium", 1000)
        before = _active_users(server)
        human = factory.user()
        assert _active_users(server) == before + 1
        # Service accounts (instance and group), project bots and internal users never do.
        server.root("POST", "/service_accounts", json={})
        group = factory.group()
        server.root("POST", f"/groups/{group['id']}/service_accounts", json={})
        project = factory.project()
        bot_token = server.root(
            "POST", f"/projects/{project['id']}/access_tokens", json={"name": "bot", "scopes": ["api"]}
        )
        assert bot_token.status_code == 201, bot_token.text
        with server.runtime.sessions() as db, db.begin():
            ctx = server.runtime.ctx(db, Actor.system())
            internal = {ghost(ctx).user_type, admin_bot(ctx).user_type}
        assert internal == {5, 11}
        assert _active_users(server) == before + 1
        # A blocked human frees the seat.
        assert server.root("POST", f"/users/{human['id']}/block").status_code == 201
        assert _active_users(server) == before
    # Billable users are humans only, checked against the database itself.
    with server.runtime.sessions() as db:
        bot_types = set(db.scalars(select(User.user_type).where(User.user_type != 0)).all())
    assert {13, 6, 5, 11} <= bot_types


def test_ultimate_counts_members_above_guest(server: LiveServer, factory: Factory) -> None:
    assert server.root("GET", "/license").json()["plan"] == "ultimate"
    project = factory.project()  # before counting: it may give root its first role
    before = _active_users(server)
    human = factory.user()
    account = server.root("POST", "/service_accounts", json={}).json()
    assert _active_users(server) == before  # no role yet: free on Ultimate
    factory.member("projects", project["id"], human["id"], 30)
    factory.member("projects", project["id"], account["id"], 30)
    assert _active_users(server) == before + 1
    guest = factory.user()
    factory.member("projects", project["id"], guest["id"], 10)
    assert _active_users(server) == before + 1


@pytest.mark.usefixtures("group_owners_create_service_accounts")
def test_free_plan_allows_no_service_accounts(server: LiveServer, factory: Factory) -> None:
    owner, owner_token = factory.user_with_token(["api"])
    group = factory.group(token=owner_token)
    project = factory.project(token=owner_token)
    with license_as(server, "free", None):
        before = _count(server)
        for path, token in (
            ("/service_accounts", server.root_token),
            (f"/groups/{group['id']}/service_accounts", owner_token),
            (f"/projects/{project['id']}/service_accounts", owner_token),
        ):
            response = server.request("POST", path, token=token, json={"username": uid("sa")})
            assert response.status_code == 403, (path, response.text)
            assert response.json() == NO_SEATS
        assert _count(server) == before
    assert (
        server.request(
            "POST", f"/groups/{group['id']}/service_accounts", token=owner_token, json={}
        ).status_code
        == 201
    )
    assert owner["id"]


def test_premium_allows_one_account_per_paid_seat(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    existing = _count(server)
    with license_as(server, "premium", existing + 2):
        assert server.root("POST", "/service_accounts", json={}).status_code == 201
        assert server.root("POST", f"/groups/{group['id']}/service_accounts", json={}).status_code == 201
        refused = server.root("POST", "/service_accounts", json={})
        assert refused.status_code == 403
        assert refused.json() == NO_SEATS
        assert _count(server) == existing + 2
    with license_as(server, "premium", None):
        assert server.root("POST", "/service_accounts", json={}).status_code == 201
    # Ultimate: unlimited, whatever the seat count.
    with license_as(server, "ultimate", 1):
        assert server.root("POST", "/service_accounts", json={}).status_code == 201


def test_set_license_rules_and_audit(server: LiveServer, factory: Factory) -> None:
    human = factory.user()
    with server.runtime.sessions() as db, db.begin():
        ctx = server.runtime.ctx(db, Actor.system())
        with pytest.raises(BadParameter):
            set_license(ctx, "gold", None)
        with pytest.raises(BadParameter):
            set_license(ctx, "premium", -1)
        user = db.get(User, human["id"])
        with pytest.raises(Forbidden):
            set_license(ctx.as_actor(Actor(user=user)), "premium", 5)
    with license_as(server, "premium", 7):
        assert server.root("GET", "/license").json()["user_limit"] == 7
    with server.runtime.sessions() as db:
        events = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.event_name == "license.updated")
            .order_by(AuditEvent.id.desc())
        ).all()
        assert events[0].details["changes"]["from"] == {"plan": "premium", "seats": 7}
        assert events[1].details["changes"]["to"] == {"plan": "premium", "seats": 7}
    assert server.root("GET", "/license").json()["plan"] == "ultimate"
