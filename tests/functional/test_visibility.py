"""Who may read what: visibility and membership, 404 for the unseen and 403 for the unchangeable."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from keycrew.identity.models import User
from keycrew.identity.types import UserType
from tests.support.live import Factory, LiveServer


@dataclass
class World:
    projects: dict[str, int]
    groups: dict[str, int]
    tokens: dict[str, str | None]


def set_user(server: LiveServer, user_id: int, **values: object) -> None:
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(User).where(User.id == user_id).values(**values))


@pytest.fixture
def world(server: LiveServer, factory: Factory) -> World:
    groups = {v: factory.group(visibility=v)["id"] for v in ("private", "internal", "public")}
    projects = {v: factory.project(namespace_id=groups[v], visibility=v)["id"] for v in groups}
    user, user_token = factory.user_with_token()
    external, external_token = factory.user_with_token()
    set_user(server, external["id"], external=True)
    bot, bot_token = factory.user_with_token()
    set_user(server, bot["id"], user_type=int(UserType.PROJECT_BOT))
    member, member_token = factory.user_with_token()
    factory.member("projects", projects["private"], member["id"], 10)
    factory.member("groups", groups["private"], member["id"], 10)
    del user
    return World(
        projects,
        groups,
        {
            "anonymous": None,
            "user": user_token,
            "external": external_token,
            "bot": bot_token,
            "member": member_token,
            "admin": server.root_token,
        },
    )


READABLE = {
    "anonymous": {"public"},
    "user": {"public", "internal"},
    "external": {"public"},
    "bot": {"public"},
    "member": {"public", "internal", "private"},
    "admin": {"public", "internal", "private"},
}


@pytest.mark.parametrize("who", list(READABLE))
def test_read_matrix(server: LiveServer, world: World, who: str) -> None:
    token = world.tokens[who]
    for visibility in ("private", "internal", "public"):
        expected = 200 if visibility in READABLE[who] else 404
        project = server.request("GET", f"/projects/{world.projects[visibility]}", token=token)
        assert project.status_code == expected, (who, visibility, "project")
        group = server.request("GET", f"/groups/{world.groups[visibility]}", token=token)
        assert group.status_code == expected, (who, visibility, "group")
        if expected == 404:
            assert project.json() == {"message": "404 Project Not Found"}
            assert group.json() == {"message": "404 Group Not Found"}
    listed = server.request(
        "GET", "/projects", token=token, params={"per_page": 100, "order_by": "id", "sort": "desc"}
    ).json()
    seen = {p["id"] for p in listed}
    for visibility, pid in world.projects.items():
        assert (pid in seen) == (visibility in READABLE[who]), (who, visibility, "listing")


def test_unseen_is_404_seen_but_unchangeable_is_403(server: LiveServer, world: World) -> None:
    token = world.tokens["user"]
    for visibility, status in (("private", 404), ("internal", 403), ("public", 403)):
        pid, gid = world.projects[visibility], world.groups[visibility]
        assert (
            server.request("PUT", f"/projects/{pid}", token=token, json={"name": "x"}).status_code == status
        )
        assert server.request("DELETE", f"/projects/{pid}", token=token).status_code == status
        assert server.request("PUT", f"/groups/{gid}", token=token, json={"name": "x"}).status_code == status
        assert server.request("DELETE", f"/groups/{gid}", token=token).status_code == status
        members = server.request(
            "POST", f"/projects/{pid}/members", token=token, json={"user_id": 1, "access_level": 10}
        )
        assert members.status_code == status


def test_inherited_access_through_nested_private_groups(server: LiveServer, factory: Factory) -> None:
    top = factory.group()
    mid = factory.group(parent_id=top["id"], path="mid", name="mid")
    leaf = factory.group(parent_id=mid["id"], path="leaf", name="leaf")
    project = factory.project(namespace_id=leaf["id"])
    member, token = factory.user_with_token()
    factory.member("groups", top["id"], member["id"], 30)
    stranger_token = factory.user_with_token()[1]

    assert server.request("GET", f"/projects/{project['id']}", token=token).status_code == 200
    assert server.request("GET", f"/groups/{leaf['id']}", token=token).status_code == 200
    assert server.request("GET", f"/projects/{project['id']}", token=stranger_token).status_code == 404
    permissions = server.request("GET", f"/projects/{project['id']}", token=token).json()["permissions"]
    assert permissions == {
        "project_access": None,
        "group_access": {"access_level": 30, "notification_level": 3},
    }
    # A developer inherits Developer: reading yes, administering no.
    assert (
        server.request("PUT", f"/projects/{project['id']}", token=token, json={"name": "x"}).status_code
        == 403
    )

    # A member of only the leaf project may see the private groups above it, but not their siblings.
    sibling = factory.group(parent_id=top["id"], path="sibling", name="sibling")
    leaf_member, leaf_token = factory.user_with_token()
    factory.member("projects", project["id"], leaf_member["id"], 10)
    for gid in (top["id"], mid["id"], leaf["id"]):
        assert server.request("GET", f"/groups/{gid}", token=leaf_token).status_code == 200
    assert server.request("GET", f"/groups/{sibling['id']}", token=leaf_token).status_code == 404
    listed = {g["id"] for g in server.request("GET", "/groups", token=leaf_token).json()}
    assert {top["id"], mid["id"], leaf["id"]} <= listed
    assert sibling["id"] not in listed


def test_expired_group_membership_gives_nothing(server: LiveServer, factory: Factory) -> None:
    top = factory.group()
    sub = factory.group(parent_id=top["id"], path="s", name="s")
    project = factory.project(namespace_id=sub["id"])
    member, token = factory.user_with_token()
    today = server.clock.now().date()
    response = server.root(
        "POST",
        f"/groups/{top['id']}/members",
        json={
            "user_id": member["id"],
            "access_level": 40,
            "expires_at": (today + dt.timedelta(days=2)).isoformat(),
        },
    )
    assert response.status_code == 201
    assert server.request("GET", f"/projects/{project['id']}", token=token).status_code == 200
    server.clock.travel_to(dt.datetime.combine(today + dt.timedelta(days=2), dt.time(0, 0, 1), dt.UTC))
    assert server.request("GET", f"/projects/{project['id']}", token=token).status_code == 404
    assert server.request("GET", f"/groups/{sub['id']}", token=token).status_code == 404
    assert server.request("GET", "/projects", token=token, params={"membership": True}).json() == []


def test_minimal_access_sees_the_group_not_its_projects(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    member, token = factory.user_with_token()
    factory.member("groups", group["id"], member["id"], 5)
    assert server.request("GET", f"/groups/{group['id']}", token=token).status_code == 200
    assert server.request("GET", f"/projects/{project['id']}", token=token).status_code == 404
