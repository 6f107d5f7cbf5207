"""Groups through python-gitlab and raw HTTP: create, list and its filters, get, update, delete."""

from __future__ import annotations

from typing import Any

import gitlab
import pytest
from sqlalchemy import func, select

from keycrew.access.models import Member
from keycrew.audit.models import AuditEvent
from keycrew.namespaces.models import Namespace, Project, Route
from tests.support.live import Factory, LiveServer, uid


def audit(server: LiveServer, event: str, entity_id: int, path: str | None = None) -> list[AuditEvent]:
    """The audit events of one kind on one group or project (ids of deleted rows may come back on
    SQLite, so a path narrows it down when given)."""
    query = select(AuditEvent).where(AuditEvent.event_name == event, AuditEvent.entity_id == entity_id)
    if path is not None:
        query = query.where(AuditEvent.entity_path == path)
    with server.runtime.sessions() as db:
        return list(db.scalars(query.order_by(AuditEvent.id)).all())


def count(server: LiveServer, model: Any, *where: Any) -> int:
    with server.runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_create_get_list_delete_with_python_gitlab(server: LiveServer, gl: gitlab.Gitlab) -> None:
    path = uid("g")
    group = gl.groups.create({"name": f"Group {path}", "path": path, "description": "d"})
    assert group.full_path == path
    assert group.visibility == "private"
    assert group.web_url == f"{server.url}/groups/{path}"
    assert group.marked_for_deletion_on is None

    assert gl.groups.get(group.id).name == f"Group {path}"
    assert gl.groups.get(path).id == group.id
    assert gl.groups.get(path.upper()).id == group.id, "full paths are case-insensitive"
    assert group.id in [g.id for g in gl.groups.list(search=path)]

    sub = gl.groups.create({"name": "Sub", "path": "sub", "parent_id": group.id})
    assert sub.full_path == f"{path}/sub"
    assert sub.full_name == f"Group {path} / Sub"
    assert [s.id for s in group.subgroups.list()] == [sub.id]
    assert gl.groups.get(f"{path}/sub").id == sub.id

    group.delete()
    for ref in (group.id, sub.id, path, f"{path}/sub"):
        with pytest.raises(gitlab.GitlabGetError) as err:
            gl.groups.get(ref)
        assert err.value.response_code == 404


def test_delete_answers_202_and_removes_subgroups_projects_routes_members(
    server: LiveServer, factory: Factory
) -> None:
    group = factory.group()
    sub = factory.group(parent_id=group["id"], path="child", name="child")
    project = factory.project(namespace_id=sub["id"])
    user = factory.user()
    factory.member("groups", sub["id"], user["id"], 30)

    response = server.root("DELETE", f"/groups/{group['id']}")
    assert response.status_code == 202
    assert response.json() == {"message": "202 Accepted"}

    assert server.root("GET", f"/groups/{sub['id']}").status_code == 404
    assert server.root("GET", f"/projects/{project['id']}").status_code == 404
    ids = [group["id"], sub["id"]]
    assert count(server, Namespace, Namespace.id.in_(ids)) == 0
    assert count(server, Project, Project.id == project["id"]) == 0
    assert count(server, Route, Route.path_lower.like(group["full_path"].lower() + "%")) == 0
    assert count(server, Member, Member.source_type == "Namespace", Member.source_id.in_(ids)) == 0
    assert count(server, Member, Member.source_type == "Project", Member.source_id == project["id"]) == 0
    [event] = audit(server, "group.deleted", group["id"], group["full_path"])
    assert event.details["projects"] == [project["path_with_namespace"]]
    assert event.details["subgroups"] == [sub["full_path"]]
    # The path is free again.
    again = factory.group(path=group["path"], name=group["name"])
    assert again["full_path"] == group["full_path"]


def test_only_owners_update_and_delete(server: LiveServer, factory: Factory) -> None:
    group = factory.group(visibility="internal")
    maintainer, token = factory.user_with_token()
    factory.member("groups", group["id"], maintainer["id"], 40)
    outsider, outsider_token = factory.user_with_token()

    put = server.request("PUT", f"/groups/{group['id']}", token=token, json={"description": "x"})
    assert put.status_code == 403
    assert put.json() == {"message": "403 Forbidden"}
    assert server.request("DELETE", f"/groups/{group['id']}", token=token).status_code == 403
    # An internal group is visible to the outsider, who may not change it: 403, not 404.
    assert server.request("DELETE", f"/groups/{group['id']}", token=outsider_token).status_code == 403
    assert server.root("GET", f"/groups/{group['id']}").json()["description"] == ""

    factory.member("groups", group["id"], outsider["id"], 50)
    put = server.request("PUT", f"/groups/{group['id']}", token=outsider_token, json={"description": "new"})
    assert put.status_code == 200, put.text
    assert put.json()["description"] == "new"
    [event] = audit(server, "group.updated", group["id"], group["full_path"])
    assert event.details["changes"] == {"description": {"from": "", "to": "new"}}
    assert event.author_id == outsider["id"]


def test_rename_rewrites_descendants_full_paths(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    top = factory.group(name="Top")
    mid = factory.group(parent_id=top["id"], path="mid", name="Mid")
    leaf = factory.group(parent_id=mid["id"], path="leaf", name="Leaf")
    project = factory.project(namespace_id=leaf["id"], name="App")
    new_path = uid("renamed")

    group = gl.groups.get(top["id"])
    group.path = new_path
    group.name = "Renamed"
    group.save()
    assert group.full_path == new_path

    assert gl.groups.get(mid["id"]).full_path == f"{new_path}/mid"
    got_leaf = gl.groups.get(leaf["id"])
    assert got_leaf.full_path == f"{new_path}/mid/leaf"
    assert got_leaf.full_name == "Renamed / Mid / Leaf"
    moved = gl.projects.get(f"{new_path}/mid/leaf/app")
    assert moved.id == project["id"]
    assert moved.path_with_namespace == f"{new_path}/mid/leaf/app"
    assert moved.name_with_namespace == "Renamed / Mid / Leaf / App"
    assert moved.web_url == f"{server.url}/{new_path}/mid/leaf/app"
    for old in (top["full_path"], f"{top['full_path']}/mid/leaf"):
        assert server.root("GET", f"/groups/{old.replace('/', '%2F')}").status_code == 404
    [event] = audit(server, "group.updated", top["id"], new_path)
    assert event.details["changes"]["path"] == {"from": top["full_path"], "to": new_path}
    assert event.details["changes"]["name"] == {"from": "Top", "to": "Renamed"}


def test_rename_refuses_taken_and_bad_paths(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    other = factory.group()
    for body, field in (
        ({"path": other["path"].upper()}, "path"),
        ({"path": "../x"}, "path"),
        ({"path": "api"}, "path"),
        ({"name": ""}, "name"),
        ({"name": "n" * 300}, "name"),
    ):
        response = server.root("PUT", f"/groups/{group['id']}", json=body)
        assert response.status_code == 400, body
        assert field in response.json()["message"], response.text
    assert server.root("GET", f"/groups/{group['id']}").json()["path"] == group["path"]
    assert audit(server, "group.updated", group["id"], group["full_path"]) == []


def test_update_with_nothing_known_is_400(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    response = server.root("PUT", f"/groups/{group['id']}", json={"unknown_field": 1})
    assert response.status_code == 400
    assert "at least one parameter must be provided" in response.json()["error"]


def test_visibility_bounds_between_parent_and_children(server: LiveServer, factory: Factory) -> None:
    top = factory.group(visibility="public")
    sub = factory.group(parent_id=top["id"], path="s", name="s", visibility="internal")
    factory.project(namespace_id=top["id"], visibility="public")

    raised = server.root("PUT", f"/groups/{sub['id']}", json={"visibility": "public"})
    assert raised.status_code == 200
    lowered = server.root("PUT", f"/groups/{top['id']}", json={"visibility": "internal"})
    assert lowered.status_code == 400
    assert lowered.json()["message"]["visibility_level"] == [
        "internal is not allowed since this group contains projects with higher visibility."
    ]
    private_parent = factory.group(visibility="private")
    too_open = server.root(
        "POST",
        "/groups",
        json={"name": "x", "path": "x", "parent_id": private_parent["id"], "visibility": "public"},
    )
    assert too_open.status_code == 400
    assert "parent group has a private visibility" in too_open.json()["message"]["visibility_level"][0]
    assert server.root("GET", f"/groups/{top['id']}").json()["visibility"] == "public"


def test_subgroup_sibling_visibility_blocks_lowering(server: LiveServer, factory: Factory) -> None:
    top = factory.group(visibility="internal")
    factory.group(parent_id=top["id"], path="s", name="s", visibility="internal")
    response = server.root("PUT", f"/groups/{top['id']}", json={"visibility": "private"})
    assert response.status_code == 400
    assert response.json()["message"]["visibility_level"] == [
        "private is not allowed since there are sub-groups with higher visibility."
    ]


def test_list_filters(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    tag = uid("flt")
    owned = factory.group(token=token, path=f"{tag}-b", name=f"{tag} b")
    dev = factory.group(path=f"{tag}-a", name=f"{tag} a")
    factory.member("groups", dev["id"], user["id"], 30)
    sub = factory.group(token=token, parent_id=owned["id"], path="c", name=f"{tag} c")
    factory.group(path=f"{tag}-z", name=f"{tag} z", visibility="internal")  # not the user's

    def names(**query: Any) -> list[str]:
        response = server.request("GET", "/groups", token=token, params={"search": tag, **query})
        assert response.status_code == 200, response.text
        return [g["name"] for g in response.json()]

    assert names() == [f"{tag} a", f"{tag} b", f"{tag} c"]
    assert names(all_available="true") == [f"{tag} a", f"{tag} b", f"{tag} c", f"{tag} z"]
    assert names(sort="desc") == [f"{tag} c", f"{tag} b", f"{tag} a"]
    assert names(owned="true") == [f"{tag} b", f"{tag} c"]
    assert names(min_access_level=40) == [f"{tag} b", f"{tag} c"]
    assert names(top_level_only="true") == [f"{tag} a", f"{tag} b"]
    assert names(**{"skip_groups[]": [dev["id"], sub["id"]]}) == [f"{tag} b"]
    ids = [
        g["id"]
        for g in server.request(
            "GET", "/groups", token=token, params={"search": tag, "order_by": "id"}
        ).json()
    ]
    assert ids == sorted(ids)

    bad = server.request("GET", "/groups", token=token, params={"order_by": "stars"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "order_by does not have a valid value"}
    assert server.request("GET", "/groups", token=token, params={"min_access_level": 33}).status_code == 400


def test_admin_sees_all_and_anonymous_only_public(server: LiveServer, factory: Factory) -> None:
    tag = uid("vis")
    for visibility in ("private", "internal", "public"):
        factory.group(path=f"{tag}-{visibility}", name=f"{tag} {visibility}", visibility=visibility)
    admin = server.root("GET", "/groups", params={"search": tag}).json()
    assert len(admin) == 3
    anonymous = server.request("GET", "/groups", params={"search": tag})
    assert anonymous.status_code == 200
    assert [g["visibility"] for g in anonymous.json()] == ["public"]
    _, token = factory.user_with_token()
    signed_in = server.request("GET", "/groups", token=token, params={"search": tag, "all_available": True})
    assert sorted(g["visibility"] for g in signed_in.json()) == ["internal", "public"]


def test_list_pagination_headers(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    tag = uid("page")
    for i in range(3):
        factory.group(path=f"{tag}-{i}", name=f"{tag} {i}")
    first = server.root("GET", "/groups", params={"search": tag, "per_page": 2})
    assert first.headers["X-Total"] == "3"
    assert first.headers["X-Total-Pages"] == "2"
    assert 'rel="next"' in first.headers["Link"]
    last = server.root("GET", "/groups", params={"search": tag, "per_page": 2, "page": 2})
    assert len(last.json()) == 1
    assert 'rel="next"' not in last.headers["Link"]
    assert len(gl.groups.list(search=tag, get_all=True, per_page=2)) == 3


def test_descendant_groups_and_group_projects(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    top = factory.group()
    a = factory.group(parent_id=top["id"], path="a", name="a")
    b = factory.group(parent_id=a["id"], path="b", name="b")
    p_top = factory.project(namespace_id=top["id"])
    p_b = factory.project(namespace_id=b["id"])

    group = gl.groups.get(top["id"])
    assert [g.id for g in group.subgroups.list()] == [a["id"]]
    assert sorted(g.id for g in group.descendant_groups.list()) == sorted([a["id"], b["id"]])
    assert [p.id for p in group.projects.list()] == [p_top["id"]]
    assert sorted(p.id for p in group.projects.list(include_subgroups=True)) == sorted(
        [p_top["id"], p_b["id"]]
    )

    detail = server.root("GET", f"/groups/{top['id']}").json()
    assert [p["id"] for p in detail["projects"]] == [p_top["id"]]
    assert (
        "projects" not in server.root("GET", f"/groups/{top['id']}", params={"with_projects": "false"}).json()
    )


def test_double_encoded_path_from_the_cli(server: LiveServer, factory: Factory) -> None:
    top = factory.group()
    sub = factory.group(parent_id=top["id"], path="s", name="s")
    encoded = f"{top['full_path']}%252Fs"
    assert server.root("GET", f"/groups/{encoded}").json()["id"] == sub["id"]


@pytest.mark.parametrize(
    ("body", "status", "key"),
    [
        ({"path": "p"}, 400, "error"),
        ({"name": "n"}, 400, "error"),
        ({"name": "", "path": "x"}, 400, "error"),
        ({"name": "n" * 300, "path": "ok"}, 400, "message"),
        ({"name": "n", "path": "../etc"}, 400, "message"),
        ({"name": "n", "path": "a/b"}, 400, "message"),
        ({"name": ["n"], "path": "x"}, 400, "error"),
        ({"name": "n", "path": "x", "visibility": "secret"}, 400, "error"),
        ({"name": "n", "path": "x", "parent_id": "abc"}, 400, "error"),
        ({"name": "n", "path": "x", "parent_id": 99999999}, 404, "message"),
        ({"name": "n", "path": "x", "parent_id": 99999999999}, 404, "message"),
    ],
)
def test_bad_create_input(server: LiveServer, body: dict[str, Any], status: int, key: str) -> None:
    before = count(server, Namespace)
    response = server.root("POST", "/groups", json=body)
    assert response.status_code == status, response.text
    assert key in response.json()
    assert count(server, Namespace) == before


def test_malformed_json_and_unknown_fields(server: LiveServer) -> None:
    before = count(server, Namespace)
    response = server.root("POST", "/groups", data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()
    assert count(server, Namespace) == before
    # Unknown attributes are ignored, as Grape ignores undeclared parameters.
    path = uid("g")
    created = server.root("POST", "/groups", json={"name": path, "path": path, "no_such_field": True})
    assert created.status_code == 201


def test_anonymous_cannot_write(server: LiveServer, factory: Factory) -> None:
    group = factory.group(visibility="public")
    assert server.request("GET", f"/groups/{group['id']}").status_code == 200
    assert server.request("PUT", f"/groups/{group['id']}", json={"name": "x"}).status_code == 401
    assert server.request("DELETE", f"/groups/{group['id']}").status_code == 401
    assert server.request("POST", "/groups", json={"name": "x", "path": uid()}).status_code == 401


def test_delete_removes_bots_of_the_group_and_its_projects(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    sub = factory.group(parent_id=group["id"], path="s", name="s")
    project = factory.project(namespace_id=sub["id"])
    bots = []
    for path in (f"/groups/{group['id']}", f"/groups/{sub['id']}", f"/projects/{project['id']}"):
        created = server.root(
            "POST", f"{path}/access_tokens", json={"name": "bot", "scopes": ["api"], "access_level": 30}
        )
        assert created.status_code == 201, created.text
        bots.append(created.json()["user_id"])
    assert server.root("DELETE", f"/groups/{group['id']}").status_code == 202
    for bot_id in bots:
        assert server.root("GET", f"/users/{bot_id}").status_code == 404
