"""Rule: every use case writes its audit event in the caller's transaction: the event is there
before the commit, commits with the change, and is gone with it after a rollback
(keycrew/audit/service.py ``record``, as the use cases call it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from keycrew.access.levels import AccessLevel
from keycrew.access.members import add_member
from keycrew.access.resources import Resource
from keycrew.actions.deletion import destroy_user
from keycrew.audit.events import Event
from keycrew.audit.models import AuditEvent
from keycrew.audit.service import Entity, Target, record
from keycrew.context import Ctx
from keycrew.identity.lifecycle import block_user
from keycrew.identity.models import User
from keycrew.instance.settings import update_settings
from keycrew.namespaces.models import Namespace
from keycrew.tokens.lifecycle import revoke, rotate
from tests.unit import factories
from tests.unit.conftest import T0, World


def _count(world: World, event: Event) -> int:
    query = select(func.count(AuditEvent.id)).where(AuditEvent.event_name == event.value)
    return int(world.db.scalar(query) or 0)


def _user(ctx: Ctx) -> User:
    return factories.user(ctx)


# Each case: what to make first (committed), the use case under test, and the event it writes.
CASES: dict[str, tuple[Callable[[Ctx], Any], Callable[[Ctx, Any], object], Event]] = {
    "create_user": (lambda ctx: None, lambda ctx, _: factories.user(ctx), Event.USER_CREATED),
    "create_group": (lambda ctx: None, lambda ctx, _: factories.group(ctx), Event.GROUP_CREATED),
    "create_project": (lambda ctx: None, lambda ctx, _: factories.project(ctx), Event.PROJECT_CREATED),
    "personal_token": (_user, lambda ctx, u: factories.personal_token(ctx, u), Event.TOKEN_CREATED),
    "revoke": (
        lambda ctx: factories.personal_token(ctx, _user(ctx)).token,
        lambda ctx, t: revoke(ctx, t),
        Event.TOKEN_REVOKED,
    ),
    "rotate": (
        lambda ctx: factories.personal_token(ctx, _user(ctx)).token,
        lambda ctx, t: rotate(ctx, t),
        Event.TOKEN_ROTATED,
    ),
    "add_member": (
        lambda ctx: (factories.project(ctx), _user(ctx)),
        lambda ctx, pu: add_member(ctx, Resource(pu[0]), pu[1], access_level=AccessLevel.GUEST),
        Event.MEMBER_ADDED,
    ),
    "deploy_token": (
        lambda ctx: factories.project(ctx),
        lambda ctx, p: factories.deploy_token(ctx, project=p),
        Event.DEPLOY_TOKEN_CREATED,
    ),
    "update_settings": (
        lambda ctx: None,
        lambda ctx, _: update_settings(ctx, {"max_login_attempts": 3}),
        Event.SETTINGS_UPDATED,
    ),
    "block_user": (_user, lambda ctx, u: block_user(ctx, u), Event.USER_BLOCKED),
    "destroy_user": (_user, lambda ctx, u: destroy_user(ctx, u), Event.USER_DELETED),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_event_commits_with_the_change(world: World, case: str) -> None:
    prepare, act, event = CASES[case]
    made = prepare(world.as_root())
    world.db.commit()
    before = _count(world, event)
    act(world.as_root(), made)
    assert _count(world, event) == before + 1, "written in the use case's own session, before commit"
    world.db.commit()
    with world.runtime.sessions() as other:
        query = select(func.count(AuditEvent.id)).where(AuditEvent.event_name == event.value)
        assert other.scalar(query) == before + 1


@pytest.mark.parametrize("case", list(CASES))
def test_the_event_rolls_back_with_the_change(world: World, case: str) -> None:
    prepare, act, event = CASES[case]
    made = prepare(world.as_root())
    world.db.commit()
    before = _count(world, event)
    act(world.as_root(), made)
    world.db.rollback()
    assert _count(world, event) == before


def test_a_rolled_back_use_case_leaves_neither_row_nor_event(world: World) -> None:
    seeded = world.db.scalar(select(func.count()).select_from(AuditEvent))
    group = factories.group(world.as_root(), path="rolled-back")
    group_id = group.id
    assert world.events(Event.GROUP_CREATED, target_id=group_id)
    world.db.rollback()
    assert world.db.scalars(select(Namespace).where(Namespace.id == group_id)).first() is None
    assert world.db.scalar(select(func.count()).select_from(AuditEvent)) == seeded


def test_what_an_event_records_of_its_actor(world: World) -> None:
    ctx = world.ctx(world.root, token_id=12, ip="203.0.113.5")
    world.clock.advance(minutes=5)
    row = record(ctx, Event.USER_UPDATED, Entity("User", 7, "alice"), Target("User", 7, "alice"), a=1, b=None)
    world.db.flush()
    assert (row.created_at, row.author_id, row.author_name, row.token_id, row.ip_address) == (
        T0.replace(minute=5),
        world.root.id,
        "root",
        12,
        "203.0.113.5",
    )
    assert (row.entity_type, row.entity_id, row.entity_path) == ("User", 7, "alice")
    assert (row.target_type, row.target_id, row.target_details) == ("User", 7, "alice")
    assert row.details == {"a": 1}
    assert row.impersonated_by_id is None


def test_an_anonymous_or_system_event_is_the_systems(world: World) -> None:
    row = record(world.as_system(), Event.SETTINGS_UPDATED, Entity.instance())
    assert (row.author_id, row.author_name) == (None, "(system)")
    assert (row.entity_type, row.entity_id) == ("Gitlab::Audit::InstanceScope", 1)
