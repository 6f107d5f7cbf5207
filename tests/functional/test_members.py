"""Members of groups and projects: python-gitlab flows, GitLab's rules, inheritance, expiry, audit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import gitlab
import pytest
from sqlalchemy import select, update

from keycrew.access.lookup import get_project
from keycrew.access.members import create_membership
from keycrew.access.resources import Resource
from keycrew.audit.models import AuditEvent
from keycrew.context import Actor
from keycrew.identity.internal import internal_user
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.identity.users import create_user
from tests.support.live import Factory, LiveServer, uid


def events(server: LiveServer, entity_id: int, target_id: int) -> list[tuple[str, dict[str, Any]]]:
    with server.runtime.sessions() as db:
        rows = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_id == entity_id, AuditEvent.target_id == target_id)
            .where(AuditEvent.event_name.like("member.%"))
            .order_by(AuditEvent.id)
        ).all()
        return [(r.event_name, dict(r.details)) for r in rows]


def add(server: LiveServer, kind: str, source_id: int, token: str | None = None, **body: Any) -> Any:
    return server.request("POST", f"/{kind}/{source_id}/members", token=token or server.root_token, json=body)


def test_project_members_with_python_gitlab(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    user = factory.user()
    project = gl.projects.get(factory.project()["id"])
    expires = (server.clock.now().date() + dt.timedelta(days=30)).isoformat()

    member = project.members.create({"user_id": user["id"], "access_level": 30, "expires_at": expires})
    assert member.id == user["id"]
    assert member.username == user["username"]
    assert member.access_level == 30
    assert member.expires_at == expires
    assert member.state == "active"
    assert member.membership_state == "active"
    assert member.created_by["username"] == "root"
    assert member.web_url == f"{server.url}/{user['username']}"
    assert member in project.members.list()
    assert project.members.get(user["id"]).access_level == 30

    member.access_level = 40
    member.save()
    assert project.members.get(user["id"]).access_level == 40

    member.delete()
    with pytest.raises(gitlab.GitlabGetError) as err:
        project.members.get(user["id"])
    assert err.value.response_code == 404

    assert [name for name, _ in events(server, project.id, user["id"])] == [
        "member.added",
        "member.access_level_changed",
        "member.removed",
    ]
    _, changed = events(server, project.id, user["id"])[1]
    assert changed["access_level"] == {"from": 30, "to": 40}


def test_group_members_and_members_all_through_nested_groups(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    top = factory.group()
    mid = factory.group(parent_id=top["id"], path="mid", name="mid")
    project = factory.project(namespace_id=mid["id"])
    user, token = factory.user_with_token()
    top_group = gl.groups.get(top["id"])
    top_group.members.create({"user_id": user["id"], "access_level": 20})
    gl.groups.get(mid["id"]).members.create({"user_id": user["id"], "access_level": 30})

    # Inherited access reaches the project two levels down: the developer may read it.
    assert server.request("GET", f"/projects/{project['id']}", token=token).status_code == 200
    all_members = {m.id: m for m in gl.projects.get(project["id"]).members_all.list()}
    assert all_members[user["id"]].access_level == 30
    assert all_members[user["id"]].source_type == "Group"
    assert all_members[user["id"]].source_id == mid["id"]
    assert 1 in all_members, "root is Owner of the top group"
    # Direct members of the project do not include inherited ones.
    assert user["id"] not in [m.id for m in gl.projects.get(project["id"]).members.list()]
    one = server.root("GET", f"/projects/{project['id']}/members/all/{user['id']}").json()
    assert one["access_level"] == 30
    assert server.root("GET", f"/projects/{project['id']}/members/{user['id']}").status_code == 404

    # A direct project membership above the inherited one wins in members/all.
    add(server, "projects", project["id"], user_id=user["id"], access_level=40)
    one = server.root("GET", f"/projects/{project['id']}/members/all/{user['id']}").json()
    assert (one["access_level"], one["source_type"]) == (40, "Project")


def test_inherited_level_is_a_floor(server: LiveServer, factory: Factory) -> None:
    group = factory.group(name="Floor")
    project = factory.project(namespace_id=group["id"])
    user = factory.user()
    factory.member("groups", group["id"], user["id"], 30)
    response = add(server, "projects", project["id"], user_id=user["id"], access_level=20)
    assert response.status_code == 400
    assert response.json() == {
        "message": {
            "access_level": [
                "should be greater than or equal to Developer inherited membership from group Floor"
            ]
        }
    }


def test_cli_style_strings_username_and_filters(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    a = factory.user(name="Alice Filter")
    b = factory.user()
    assert add(server, "projects", project["id"], user_id=str(a["id"]), access_level="30").status_code == 201
    by_name = add(server, "projects", project["id"], username=b["username"].upper(), access_level="20")
    assert by_name.status_code == 201, by_name.text
    assert by_name.json()["id"] == b["id"]

    base = f"/projects/{project['id']}/members"
    assert [m["id"] for m in server.root("GET", base, params={"query": "alice filter"}).json()] == [a["id"]]
    assert [m["id"] for m in server.root("GET", base, params={"user_ids[]": [b["id"], 99999]}).json()] == [
        b["id"]
    ]
    assert [
        m["id"] for m in server.root("GET", base, params={"user_ids": f"{a['id']},{b['id']}"}).json()
    ] == [
        a["id"],
        b["id"],
    ]
    listed = server.root("GET", base)
    assert listed.headers["X-Total"] == "3"  # root, the holder of the personal namespace, too
    assert listed.json()[0]["email"] == "admin@example.com", "admins see e-mail addresses"


def test_parameter_errors(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    user = factory.user()
    pid = project["id"]
    cases: list[tuple[dict[str, Any], int, dict[str, Any]]] = [
        ({"user_id": user["id"]}, 400, {"error": "access_level is missing"}),
        ({"user_id": user["id"], "access_level": "high"}, 400, {"error": "access_level is invalid"}),
        (
            {"access_level": 30},
            400,
            {"error": "user_id, username are missing, exactly one parameter must be provided"},
        ),
        (
            {"user_id": user["id"], "username": user["username"], "access_level": 30},
            400,
            {"error": "user_id, username are mutually exclusive"},
        ),
        (
            {"user_id": user["id"], "access_level": 35},
            400,
            {"message": {"access_level": ["is not included in the list"]}},
        ),
        (
            {"user_id": user["id"], "access_level": 30, "expires_at": "2001-01-01"},
            400,
            {"message": {"expires_at": ["cannot be a date in the past"]}},
        ),
        (
            {"user_id": user["id"], "access_level": 30, "expires_at": "soon"},
            400,
            {"error": "expires_at is invalid"},
        ),
        ({"user_id": [1], "access_level": 30}, 400, {"error": "user_id is invalid"}),
        ({"user_id": 987654321, "access_level": 30}, 404, {"message": "404 User Not Found"}),
        ({"username": "nobody-" + uid(), "access_level": 30}, 404, {"message": "404 User Not Found"}),
    ]
    for body, status, answer in cases:
        response = add(server, "projects", pid, **body)
        assert (response.status_code, response.json()) == (status, answer), body
    assert server.root("GET", f"/projects/{pid}/members/{user['id']}").status_code == 404
    assert events(server, pid, user["id"]) == []
    assert server.root("GET", f"/projects/{pid}/members/abc").status_code == 400
    bad_json = server.root(
        "POST", f"/projects/{pid}/members", data="{", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400


def test_existing_member_conflicts(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    user = factory.user()
    assert add(server, "projects", project["id"], user_id=user["id"], access_level=30).status_code == 201
    again = add(server, "projects", project["id"], user_id=user["id"], access_level=40)
    assert again.status_code == 409
    assert again.json() == {"message": "Member already exists"}
    assert server.root("GET", f"/projects/{project['id']}/members/{user['id']}").json()["access_level"] == 30


def test_project_maintainers_manage_members_below_owner(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    maintainer, token = factory.user_with_token()
    owner = factory.user()
    target = factory.user()
    factory.member("projects", project["id"], maintainer["id"], 40)
    factory.member("projects", project["id"], owner["id"], 50)
    pid = project["id"]

    assert add(server, "projects", pid, token, user_id=target["id"], access_level=40).status_code == 201
    assert (
        add(server, "projects", pid, token, user_id=factory.user()["id"], access_level=50).status_code == 403
    )
    promote = server.request(
        "PUT", f"/projects/{pid}/members/{target['id']}", token=token, json={"access_level": 50}
    )
    assert promote.status_code == 403
    demote_owner = server.request(
        "PUT", f"/projects/{pid}/members/{owner['id']}", token=token, json={"access_level": 30}
    )
    assert demote_owner.status_code == 403
    assert server.request("DELETE", f"/projects/{pid}/members/{owner['id']}", token=token).status_code == 403
    assert server.request("DELETE", f"/projects/{pid}/members/{target['id']}", token=token).status_code == 204
    # A developer administers nothing, but may see the list.
    developer, dev_token = factory.user_with_token()
    factory.member("projects", pid, developer["id"], 30)
    assert add(server, "projects", pid, dev_token, user_id=target["id"], access_level=10).status_code == 403
    assert server.request("GET", f"/projects/{pid}/members", token=dev_token).status_code == 200
    # ...and may leave.
    assert (
        server.request("DELETE", f"/projects/{pid}/members/{developer['id']}", token=dev_token).status_code
        == 204
    )


def test_group_members_are_managed_by_owners_only(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    maintainer, token = factory.user_with_token()
    factory.member("groups", group["id"], maintainer["id"], 40)
    target = factory.user()
    refused = add(server, "groups", group["id"], token, user_id=target["id"], access_level=10)
    assert refused.status_code == 403
    assert refused.json() == {"message": "403 Forbidden"}
    owner, owner_token = factory.user_with_token()
    factory.member("groups", group["id"], owner["id"], 50)
    assert (
        add(server, "groups", group["id"], owner_token, user_id=target["id"], access_level=50).status_code
        == 201
    )


def test_group_keeps_its_last_owner(server: LiveServer, factory: Factory) -> None:
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    gid = group["id"]
    demote = server.request(
        "PUT", f"/groups/{gid}/members/{owner['id']}", token=token, json={"access_level": 40}
    )
    assert demote.status_code == 403
    assert server.request("DELETE", f"/groups/{gid}/members/{owner['id']}", token=token).status_code == 403
    assert server.root("DELETE", f"/groups/{gid}/members/{owner['id']}").status_code == 403, "admins too"
    # Root's membership is not there: root is admin, not a member. Add a second owner, then leave.
    other = factory.user()
    factory.member("groups", gid, other["id"], 50, token=token)
    assert server.request("DELETE", f"/groups/{gid}/members/{owner['id']}", token=token).status_code == 204

    # In a subgroup, an Owner inherited from the parent counts.
    sub_owner, sub_token = factory.user_with_token()
    factory.member("groups", gid, sub_owner["id"], 40)
    sub = factory.group(token=sub_token, parent_id=gid, path="sub", name="sub")
    removed = server.root("DELETE", f"/groups/{sub['id']}/members/{sub_owner['id']}")
    assert removed.status_code == 204


def test_expiry_and_expired_memberships(server: LiveServer, factory: Factory) -> None:
    project = factory.project(visibility="private")
    user, token = factory.user_with_token()
    pid = project["id"]
    today = server.clock.now().date()
    tomorrow = (today + dt.timedelta(days=1)).isoformat()
    assert (
        add(server, "projects", pid, user_id=user["id"], access_level=30, expires_at=tomorrow).status_code
        == 201
    )
    assert server.request("GET", f"/projects/{pid}", token=token).status_code == 200

    later = (today + dt.timedelta(days=10)).isoformat()
    changed = server.root(
        "PUT", f"/projects/{pid}/members/{user['id']}", json={"access_level": 30, "expires_at": later}
    )
    assert changed.json()["expires_at"] == later
    assert events(server, pid, user["id"])[-1] == (
        "member.expiry_changed",
        {"expires_at": {"from": tomorrow, "to": later}},
    )

    server.clock.travel_to(dt.datetime.combine(today + dt.timedelta(days=10), dt.time(1), dt.UTC))
    assert server.request("GET", f"/projects/{pid}", token=token).status_code == 404
    assert user["id"] not in [m["id"] for m in server.root("GET", f"/projects/{pid}/members").json()]
    assert server.root("GET", f"/projects/{pid}/members/{user['id']}").status_code == 404
    # An expired membership is gone: adding the user again works.
    assert add(server, "projects", pid, user_id=user["id"], access_level=20).status_code == 201
    assert server.request("GET", f"/projects/{pid}", token=token).status_code == 200

    cleared = server.root(
        "PUT", f"/projects/{pid}/members/{user['id']}", json={"access_level": 20, "expires_at": None}
    )
    assert cleared.json()["expires_at"] is None


def test_blocked_internal_and_bot_users(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    pid = project["id"]
    blocked = factory.user()
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(User).where(User.id == blocked["id"]).values(state="blocked"))
        ctx = server.runtime.ctx(db, Actor.system())
        ghost = internal_user(ctx, UserType.GHOST)
        bot = create_user(
            ctx,
            username=f"project_{pid}_bot_{uid('')}",
            email=f"{uid('bot')}@noreply.example.com",
            name="bot",
            user_type=UserType.PROJECT_BOT,
        )
        found = get_project(ctx, pid)
        assert found is not None
        create_membership(ctx, Resource(found), bot, 40)
        ghost_id, bot_id = ghost.id, bot.id

    refused = add(server, "projects", pid, user_id=blocked["id"], access_level=30)
    assert refused.status_code == 400
    assert refused.json() == {"message": {"user": ["is blocked and cannot be added as a member"]}}
    internal = add(server, "projects", pid, user_id=ghost_id, access_level=30)
    assert internal.status_code == 400
    assert internal.json() == {"message": {"user": ["is an internal user and cannot be added as a member"]}}
    elsewhere = factory.project()
    bot_elsewhere = add(server, "projects", elsewhere["id"], user_id=bot_id, access_level=30)
    assert bot_elsewhere.status_code == 400
    assert bot_elsewhere.json() == {
        "message": {"user_id": ["project bots cannot be added to other groups / projects"]}
    }

    # The bot is listed in its own project, but the member API neither changes nor removes it.
    listed = server.root("GET", f"/projects/{pid}/members/{bot_id}").json()
    assert (listed["access_level"], listed["bot"]) == (40, True)
    assert (
        server.root("PUT", f"/projects/{pid}/members/{bot_id}", json={"access_level": 30}).status_code == 403
    )
    assert server.root("DELETE", f"/projects/{pid}/members/{bot_id}").status_code == 403


def test_personal_namespace_holder_stays_owner(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    project = factory.project(token=token)
    pid = project["id"]
    members = server.root("GET", f"/projects/{pid}/members").json()
    assert [(m["id"], m["access_level"]) for m in members] == [(user["id"], 50)]
    assert (
        server.root("PUT", f"/projects/{pid}/members/{user['id']}", json={"access_level": 30}).status_code
        == 403
    )
    assert server.request("DELETE", f"/projects/{pid}/members/{user['id']}", token=token).status_code == 403


def test_comma_separated_user_ids(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    a, b, c = factory.user(), factory.user(), factory.user()
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(User).where(User.id == c["id"]).values(state="blocked"))
    ok = add(server, "groups", group["id"], user_id=f"{a['id']},{b['id']},987654321", access_level="30")
    assert ok.status_code == 201
    assert ok.json() == {"status": "success"}
    ids = [m["id"] for m in server.root("GET", f"/groups/{group['id']}/members").json()]
    assert {a["id"], b["id"]} <= set(ids)
    # An existing member has its level set; a refused user is reported by name, the others still added.
    d = factory.user()
    mixed = add(server, "groups", group["id"], user_id=f"{a['id']},{c['id']},{d['id']}", access_level=40)
    assert mixed.status_code == 201
    assert mixed.json() == {
        "status": "error",
        "message": f"{c['username']}: User is blocked and cannot be added as a member",
    }
    levels = {m["id"]: m["access_level"] for m in server.root("GET", f"/groups/{group['id']}/members").json()}
    assert (levels[a["id"]], levels[d["id"]]) == (40, 40)
    assert c["id"] not in levels


def test_removing_group_member_removes_subresource_memberships(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    sub = factory.group(parent_id=group["id"], path="s", name="s")
    project = factory.project(namespace_id=sub["id"])
    user = factory.user()
    factory.member("groups", group["id"], user["id"], 20)
    factory.member("groups", sub["id"], user["id"], 30)
    factory.member("projects", project["id"], user["id"], 40)
    keep = factory.user()
    factory.member("groups", group["id"], keep["id"], 20)
    factory.member("projects", project["id"], keep["id"], 30)

    assert server.root("DELETE", f"/groups/{group['id']}/members/{user['id']}").status_code == 204
    assert server.root("GET", f"/groups/{sub['id']}/members/{user['id']}").status_code == 404
    assert server.root("GET", f"/projects/{project['id']}/members/{user['id']}").status_code == 404

    skip = server.root(
        "DELETE", f"/groups/{group['id']}/members/{keep['id']}", params={"skip_subresources": True}
    )
    assert skip.status_code == 204
    assert server.root("GET", f"/projects/{project['id']}/members/{keep['id']}").status_code == 200


def test_members_api_needs_authentication_and_visibility(server: LiveServer, factory: Factory) -> None:
    public = factory.project(visibility="public")
    private = factory.project(visibility="private")
    assert server.request("GET", f"/projects/{public['id']}/members").status_code == 401
    _, token = factory.user_with_token()
    assert server.request("GET", f"/projects/{public['id']}/members", token=token).status_code == 200
    hidden = server.request("GET", f"/projects/{private['id']}/members", token=token)
    assert hidden.status_code == 404
    assert hidden.json() == {"message": "404 Project Not Found"}
    user = factory.user()
    probe = add(server, "projects", private["id"], token, user_id=user["id"], access_level=30)
    assert probe.status_code == 404
