"""A group's service account stays in its top-level group's hierarchy, a project's in its project;
an instance service account may join anywhere. Refusals are 400 with the member's field error and
write nothing."""

from __future__ import annotations

import gitlab
import pytest

from tests.support.live import Factory, LiveServer

DEVELOPER = 30
OUTSIDE_GROUP = {
    "message": {"user": ["is a group service account and cannot be added outside its top-level group"]}
}
OUTSIDE_PROJECT = {
    "message": {"user": ["is a project service account and cannot be added outside its project"]}
}


def _add(server: LiveServer, kind: str, source_id: int, user_id: int) -> tuple[int, object]:
    response = server.root(
        "POST", f"/{kind}/{source_id}/members", json={"user_id": user_id, "access_level": DEVELOPER}
    )
    return response.status_code, response.json()


def _members(server: LiveServer, kind: str, source_id: int) -> list[int]:
    return [m["id"] for m in server.root("GET", f"/{kind}/{source_id}/members").json()]


def test_group_account_joins_its_hierarchy_only(server: LiveServer, factory: Factory) -> None:
    top = factory.group()
    sub = factory.group(parent_id=top["id"])
    inside_project = factory.project(namespace_id=sub["id"])
    other = factory.group()
    other_sub = factory.group(parent_id=other["id"])
    outside_project = factory.project(namespace_id=other["id"])
    personal_project = factory.project()  # root's personal namespace
    account = server.root("POST", f"/groups/{top['id']}/service_accounts", json={}).json()

    # Inside: the group itself, a subgroup, a project below.
    for kind, source in (("groups", top), ("groups", sub), ("projects", inside_project)):
        assert _add(server, kind, source["id"], account["id"])[0] == 201, (kind, source["id"])
    # Outside: another top-level group, its subgroup and project, a personal project.
    for kind, source in (
        ("groups", other),
        ("groups", other_sub),
        ("projects", outside_project),
        ("projects", personal_project),
    ):
        assert _add(server, kind, source["id"], account["id"]) == (400, OUTSIDE_GROUP), (kind, source["id"])
        assert account["id"] not in _members(server, kind, source["id"])


def test_bulk_add_reports_the_account_and_adds_the_others(server: LiveServer, factory: Factory) -> None:
    top = factory.group()
    other = factory.group()
    account = server.root("POST", f"/groups/{top['id']}/service_accounts", json={}).json()
    human = factory.user()
    response = server.root(
        "POST",
        f"/groups/{other['id']}/members",
        json={"user_id": f"{account['id']},{human['id']}", "access_level": DEVELOPER},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "error"
    assert account["username"] in body["message"]
    assert "cannot be added outside its top-level group" in body["message"]
    members = _members(server, "groups", other["id"])
    assert human["id"] in members
    assert account["id"] not in members


def test_project_account_joins_its_project_only(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    sibling = factory.project(namespace_id=group["id"])
    account = server.root("POST", f"/projects/{project['id']}/service_accounts", json={}).json()
    assert _add(server, "projects", project["id"], account["id"])[0] == 201
    for kind, source_id in (("projects", sibling["id"]), ("groups", group["id"])):
        assert _add(server, kind, source_id, account["id"]) == (400, OUTSIDE_PROJECT), kind
        assert account["id"] not in _members(server, kind, source_id)


def test_instance_account_joins_anywhere(server: LiveServer, factory: Factory) -> None:
    account = server.root("POST", "/service_accounts", json={}).json()
    for kind, source in (("groups", factory.group()), ("projects", factory.project())):
        assert _add(server, kind, source["id"], account["id"])[0] == 201, kind


def test_python_gitlab_sees_the_refusal(server: LiveServer, factory: Factory) -> None:
    top = factory.group()
    account = server.root("POST", f"/groups/{top['id']}/service_accounts", json={}).json()
    other = server.gl().groups.get(factory.group()["id"])
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        other.members.create({"user_id": account["id"], "access_level": DEVELOPER})
    assert refused.value.response_code == 400
    assert "cannot be added outside its top-level group" in str(refused.value.error_message)
