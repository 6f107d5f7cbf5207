"""Sharing groups and projects with groups (GitLab's group links): the endpoints with python-gitlab,
its CLI and raw HTTP; what a share gives the invited group's members (capped, expiring), in every
check, listing and member list; bad input that writes nothing."""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gitlab
import pytest

from tests.support.git import Git, repo_url
from tests.support.live import Factory, LiveServer, uid

MAIN_REFUSED = "You are not allowed to push code to protected branches on this project."


def _member_of(factory: Factory, group_id: int, level: int) -> tuple[dict[str, Any], str]:
    user, token = factory.user_with_token(["api", "write_repository"])
    factory.member("groups", group_id, user["id"], level)
    return user, token


def _events(server: LiveServer, group_id: int) -> list[dict[str, Any]]:
    response = server.root("GET", f"/groups/{group_id}/audit_events?per_page=100")
    assert response.status_code == 200, response.text
    return list(response.json())


def _ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()}


# -- groups ---------------------------------------------------------------------------------------


def test_group_share_gives_capped_access_to_the_group_and_everything_under_it(
    server: LiveServer, factory: Factory
) -> None:
    _owner, owner_token = factory.user_with_token()
    shared = factory.group(token=owner_token)
    sub = factory.group(token=owner_token, parent_id=shared["id"])
    project = factory.project(token=owner_token, namespace_id=sub["id"])
    team = factory.group(token=owner_token)
    _dev, dev_token = _member_of(factory, team["id"], 30)
    as_dev = server.gl(dev_token)
    # Before: the private group, its subgroup and project are invisible to the team's member.
    for path in (f"/groups/{shared['id']}", f"/groups/{sub['id']}", f"/projects/{project['id']}"):
        assert server.request("GET", path, token=dev_token).status_code == 404

    gl = server.gl(owner_token)
    group = gl.groups.get(shared["id"])
    group.share(team["id"], gitlab.const.AccessLevel.REPORTER)
    assert group.shared_with_groups == [
        {
            "group_id": team["id"],
            "group_name": team["name"],
            "group_full_path": team["full_path"],
            "group_access_level": 20,
            "expires_at": None,
        }
    ]
    detail = server.root("GET", f"/groups/{shared['id']}").json()
    assert [link["group_id"] for link in detail["shared_with_groups"]] == [team["id"]]

    # After: the member reads all three, at Reporter (the cap), never their own Developer.
    assert as_dev.groups.get(shared["id"]).id == shared["id"]
    assert as_dev.groups.get(sub["id"]).id == sub["id"]
    seen = as_dev.projects.get(project["id"])
    assert seen.id == project["id"]
    assert shared["id"] in {g.id for g in as_dev.groups.list(get_all=True)}
    assert sub["id"] in {g.id for g in as_dev.groups.list(get_all=True, min_access_level=20)}
    assert shared["id"] not in {g.id for g in as_dev.groups.list(get_all=True, min_access_level=30)}
    assert project["id"] in {p.id for p in as_dev.projects.list(get_all=True, membership=True)}
    assert project["id"] not in {p.id for p in as_dev.projects.list(get_all=True, min_access_level=30)}
    # Reporter: may not create a project in the shared group (Developer needed).
    refused = server.request(
        "POST", "/projects", token=dev_token, json={"name": uid("p"), "namespace_id": sub["id"]}
    )
    assert refused.status_code == 403, refused.text

    # The audit trail has the share.
    assert "group.shared_with_group" in {e["event_name"] for e in _events(server, shared["id"])}

    # Unshare: gone at once, everywhere.
    group.unshare(team["id"])
    for path in (f"/groups/{shared['id']}", f"/groups/{sub['id']}", f"/projects/{project['id']}"):
        assert server.request("GET", path, token=dev_token).status_code == 404
    assert server.root("GET", f"/groups/{shared['id']}").json()["shared_with_groups"] == []
    again = server.request("DELETE", f"/groups/{shared['id']}/share/{team['id']}", token=owner_token)
    assert again.status_code == 404
    assert again.json() == {"message": "404 Group Link Not Found"}


def test_members_of_the_invited_groups_ancestors_are_invited_too(
    server: LiveServer, factory: Factory
) -> None:
    shared = factory.group()
    parent = factory.group()
    team = factory.group(parent_id=parent["id"])
    maintainer, token = _member_of(factory, parent["id"], 40)
    response = server.root(
        "POST", f"/groups/{shared['id']}/share", json={"group_id": team["id"], "group_access": 30}
    )
    assert response.status_code == 201, response.text
    assert response.json()["id"] == shared["id"]
    # Member of the parent of the invited group: Developer (the cap), not Maintainer.
    everyone = server.root("GET", f"/groups/{shared['id']}/members/all?per_page=100").json()
    levels = {m["id"]: m["access_level"] for m in everyone}
    assert levels[maintainer["id"]] == 30
    direct = server.root("GET", f"/groups/{shared['id']}/members?per_page=100").json()
    assert maintainer["id"] not in {m["id"] for m in direct}
    one = server.root("GET", f"/groups/{shared['id']}/members/all/{maintainer['id']}")
    assert one.status_code == 200, one.text
    assert one.json()["access_level"] == 30
    # Developer: may create a project in the shared group, may not add members (Owner needed).
    made = server.request(
        "POST", "/projects", token=token, json={"name": uid("p"), "namespace_id": shared["id"]}
    )
    assert made.status_code == 201, made.text
    other = factory.user()
    added = server.request(
        "POST",
        f"/groups/{shared['id']}/members",
        token=token,
        json={"user_id": other["id"], "access_level": 10},
    )
    assert added.status_code == 403, added.text


def test_members_all_takes_the_highest_of_membership_and_share(server: LiveServer, factory: Factory) -> None:
    shared = factory.group()
    team = factory.group()
    guest, _ = _member_of(factory, team["id"], 10)
    both, _ = _member_of(factory, team["id"], 50)
    factory.member("groups", shared["id"], both["id"], 20)
    assert (
        server.root(
            "POST", f"/groups/{shared['id']}/share", json={"group_id": team["id"], "group_access": 40}
        ).status_code
        == 201
    )
    listed = server.root("GET", f"/groups/{shared['id']}/members/all?per_page=100")
    assert listed.status_code == 200, listed.text
    levels = {m["id"]: m["access_level"] for m in listed.json()}
    assert levels[guest["id"]] == 10  # below the cap: their own level
    assert levels[both["id"]] == 40  # own Reporter, capped Owner 40 through the share: the highest
    assert listed.headers["X-Total"] == str(len(levels))
    assert len(levels) == 3  # root (the creator), and the two
    # Paging keeps one row per user.
    first = server.root("GET", f"/groups/{shared['id']}/members/all?per_page=2").json()
    second = server.root("GET", f"/groups/{shared['id']}/members/all?per_page=2&page=2").json()
    assert len({m["id"] for m in first + second}) == 3


def test_group_share_cli(server: LiveServer, factory: Factory) -> None:
    shared = factory.group()
    team = factory.group()
    done = server.gitlab_cli(
        "group", "share", "--id", str(shared["id"]), "--group-id", str(team["id"]), "--group-access", "30"
    )
    assert done.returncode == 0, done.stderr
    links = server.root("GET", f"/groups/{shared['id']}").json()["shared_with_groups"]
    assert [(link["group_id"], link["group_access_level"]) for link in links] == [(team["id"], 30)]
    done = server.gitlab_cli("group", "unshare", "--id", str(shared["id"]), "--group-id", str(team["id"]))
    assert done.returncode == 0, done.stderr
    assert server.root("GET", f"/groups/{shared['id']}").json()["shared_with_groups"] == []


def test_group_share_refusals_write_nothing(server: LiveServer, factory: Factory) -> None:
    _owner, owner_token = factory.user_with_token()
    parent = factory.group(token=owner_token)
    shared = factory.group(token=owner_token, parent_id=parent["id"])
    team = factory.group(token=owner_token, visibility="public")
    hidden = factory.group()  # private, owner is not a member
    developer, dev_token = _member_of(factory, shared["id"], 30)
    path = f"/groups/{shared['id']}/share"

    def share(body: dict[str, Any], token: str = owner_token) -> Any:
        return server.request("POST", path, token=token, json=body)

    cases: list[tuple[dict[str, Any], str, int, dict[str, Any]]] = [
        ({"group_access": 30}, owner_token, 400, {"error": "group_id is missing"}),
        ({"group_id": team["id"]}, owner_token, 400, {"error": "group_access is missing"}),
        (
            {"group_id": team["id"], "group_access": 45},
            owner_token,
            400,
            {"error": "group_access does not have a valid value"},
        ),
        (
            {"group_id": team["id"], "group_access": 0},
            owner_token,
            400,
            {"error": "group_access does not have a valid value"},
        ),
        (
            {"group_id": team["id"], "group_access": 30, "expires_at": "soon"},
            owner_token,
            400,
            {"error": "expires_at is invalid"},
        ),
        ({"group_id": 999999999, "group_access": 30}, owner_token, 404, {"message": "404 Group Not Found"}),
        (
            {"group_id": hidden["id"], "group_access": 30},
            owner_token,
            404,
            {"message": "404 Group Not Found"},
        ),
        # A Developer of the group does not share it (GitLab's service answers "Not Found").
        ({"group_id": team["id"], "group_access": 30}, dev_token, 404, {"message": "Not Found"}),
        (
            {"group_id": shared["id"], "group_access": 30},
            owner_token,
            409,
            {"message": "Group cannot be shared with itself or one of its ancestors."},
        ),
        (
            {"group_id": parent["id"], "group_access": 30},
            owner_token,
            409,
            {"message": "Group cannot be shared with itself or one of its ancestors."},
        ),
    ]
    for body, token, status, answer in cases:
        response = share(body, token)
        assert (response.status_code, response.json()) == (status, answer), body
    assert server.root("GET", f"/groups/{shared['id']}").json()["shared_with_groups"] == []
    assert not [e for e in _events(server, shared["id"]) if e["event_name"] == "group.shared_with_group"]

    assert share({"group_id": team["id"], "group_access": 30, "expires_at": None}).status_code == 201
    duplicate = share({"group_id": team["id"], "group_access": 40})
    assert (duplicate.status_code, duplicate.json()) == (
        409,
        {"message": "Shared group The group has already been shared with this group"},
    )
    links = server.root("GET", f"/groups/{shared['id']}").json()["shared_with_groups"]
    assert [link["group_access_level"] for link in links] == [30]
    # Removing: a Developer may not; an unknown link is 404.
    refused = server.request("DELETE", f"{path}/{team['id']}", token=dev_token)
    assert refused.status_code == 403, refused.text
    missing = server.request("DELETE", f"{path}/{hidden['id']}", token=owner_token)
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Group Link Not Found"})
    bad = server.request("DELETE", f"{path}/abc", token=owner_token)
    assert bad.status_code == 400
    assert len(server.root("GET", f"/groups/{shared['id']}").json()["shared_with_groups"]) == 1
    assert developer


def test_expired_links_give_nothing(server: LiveServer, factory: Factory) -> None:
    shared = factory.group()
    project = factory.project(namespace_id=shared["id"])
    team = factory.group()
    _, token = _member_of(factory, team["id"], 30)
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    response = server.root(
        "POST",
        f"/groups/{shared['id']}/share",
        json={"group_id": team["id"], "group_access": 30, "expires_at": tomorrow},
    )
    assert response.status_code == 201, response.text
    assert response.json()["shared_with_groups"][0]["expires_at"] == tomorrow
    alone = factory.project(namespace_id=factory.group()["id"])
    linked = server.root(
        "POST",
        f"/projects/{alone['id']}/share",
        json={"group_id": team["id"], "group_access": 30, "expires_at": tomorrow},
    )
    assert linked.status_code == 201, linked.text
    assert linked.json()["expires_at"] == tomorrow
    for readable in (project, alone):
        assert server.request("GET", f"/projects/{readable['id']}", token=token).status_code == 200
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    for readable in (project, alone):
        assert server.request("GET", f"/projects/{readable['id']}", token=token).status_code == 404
    assert server.root("GET", f"/projects/{alone['id']}").json()["shared_with_groups"] == []
    assert len(server.root("GET", f"/projects/{alone['id']}/members/all").json()) == 1
    assert server.request("GET", f"/groups/{shared['id']}", token=token).status_code == 404
    assert server.root("GET", f"/groups/{shared['id']}").json()["shared_with_groups"] == []
    members = server.root("GET", f"/groups/{shared['id']}/members/all").json()
    assert len(members) == 1  # root only
    # Sharing again replaces the expired link.
    again = server.root(
        "POST", f"/groups/{shared['id']}/share", json={"group_id": team["id"], "group_access": 20}
    )
    assert again.status_code == 201, again.text
    assert server.request("GET", f"/projects/{project['id']}", token=token).status_code == 200


def test_deleting_either_side_removes_the_link(server: LiveServer, factory: Factory) -> None:
    shared = factory.group()
    team = factory.group()
    project = factory.project(namespace_id=factory.group()["id"])
    for path in (f"/groups/{shared['id']}/share", f"/projects/{project['id']}/share"):
        created = server.root("POST", path, json={"group_id": team["id"], "group_access": 30})
        assert created.status_code == 201, created.text
    assert server.root("DELETE", f"/groups/{team['id']}").status_code == 202
    assert server.root("GET", f"/groups/{shared['id']}").json()["shared_with_groups"] == []
    assert server.root("GET", f"/projects/{project['id']}").json()["shared_with_groups"] == []


# -- projects -------------------------------------------------------------------------------------


def test_project_share_with_python_gitlab_read_push_and_cap(
    server: LiveServer, factory: Factory, tmp_path: Path
) -> None:
    _owner, owner_token = factory.user_with_token()
    home = factory.group(token=owner_token)
    project = factory.project(token=owner_token, namespace_id=home["id"], initialize_with_readme=True)
    team = factory.group(token=owner_token)
    maintainer, token = _member_of(factory, team["id"], 40)
    assert server.request("GET", f"/projects/{project['id']}", token=token).status_code == 404

    gl = server.gl(owner_token)
    shared = gl.projects.get(project["id"])
    shared.share(team["id"], gitlab.const.AccessLevel.DEVELOPER)
    detail = server.root("GET", f"/projects/{project['id']}").json()
    assert detail["shared_with_groups"] == [
        {
            "group_id": team["id"],
            "group_name": team["name"],
            "group_full_path": team["full_path"],
            "group_access_level": 30,
            "expires_at": None,
        }
    ]

    # A Maintainer of the invited group reads the private project and pushes as a Developer.
    as_member = server.gl(token).projects.get(project["id"])
    assert as_member.id == project["id"]
    git = Git(tmp_path)
    clone, _ = git.clone(repo_url(server, project["path_with_namespace"], "m", token))
    git.run("checkout", "--quiet", "-b", "feature", cwd=clone)
    git.commit(clone)
    assert git.push(clone, "origin", "feature").returncode == 0
    refused = git.push(clone, "origin", "feature:main")
    assert refused.returncode != 0
    assert MAIN_REFUSED in refused.stderr
    # ...and never more: no member administration (Maintainer needed).
    other = factory.user()
    added = server.request(
        "POST",
        f"/projects/{project['id']}/members",
        token=token,
        json={"user_id": other["id"], "access_level": 10},
    )
    assert added.status_code == 403, added.text
    everyone = server.root("GET", f"/projects/{project['id']}/members/all?per_page=100").json()
    assert {m["id"]: m["access_level"] for m in everyone}[maintainer["id"]] == 30

    # project.groups: the ancestors, and with_shared the groups it is shared with.
    assert [g.id for g in shared.groups.list(get_all=True)] == [home["id"]]
    with_shared = {g.id for g in shared.groups.list(get_all=True, with_shared=True)}
    assert with_shared == {home["id"], team["id"]}
    assert [g.id for g in shared.groups.list(get_all=True, with_shared=True, skip_groups=[home["id"]])] == [
        team["id"]
    ]
    assert {g.id for g in shared.groups.list(get_all=True, with_shared=True, shared_min_access_level=40)} == {
        home["id"]
    }
    found = server.request(
        "GET", f"/projects/{project['id']}/groups?with_shared=true&search={team['path']}", token=owner_token
    )
    assert [g["id"] for g in found.json()] == [team["id"]]
    assert set(found.json()[0]) == {"id", "web_url", "name", "avatar_url", "full_name", "full_path"}

    shared.unshare(team["id"])
    assert server.request("GET", f"/projects/{project['id']}", token=token).status_code == 404
    assert "shared_with_groups" in detail


def test_project_share_raw_http_and_refusals(server: LiveServer, factory: Factory) -> None:
    _owner, owner_token = factory.user_with_token()
    parent = factory.group(token=owner_token)
    home = factory.group(token=owner_token, parent_id=parent["id"])
    project = factory.project(token=owner_token, namespace_id=home["id"])
    team = factory.group(token=owner_token)
    foreign = factory.group(visibility="public")  # visible, but the owner is not a member
    maintainer, main_token = factory.user_with_token()
    factory.member("projects", project["id"], maintainer["id"], 40)
    factory.member("groups", team["id"], maintainer["id"], 10)
    developer, dev_token = factory.user_with_token()
    factory.member("projects", project["id"], developer["id"], 30)
    outsider, out_token = factory.user_with_token()
    path = f"/projects/{project['id']}/share"

    cases: list[tuple[dict[str, Any], str, int, dict[str, Any]]] = [
        ({"group_access": 30}, owner_token, 400, {"error": "group_id is missing"}),
        (
            {"group_id": team["id"], "group_access": 31},
            owner_token,
            400,
            {"error": "group_access does not have a valid value"},
        ),
        ({"group_id": team["id"], "group_access": 30}, out_token, 404, {"message": "404 Project Not Found"}),
        ({"group_id": team["id"], "group_access": 30}, dev_token, 403, {"message": "403 Forbidden"}),
        # A Maintainer shares at Owner level: above their own.
        ({"group_id": team["id"], "group_access": 50}, main_token, 403, {"message": "403 Forbidden"}),
        ({"group_id": 999999999, "group_access": 30}, owner_token, 404, {"message": "Not Found"}),
        ({"group_id": foreign["id"], "group_access": 30}, owner_token, 404, {"message": "Not Found"}),
        (
            {"group_id": home["id"], "group_access": 30},
            owner_token,
            409,
            {"message": "Project cannot be shared with the group it is in or one of its ancestors."},
        ),
        (
            {"group_id": parent["id"], "group_access": 30},
            owner_token,
            409,
            {"message": "Project cannot be shared with the group it is in or one of its ancestors."},
        ),
    ]
    for body, token, status, answer in cases:
        response = server.request("POST", path, token=token, json=body)
        assert (response.status_code, response.json()) == (status, answer), body
    assert server.root("GET", f"/projects/{project['id']}").json()["shared_with_groups"] == []

    # What python-gitlab sends: "expires_at": null. The link entity comes back.
    created = server.request(
        "POST", path, token=main_token, json={"group_id": team["id"], "group_access": 40, "expires_at": None}
    )
    assert created.status_code == 201, created.text
    link = created.json()
    assert set(link) == {"id", "project_id", "group_id", "group_access", "expires_at"}
    assert (link["project_id"], link["group_id"], link["group_access"], link["expires_at"]) == (
        project["id"],
        team["id"],
        40,
        None,
    )
    duplicate = server.request(
        "POST", path, token=owner_token, json={"group_id": team["id"], "group_access": 20}
    )
    assert (duplicate.status_code, duplicate.json()) == (
        409,
        {"message": "Project already shared with this group"},
    )
    # Form-encoded works too (numbers as strings).
    other_team = factory.group(token=owner_token)
    form = server.request(
        "POST", path, token=owner_token, data={"group_id": str(other_team["id"]), "group_access": "20"}
    )
    assert form.status_code == 201, form.text

    assert server.request("DELETE", f"{path}/{team['id']}", token=dev_token).status_code == 403
    assert server.request("DELETE", f"{path}/{team['id']}", token=main_token).status_code == 204
    missing = server.request("DELETE", f"{path}/{team['id']}", token=main_token)
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Group Link Not Found"})
    detail = server.root("GET", f"/projects/{project['id']}").json()
    assert [g["group_id"] for g in detail["shared_with_groups"]] == [other_team["id"]]
    audit = server.root("GET", f"/projects/{project['id']}/audit_events?per_page=100").json()
    names = [e["event_name"] for e in audit]
    assert names.count("project.shared_with_group") == 2
    assert names.count("project.share_removed") == 1
    assert outsider


def test_a_personal_project_shared_with_a_group(server: LiveServer, factory: Factory) -> None:
    _owner, owner_token = factory.user_with_token()
    project = factory.project(token=owner_token)
    team = factory.group(token=owner_token)
    reporter, token = _member_of(factory, team["id"], 20)
    response = server.request(
        "POST",
        f"/projects/{project['id']}/share",
        token=owner_token,
        data=json.dumps({"group_id": team["id"], "group_access": 30}),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert server.request("GET", f"/projects/{project['id']}", token=token).status_code == 200
    everyone = server.root("GET", f"/projects/{project['id']}/members/all?per_page=100").json()
    assert {m["id"]: m["access_level"] for m in everyone}[reporter["id"]] == 20
    assert server.gl(owner_token).projects.get(project["id"]).groups.list(get_all=True) == []
    ids = {p.id for p in server.gl(token).projects.list(get_all=True, membership=True)}
    assert project["id"] in ids


@pytest.mark.parametrize("kind", ["groups", "projects"])
def test_unknown_source_is_404(server: LiveServer, kind: str) -> None:
    response = server.root("POST", f"/{kind}/999999999/share", json={"group_id": 1, "group_access": 30})
    assert response.status_code == 404
    assert server.root("DELETE", f"/{kind}/999999999/share/1").status_code == 404


def test_a_shared_subgroup_is_listed_without_the_groups_above_it(
    server: LiveServer, factory: Factory
) -> None:
    parent = factory.group()
    sub = factory.group(parent_id=parent["id"])
    team = factory.group()
    _, token = _member_of(factory, team["id"], 30)
    created = server.root(
        "POST", f"/groups/{sub['id']}/share", json={"group_id": team["id"], "group_access": 10}
    )
    assert created.status_code == 201, created.text
    listed = _ids(server.request("GET", "/groups?per_page=100", token=token))
    assert sub["id"] in listed
    assert parent["id"] not in listed
    assert server.request("GET", f"/groups/{parent['id']}", token=token).status_code == 404
    assert server.request("GET", f"/groups/{sub['id']}", token=token).status_code == 200
    # Guest through the share: reached at 10, not at 20.
    assert sub["id"] in _ids(server.request("GET", "/groups?min_access_level=10", token=token))
    assert sub["id"] not in _ids(server.request("GET", "/groups?min_access_level=20", token=token))


def test_concurrent_shares_of_one_pair_make_one_link(server: LiveServer, factory: Factory) -> None:
    shared = factory.group()
    project = factory.project(namespace_id=shared["id"])
    team = factory.group()
    for path in (f"/groups/{shared['id']}/share", f"/projects/{project['id']}/share"):
        body = {"group_id": team["id"], "group_access": 30}
        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = [pool.submit(server.root, "POST", path, json=body) for _ in range(6)]
            statuses = sorted(answer.result().status_code for answer in answers)
        assert statuses == [201, 409, 409, 409, 409, 409], (path, statuses)
    assert len(server.root("GET", f"/groups/{shared['id']}").json()["shared_with_groups"]) == 1
    assert len(server.root("GET", f"/projects/{project['id']}").json()["shared_with_groups"]) == 1
