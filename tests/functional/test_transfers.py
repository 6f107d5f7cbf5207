"""Transfers: PUT /projects/:id/transfer, POST /groups/:id/transfer and their transfer_locations,
with python-gitlab, its CLI, git, twine and pip; bad input refused with GitLab's messages, writing
nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gitlab
import pytest
import requests
from sqlalchemy import select

from keycrew.audit.models import AuditEvent
from keycrew.namespaces.models import Route
from tests.functional.test_pypi import import_value, make_wheel, twine_upload
from tests.functional.test_registry_token_service import access as registry_access
from tests.support.git import Git, basic, info_refs, repo_url
from tests.support.live import Factory, LiveServer, uid

DEVELOPER, MAINTAINER, OWNER = 30, 40, 50


def _failed(message: str) -> dict[str, str]:
    return {"message": f'Failed to transfer project {{:new_namespace=>["{message}"]}}'}


def _group_failed(message: str) -> dict[str, str]:
    return {"message": f"Transfer failed: {message}"}


SA_STAY = "Service accounts of its top-level group are members, and they cannot leave that top-level group."


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path)


@pytest.fixture(autouse=True)
def _fresh_throttle(server: LiveServer) -> Iterator[None]:
    """Refused git and pip requests here must not ban 127.0.0.1 for the tests that follow."""
    server.runtime.auth_throttle.reset()
    yield
    server.runtime.auth_throttle.reset()


def _enc(path: str) -> str:
    return quote(path, safe="")


def _project(server: LiveServer, ref: int | str) -> dict[str, Any]:
    response = server.root("GET", f"/projects/{_enc(str(ref))}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _group(server: LiveServer, ref: int | str) -> dict[str, Any]:
    response = server.root("GET", f"/groups/{_enc(str(ref))}?with_projects=false")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _routes(server: LiveServer, prefix: str) -> list[str]:
    with server.runtime.sessions() as db:
        rows = db.scalars(select(Route.path).where(Route.path_lower.like(prefix.lower() + "%"))).all()
    return sorted(rows)


def _events(server: LiveServer, name: str, entity_id: int) -> list[AuditEvent]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent).where(AuditEvent.event_name == name, AuditEvent.entity_id == entity_id)
            ).all()
        )


def _pip(server: LiveServer, project_ref: str, auth: tuple[str, str], name: str, target: Path) -> Any:
    """pip install from the simple index of ``project_ref`` (an id or an encoded full path)."""
    host = server.url.removeprefix("http://")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TWINE_", "KEYCREW_"))}
    env.update(
        HOME=str(target.parent),
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INPUT="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
    )
    index = f"http://{quote(auth[0], safe='')}:{quote(auth[1], safe='')}@{host}"
    index += f"/api/v4/projects/{project_ref}/packages/pypi/simple"
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target)]
    return subprocess.run(
        [*command, "--index-url", index, name],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


# --- the proof: a project with a bot, a deploy token, a repository and a package moves ------------


def test_project_moves_with_its_bot_deploy_token_repository_and_package(
    server: LiveServer, factory: Factory, git: Git, tmp_path: Path
) -> None:
    user, token = factory.user_with_token(["api"])
    source = factory.group(token=token)
    target = factory.group()
    factory.member("groups", target["id"], user["id"], MAINTAINER)
    project = factory.project(token=token, namespace_id=source["id"])
    pid, old_path = project["id"], project["path_with_namespace"]

    bot = server.root(
        "POST",
        f"/projects/{pid}/access_tokens",
        json={"name": "ci", "scopes": ["api", "read_repository", "write_repository"], "access_level": 40},
    )
    assert bot.status_code == 201, bot.text
    bot_token = bot.json()["token"]
    deploy = server.root(
        "POST",
        f"/projects/{pid}/deploy_tokens",
        json={"name": uid("dt"), "scopes": ["read_repository", "read_package_registry", "read_registry"]},
    ).json()
    deploy_auth = (deploy["username"], deploy["token"])

    work = git.new_repo()
    head = git.commit(work, "hello.txt", "hello\n")
    pushed = git.push(work, repo_url(server, old_path, "bot", bot_token), "HEAD:refs/heads/main")
    assert pushed.returncode == 0, pushed.stderr
    dist = tmp_path / "dist"
    dist.mkdir()
    name = uid("pkg")
    uploaded = twine_upload(server, pid, "__token__", bot_token, make_wheel(dist, name, "1.0"))
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr

    # The Owner moves it with python-gitlab, naming the target by its full path.
    server.gl(token).projects.get(pid).transfer(target["full_path"])

    moved = _project(server, pid)
    new_path = f"{target['full_path']}/{project['path']}"
    assert moved["path_with_namespace"] == new_path
    assert moved["namespace"]["id"] == target["id"]
    assert moved["name_with_namespace"] == f"{target['full_name']} / {project['name']}"
    assert moved["http_url_to_repo"] == f"{server.url}/{new_path}.git"
    assert moved["empty_repo"] is False
    assert _project(server, new_path)["id"] == pid
    assert server.root("GET", f"/projects/{_enc(old_path)}").json() == {"message": "404 Project Not Found"}
    assert _routes(server, old_path) == []
    assert _routes(server, new_path) == [new_path]

    # The bot's token still works, on the API and on git at the new path; the old path is gone.
    assert server.request("GET", f"/projects/{pid}", token=bot_token).status_code == 200
    clone, _ = git.clone(repo_url(server, new_path, "bot", bot_token))
    assert git.run("rev-parse", "HEAD", cwd=clone).stdout.strip() == head
    assert (clone / "hello.txt").read_text() == "hello\n"
    assert info_refs(server, old_path, headers=basic("bot", bot_token)).status_code == 404
    _, failed = git.clone(repo_url(server, old_path, "bot", bot_token), check=False)
    assert failed.returncode != 0
    assert "not found" in failed.stderr
    git.commit(clone, "after.txt", "after\n")
    assert (
        git.push(clone, repo_url(server, new_path, "bot", bot_token), "HEAD:refs/heads/main").returncode == 0
    )

    # The deploy token clones and installs from the new path; the old path's index is gone.
    git.clone(repo_url(server, new_path, *deploy_auth))
    installed = _pip(server, _enc(new_path), deploy_auth, name, tmp_path / "site")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert import_value(tmp_path / "site", name.replace("-", "_")) == f"{name} 1.0"
    refused = _pip(server, _enc(old_path), deploy_auth, name, tmp_path / "old-site")
    assert refused.returncode != 0
    assert "No matching distribution" in refused.stderr
    old_index = requests.get(
        server.api(f"/projects/{_enc(old_path)}/packages/pypi/simple/{name}/"), auth=deploy_auth, timeout=30
    )
    assert old_index.status_code == 404

    # The container registry's token service names images by the new path only.
    granted = registry_access(
        server, f"repository:{new_path}:pull", f"repository:{old_path}:pull", creds=deploy_auth
    )
    assert granted.get(f"repository:{new_path}") == ["pull"]
    assert not granted.get(f"repository:{old_path}")

    (event,) = _events(server, "project.transferred", pid)
    assert event.details["from"] == old_path
    assert event.details["to"] == new_path
    assert event.author_id == user["id"]


def test_project_to_a_personal_namespace_and_visibility(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    public_group = factory.group(token=token, visibility="public")
    project = factory.project(token=token, namespace_id=public_group["id"], visibility="public")
    private_group = factory.group(token=token, visibility="private")

    # Into a private group: the project becomes private (raw HTTP, the namespace by id).
    response = server.request(
        "PUT", f"/projects/{project['id']}/transfer", token=token, json={"namespace": private_group["id"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["visibility"] == "private"
    assert response.json()["namespace"]["full_path"] == private_group["full_path"]

    # Into the caller's own namespace (by its path, in the query string): the caller is its Owner.
    response = server.request(
        "PUT", f"/projects/{project['id']}/transfer?namespace={user['username']}", token=token
    )
    assert response.status_code == 200, response.text
    assert response.json()["path_with_namespace"] == f"{user['username']}/{project['path']}"
    assert response.json()["owner"]["id"] == user["id"]
    members = server.root("GET", f"/projects/{project['id']}/members").json()
    assert {(m["id"], m["access_level"]) for m in members} >= {(user["id"], OWNER)}

    # Someone else's namespace: not even found for its owner's peers; an admin may move it there.
    other = factory.user()
    response = server.request(
        "PUT", f"/projects/{project['id']}/transfer", token=token, json={"namespace": other["username"]}
    )
    assert (response.status_code, response.json()) == (404, {"message": "404 Namespace Not Found"})
    response = server.root("PUT", f"/projects/{project['id']}/transfer?namespace={other['username']}")
    assert response.status_code == 200, response.text
    assert response.json()["owner"]["id"] == other["id"]
    members = server.root("GET", f"/projects/{project['id']}/members").json()
    assert {(m["id"], m["access_level"]) for m in members} >= {(user["id"], OWNER), (other["id"], OWNER)}


def test_bad_project_transfers_write_nothing(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    home = factory.group(token=token)
    project = factory.project(token=token, namespace_id=home["id"])
    pid, path = project["id"], project["path_with_namespace"]
    dev_group = factory.group()
    factory.member("groups", dev_group["id"], user["id"], DEVELOPER)
    clash = factory.group(token=token)
    factory.project(token=token, namespace_id=clash["id"], path=project["path"], name=uid("other"))
    clash_by_name = factory.group(token=token)
    factory.project(token=token, namespace_id=clash_by_name["id"], name=project["name"], path=uid("x"))
    stranger_group = factory.group()  # private, the user is no member
    maintainer, maintainer_token = factory.user_with_token(["api"])
    factory.member("projects", pid, maintainer["id"], MAINTAINER)

    def put(body: Any, as_token: str = token, ref: Any = pid) -> tuple[int, Any]:
        response = server.request("PUT", f"/projects/{ref}/transfer", token=as_token, json=body)
        return response.status_code, response.json()

    assert put({}) == (400, {"error": "namespace is missing"})
    assert put({"namespace": 999999999}) == (404, {"message": "404 Namespace Not Found"})
    assert put({"namespace": uid("nowhere")}) == (404, {"message": "404 Namespace Not Found"})
    assert put({"namespace": stranger_group["id"]}) == (404, {"message": "404 Namespace Not Found"})
    assert put({"namespace": home["id"]}) == (400, _failed("Project is already in this namespace."))
    assert put({"namespace": dev_group["id"]}) == (
        400,
        _failed("You don't have permission to transfer projects into that namespace."),
    )
    taken = _failed("Project with same name or path in target namespace already exists")
    assert put({"namespace": clash["full_path"]}) == (400, taken)
    assert put({"namespace": clash_by_name["id"]}) == (400, taken)
    # A Maintainer of the project may see it but not move it; a stranger may not see it.
    assert put({"namespace": clash["id"]}, maintainer_token) == (403, {"message": "403 Forbidden"})
    _, stranger_token = factory.user_with_token(["api"])
    assert put({"namespace": clash["id"]}, stranger_token) == (404, {"message": "404 Project Not Found"})
    assert put({"namespace": clash["id"]}, ref=999999999) == (404, {"message": "404 Project Not Found"})

    # python-gitlab raises its transfer error with GitLab's message.
    with pytest.raises(gitlab.GitlabTransferProjectError) as raised:
        server.gl(token).projects.get(pid, lazy=True).transfer(dev_group["id"])
    assert raised.value.response_code == 400
    assert "You don't have permission to transfer projects into that namespace." in str(raised.value)

    assert _project(server, pid)["path_with_namespace"] == path
    assert _routes(server, path) == [path]
    assert _events(server, "project.transferred", pid) == []


# --- groups ------------------------------------------------------------------------------------


def test_group_moves_with_its_subgroup_and_projects(server: LiveServer, factory: Factory, git: Git) -> None:
    _, token = factory.user_with_token(["api"])
    group = factory.group(token=token, visibility="public")
    sub = factory.group(token=token, parent_id=group["id"], visibility="public")
    inner = factory.project(
        token=token, namespace_id=sub["id"], visibility="public", initialize_with_readme=True
    )
    outer = factory.project(token=token, namespace_id=group["id"], visibility="internal")
    parent = factory.group(token=token, visibility="private")
    old = group["full_path"]

    server.gl(token).groups.get(group["id"]).transfer(parent["id"])

    new = f"{parent['full_path']}/{group['path']}"
    moved = _group(server, group["id"])
    assert (moved["full_path"], moved["parent_id"]) == (new, parent["id"])
    assert moved["full_name"] == f"{parent['full_name']} / {group['name']}"
    assert moved["visibility"] == "private"  # no more visible than its new parent
    moved_sub = _group(server, f"{new}/{sub['path']}")
    assert moved_sub["id"] == sub["id"]
    assert moved_sub["full_name"] == f"{parent['full_name']} / {group['name']} / {sub['name']}"
    assert moved_sub["visibility"] == "private"
    moved_inner = _project(server, f"{new}/{sub['path']}/{inner['path']}")
    assert moved_inner["id"] == inner["id"]
    assert moved_inner["visibility"] == "private"
    assert moved_inner["name_with_namespace"] == f"{moved_sub['full_name']} / {inner['name']}"
    assert _project(server, outer["id"])["path_with_namespace"] == f"{new}/{outer['path']}"
    for gone in (old, f"{old}/{sub['path']}"):
        assert server.root("GET", f"/groups/{_enc(gone)}").status_code == 404
    for gone in (inner["path_with_namespace"], outer["path_with_namespace"]):
        assert server.root("GET", f"/projects/{_enc(gone)}").status_code == 404
    assert _routes(server, old + "/") == []
    assert _routes(server, new) == sorted(
        [new, f"{new}/{sub['path']}", f"{new}/{sub['path']}/{inner['path']}", f"{new}/{outer['path']}"]
    )
    assert server.root("GET", f"/namespaces/{_enc(new)}").json()["id"] == group["id"]
    clone, _ = git.clone(repo_url(server, moved_inner["path_with_namespace"], "u", token))
    assert (clone / "README.md").exists()
    assert info_refs(server, inner["path_with_namespace"], headers=basic("u", token)).status_code == 404

    # Back to the top level, with the CLI.
    done = server.gitlab_cli("group", "transfer", "--id", str(group["id"]), token=token)
    assert done.returncode == 0, done.stderr
    assert _group(server, group["id"])["full_path"] == old
    assert _project(server, inner["id"])["path_with_namespace"] == inner["path_with_namespace"]
    assert len(_events(server, "group.transferred", group["id"])) == 2


def test_top_level_group_without_owner_gets_the_caller(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    group = factory.group(token=token)
    sub = factory.group(token=token, parent_id=group["id"])
    # The creator's own Owner membership of the subgroup goes: Owner there only by inheritance.
    assert server.root("DELETE", f"/groups/{sub['id']}/members/{user['id']}").status_code == 204
    response = server.request("POST", f"/groups/{sub['id']}/transfer", token=token)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["full_path"], body["parent_id"]) == (sub["path"], None)
    members = server.root("GET", f"/groups/{sub['id']}/members").json()
    assert [(m["id"], m["access_level"]) for m in members] == [(user["id"], OWNER)]


def test_bad_group_transfers_write_nothing(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    group = factory.group(token=token)
    sub = factory.group(token=token, parent_id=group["id"])
    deeper = factory.group(token=token, parent_id=sub["id"])
    project = factory.project(token=token, namespace_id=sub["id"])
    clash = factory.group(token=token)
    factory.group(token=token, parent_id=clash["id"], path=sub["path"], name=uid("n"))
    project_clash = factory.group(token=token)
    factory.project(token=token, namespace_id=project_clash["id"], path=sub["path"], name=uid("n"))
    developer_in = factory.group()
    factory.member("groups", developer_in["id"], user["id"], DEVELOPER)
    unseen = factory.group()
    maintainer, maintainer_token = factory.user_with_token(["api"])
    factory.member("groups", sub["id"], maintainer["id"], MAINTAINER)

    def post(ref: Any, body: Any, as_token: str = token) -> tuple[int, Any]:
        response = server.request("POST", f"/groups/{ref}/transfer", token=as_token, json=body)
        return response.status_code, response.json()

    sid = sub["id"]
    assert post(sid, {"group_id": deeper["id"]}) == (
        400,
        _group_failed("Cannot transfer group to one of its subgroup."),
    )
    assert post(sid, {"group_id": sid}) == (
        400,
        _group_failed("Cannot transfer group to one of its subgroup."),
    )
    assert post(sid, {"group_id": 999999999}) == (404, {"message": "404 Group Not Found"})
    assert post(sid, {"group_id": unseen["id"]}) == (404, {"message": "404 Group Not Found"})
    assert post(sid, {"group_id": "abc"}) == (400, {"error": "group_id is invalid"})
    assert post(sid, {"group_id": group["id"]}) == (
        400,
        _group_failed("Group is already associated to the parent group."),
    )
    assert post(group["id"], {}) == (400, _group_failed("Group is already a root group."))
    reserved = factory.group(token=token, parent_id=group["id"], path="api", name=uid("api"))
    assert post(reserved["id"], {}) == (
        400,
        _group_failed("Validation failed: Group URL api is a reserved name"),
    )
    assert _group(server, reserved["id"])["full_path"] == f"{group['full_path']}/api"
    assert post(sid, {"group_id": developer_in["id"]}) == (
        400,
        _group_failed("You don't have enough permissions."),
    )
    path_taken = _group_failed("The parent group already has a subgroup or a project with the same path.")
    assert post(sid, {"group_id": clash["id"]}) == (400, path_taken)
    assert post(sid, {"group_id": project_clash["id"]}) == (400, path_taken)
    assert post(sid, {"group_id": clash["id"]}, maintainer_token) == (403, {"message": "403 Forbidden"})
    _, stranger_token = factory.user_with_token(["api"])
    assert post(sid, {"group_id": clash["id"]}, stranger_token) == (404, {"message": "404 Group Not Found"})

    with pytest.raises(gitlab.GitlabGroupTransferError) as raised:
        server.gl(token).groups.get(sid, lazy=True).transfer(deeper["id"])
    assert raised.value.response_code == 400

    done = server.gitlab_cli(
        "group", "transfer", "--id", str(sid), "--group-id", str(deeper["id"]), token=token
    )
    assert done.returncode != 0
    assert "Cannot transfer group to one of its subgroup." in done.stderr

    assert _group(server, sid)["full_path"] == sub["full_path"]
    assert _group(server, deeper["id"])["full_path"] == deeper["full_path"]
    assert _project(server, project["id"])["path_with_namespace"] == project["path_with_namespace"]
    assert _routes(server, group["full_path"]) == sorted(
        [
            group["full_path"],
            sub["full_path"],
            deeper["full_path"],
            project["path_with_namespace"],
            reserved["full_path"],
        ]
    )
    assert _events(server, "group.transferred", sid) == []


# --- service accounts stay in their top-level group ---------------------------------------------


def test_service_account_members_keep_their_top_level_group(server: LiveServer, factory: Factory) -> None:
    top = factory.group()
    sub = factory.group(parent_id=top["id"])
    other_sub = factory.group(parent_id=top["id"])
    project = factory.project(namespace_id=sub["id"])
    elsewhere = factory.group()
    account = server.root("POST", f"/groups/{top['id']}/service_accounts", json={}).json()
    factory.member("projects", project["id"], account["id"], DEVELOPER)

    # Out of the top-level group: refused, for the project and for a group holding it.
    response = server.root("PUT", f"/projects/{project['id']}/transfer", json={"namespace": elsewhere["id"]})
    assert (response.status_code, response.json()) == (400, _failed(SA_STAY))
    for body in ({"group_id": elsewhere["id"]}, {}):
        response = server.root("POST", f"/groups/{sub['id']}/transfer", json=body)
        assert (response.status_code, response.json()) == (400, _group_failed(SA_STAY))
    assert _project(server, project["id"])["path_with_namespace"] == project["path_with_namespace"]

    # Within it: allowed.
    response = server.root("POST", f"/groups/{sub['id']}/transfer", json={"group_id": other_sub["id"]})
    assert response.status_code == 201, response.text
    response = server.root("PUT", f"/projects/{project['id']}/transfer", json={"namespace": top["id"]})
    assert response.status_code == 200, response.text
    assert response.json()["path_with_namespace"] == f"{top['full_path']}/{project['path']}"


# --- transfer locations ------------------------------------------------------------------------


def test_transfer_locations(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    tag = uid("loc")
    home = factory.group(token=token, name=f"{tag} home", path=f"{tag}-home")
    child = factory.group(token=token, parent_id=home["id"], name=f"{tag} child", path=f"{tag}-child")
    owned = factory.group(token=token, name=f"{tag} owned", path=f"{tag}-owned")
    maintained = factory.group(name=f"{tag} maintained", path=f"{tag}-maintained")
    factory.member("groups", maintained["id"], user["id"], MAINTAINER)
    developed = factory.group(name=f"{tag} developed", path=f"{tag}-developed")
    factory.member("groups", developed["id"], user["id"], DEVELOPER)
    project = factory.project(token=token, namespace_id=home["id"])

    def names(path: str, as_token: str = token) -> list[str]:
        response = server.request("GET", path, token=as_token)
        assert response.status_code == 200, response.text
        return [g["full_path"] for g in response.json()]

    # A project may go to every group where the caller is Maintainer+, but its own.
    found = names(f"/projects/{project['id']}/transfer_locations?search={tag}")
    assert sorted(found) == sorted([child["full_path"], owned["full_path"], maintained["full_path"]])
    one = server.request(
        "GET", f"/projects/{project['id']}/transfer_locations?search={tag}&per_page=1", token=token
    )
    assert one.headers["X-Total"] == "3"
    assert set(one.json()[0]) == {"id", "web_url", "name", "avatar_url", "full_name", "full_path"}
    assert names(f"/projects/{project['id']}/transfer_locations?search={tag}-ow") == [owned["full_path"]]

    # A group may go under the groups the caller owns, but itself, its subgroups and its parent.
    assert names(f"/groups/{home['id']}/transfer_locations?search={tag}") == [owned["full_path"]]
    assert sorted(names(f"/groups/{child['id']}/transfer_locations?search={tag}")) == [owned["full_path"]]

    # Not the Owner: 403 (a Maintainer of the project); invisible: 404.
    maintainer, maintainer_token = factory.user_with_token(["api"])
    factory.member("projects", project["id"], maintainer["id"], MAINTAINER)
    response = server.request("GET", f"/projects/{project['id']}/transfer_locations", token=maintainer_token)
    assert (response.status_code, response.json()) == (403, {"message": "403 Forbidden"})
    _, stranger_token = factory.user_with_token(["api"])
    response = server.request("GET", f"/groups/{home['id']}/transfer_locations", token=stranger_token)
    assert (response.status_code, response.json()) == (404, {"message": "404 Group Not Found"})


def test_cli_transfers_a_project(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token(["api"])
    project = factory.project(token=token)
    group = factory.group(token=token)
    done = server.gitlab_cli(
        "project", "transfer", "--id", str(project["id"]), "--to-namespace", group["full_path"], token=token
    )
    assert done.returncode == 0, done.stderr
    assert _project(server, project["id"])["namespace"]["id"] == group["id"]
    done = server.gitlab_cli(
        "project", "transfer", "--id", str(project["id"]), "--to-namespace", str(group["id"]), token=token
    )
    assert done.returncode != 0
    assert "Project is already in this namespace." in done.stderr


def test_admins_move_a_project_into_a_group(server: LiveServer, factory: Factory, gl: gitlab.Gitlab) -> None:
    owner, token = factory.user_with_token(["api"])
    project = factory.project(token=token)
    group = factory.group()
    factory.member("groups", group["id"], owner["id"], OWNER)

    # Only admins, even for the project's and the group's Owner.
    with pytest.raises(gitlab.GitlabTransferProjectError) as raised:
        server.gl(token).groups.get(group["id"], lazy=True).transfer_project(project["id"])
    assert raised.value.response_code == 403

    gl.groups.get(group["id"], lazy=True).transfer_project(project["id"])
    assert _project(server, project["id"])["path_with_namespace"] == f"{group['full_path']}/{project['path']}"
    again = server.root("POST", f"/groups/{group['id']}/projects/{project['id']}")
    assert (again.status_code, again.json()) == (400, _failed("Project is already in this namespace."))
    missing = server.root("POST", f"/groups/{group['id']}/projects/999999999")
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Project Not Found"})


# --- access follows the tree at once -------------------------------------------------------------


def test_inherited_access_follows_the_move_at_once(server: LiveServer, factory: Factory, git: Git) -> None:
    old_member, old_token = factory.user_with_token(["api", "read_repository"])
    new_member, new_token = factory.user_with_token(["api", "read_repository"])
    direct, direct_token = factory.user_with_token(["api"])
    source = factory.group()
    target = factory.group()
    factory.member("groups", source["id"], old_member["id"], DEVELOPER)
    factory.member("groups", target["id"], new_member["id"], DEVELOPER)
    project = factory.project(namespace_id=source["id"], initialize_with_readme=True)
    factory.member("projects", project["id"], direct["id"], DEVELOPER)
    path = f"/projects/{project['id']}"

    # Each token is used (and so its principal cached) before the move.
    assert server.request("GET", path, token=old_token).status_code == 200
    assert server.request("GET", path, token=new_token).status_code == 404
    assert info_refs(server, project["path_with_namespace"], headers=basic("o", old_token)).status_code == 200

    response = server.root("PUT", f"{path}/transfer", json={"namespace": target["id"]})
    assert response.status_code == 200, response.text
    new_path = response.json()["path_with_namespace"]

    assert server.request("GET", path, token=old_token).status_code == 404
    assert info_refs(server, new_path, headers=basic("o", old_token)).status_code == 404
    assert server.request("GET", path, token=new_token).status_code == 200
    git.clone(repo_url(server, new_path, "n", new_token))
    # A direct membership stays with the project.
    assert server.request("GET", path, token=direct_token).status_code == 200
    members = server.root("GET", f"{path}/members").json()
    assert [(m["id"], m["access_level"]) for m in members] == [(direct["id"], DEVELOPER)]


def test_concurrent_moves_and_creations_stay_consistent(server: LiveServer, factory: Factory) -> None:
    """A group moved while a project is created in it and its new parent is renamed: whatever the
    order, every path is where its parent says, and no request fails with a 5xx."""
    for _ in range(4):
        group = factory.group()
        sub = factory.group(parent_id=group["id"])
        parent = factory.group()
        renamed = uid("r")
        answers = _together(
            partial(server.root, "POST", f"/groups/{group['id']}/transfer", json={"group_id": parent["id"]}),
            partial(server.root, "POST", "/projects", json={"name": uid("p"), "namespace_id": sub["id"]}),
            partial(server.root, "PUT", f"/groups/{parent['id']}", json={"path": renamed}),
        )
        assert [r.status_code for r in answers] == [201, 201, 200], [r.text for r in answers]
        made = _project(server, answers[1].json()["id"])
        assert made["path_with_namespace"] == f"{renamed}/{group['path']}/{sub['path']}/{made['path']}"
        assert _group(server, sub["id"])["full_path"] == f"{renamed}/{group['path']}/{sub['path']}"
        assert _routes(server, renamed) == sorted(
            [
                renamed,
                f"{renamed}/{group['path']}",
                f"{renamed}/{group['path']}/{sub['path']}",
                made["path_with_namespace"],
            ]
        )


def _together(*calls: Any) -> list[Any]:
    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> Any:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [f.result(timeout=90) for f in [pool.submit(run, call) for call in calls]]
