"""Namespaces: a user sees their own and the groups they belong to; admins see all."""

from __future__ import annotations

import gitlab
import pytest

from tests.support.live import Factory, LiveServer, uid


def test_user_sees_own_namespace_and_member_groups(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    gl = server.gl(token)
    tag = uid("ns")
    owned = factory.group(token=token, path=f"{tag}-own", name=f"{tag} own")
    sub = factory.group(token=token, parent_id=owned["id"], path="sub", name="sub")
    joined = factory.group(path=f"{tag}-joined", name=f"{tag} joined")
    factory.member("groups", joined["id"], user["id"], 10)
    factory.group(path=f"{tag}-other", name=f"{tag} other", visibility="public")
    factory.project(token=token, name="counted")

    listed = {ns.full_path: ns for ns in gl.namespaces.list(get_all=True)}
    assert set(listed) == {user["username"], owned["full_path"], sub["full_path"], joined["full_path"]}
    personal = listed[user["username"]]
    assert (personal.kind, personal.projects_count) == ("user", 1)
    assert personal.web_url == f"{server.url}/{user['username']}"
    assert listed[owned["full_path"]].kind == "group"
    assert listed[owned["full_path"]].web_url == f"{server.url}/groups/{owned['full_path']}"

    owned_only = {ns.full_path for ns in gl.namespaces.list(owned_only=True, get_all=True)}
    assert owned_only == {user["username"], owned["full_path"], sub["full_path"]}
    searched = [ns.full_path for ns in gl.namespaces.list(search=f"{tag}-joi")]
    assert searched == [joined["full_path"]]


def test_get_by_id_or_path(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    gl = server.gl(token)
    group = factory.group(token=token)
    assert gl.namespaces.get(group["id"]).full_path == group["full_path"]
    assert gl.namespaces.get(group["full_path"]).id == group["id"]
    personal = gl.namespaces.get(user["username"])
    assert personal.kind == "user"
    # Someone else's group, even a public one, and someone else's namespace: not found.
    for ref in (factory.group(visibility="public")["id"], "root", 987654321):
        with pytest.raises(gitlab.GitlabGetError) as err:
            gl.namespaces.get(ref)
        assert err.value.response_code == 404
    assert server.root("GET", f"/namespaces/{user['username']}").json()["id"] == personal.id


def test_admin_sees_every_namespace(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    user = factory.user()
    group = factory.group(visibility="private")
    found = {ns.full_path for ns in gl.namespaces.list(search=user["username"])}
    assert user["username"] in found
    assert [ns.id for ns in gl.namespaces.list(search=group["path"])] == [group["id"]]


def test_namespaces_need_authentication(server: LiveServer) -> None:
    assert server.request("GET", "/namespaces").status_code == 401
    assert server.request("GET", "/namespaces/1").status_code == 401


def test_create_project_in_namespace_from_list(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    gl = server.gl(token)
    group = factory.group(token=token)
    namespace = next(ns for ns in gl.namespaces.list(get_all=True) if ns.full_path == group["full_path"])
    project = gl.projects.create({"name": "in-group", "namespace_id": namespace.id})
    assert project.path_with_namespace == f"{group['full_path']}/in-group"
    assert gl.namespaces.get(namespace.id).projects_count == 1
    assert user["id"] not in [m.id for m in gl.projects.get(project.id).members.list()], (
        "a group Owner needs no direct membership of a project they create"
    )
