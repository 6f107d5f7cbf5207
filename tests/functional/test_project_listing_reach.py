"""Which projects a listing shows a member: memberships on projects, on groups and everything
under them (any depth), personal projects, at each level asked for, never a group that only
shares a path prefix, never an expired membership. The listings are built once per shape and
bound per call, so the same statement must answer every user alike."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.live import Factory, LiveServer, uid

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50


@pytest.fixture
def world(server: LiveServer, factory: Factory) -> dict[str, Any]:
    tag = uid("reach")
    user, token = factory.user_with_token()
    other, other_token = factory.user_with_token()
    a = factory.group(path=f"{tag}-a", name=f"{tag}-a")
    a_b = factory.group(path="b", name="b", parent_id=a["id"])
    a_b_c = factory.group(path="c", name="c", parent_id=a_b["id"])
    prefix = factory.group(path=f"{tag}-ab", name=f"{tag}-ab")  # "…-a" is a prefix of its path
    owned = factory.group(path=f"{tag}-o", name=f"{tag}-o")
    owned_sub = factory.group(path="sub", name="sub", parent_id=owned["id"])
    expired = factory.group(path=f"{tag}-x", name=f"{tag}-x")
    elsewhere = factory.group(path=f"{tag}-e", name=f"{tag}-e")

    def project(namespace: dict[str, Any], name: str) -> int:
        return int(factory.project(namespace_id=namespace["id"], name=f"{tag} {name}")["id"])

    ids = {
        "in_a": project(a, "in-a"),
        "in_a_b_c": project(a_b_c, "deep"),
        "in_prefix": project(prefix, "prefix"),
        "in_owned_sub": project(owned_sub, "owned-sub"),
        "in_expired": project(expired, "expired"),
        "reporter_on_project": project(elsewhere, "reporter"),
        "nothing": project(elsewhere, "nothing"),
        "personal": int(factory.project(token=token, name=f"{tag} personal")["id"]),
    }
    factory.member("groups", a["id"], user["id"], DEVELOPER)
    factory.member("groups", owned["id"], user["id"], OWNER)
    factory.member("projects", ids["reporter_on_project"], user["id"], REPORTER)
    # An expiry date is the first day without access: one ending today gives nothing already.
    today = server.clock.now().date().isoformat()
    response = server.root(
        "POST",
        f"/groups/{expired['id']}/members",
        json={"user_id": user["id"], "access_level": OWNER, "expires_at": today},
    )
    assert response.status_code == 201, response.text
    factory.member("groups", prefix["id"], other["id"], MAINTAINER)
    return {"tag": tag, "token": token, "other_token": other_token, "ids": ids, "a": a}


def listed(
    server: LiveServer, world: dict[str, Any], token: str, path: str = "/projects", **query: Any
) -> set[str]:
    response = server.request(
        "GET", path, token=token, params={"search": world["tag"], "per_page": 100, **query}
    )
    assert response.status_code == 200, response.text
    names = {v: k for k, v in world["ids"].items()}
    return {names[p["id"]] for p in response.json()}


def test_a_members_listing_follows_groups_down_at_every_level(
    server: LiveServer, world: dict[str, Any]
) -> None:
    token = world["token"]
    reached = {"in_a", "in_a_b_c", "in_owned_sub", "reporter_on_project", "personal"}
    assert listed(server, world, token) == reached
    assert listed(server, world, token, membership="true") == reached
    assert listed(server, world, token, min_access_level=REPORTER) == reached
    assert listed(server, world, token, min_access_level=DEVELOPER) == reached - {"reporter_on_project"}
    assert listed(server, world, token, min_access_level=MAINTAINER) == {"in_owned_sub", "personal"}
    assert listed(server, world, token, owned="true") == {"in_owned_sub", "personal"}


def test_the_same_statements_answer_another_user_with_their_own_memberships(
    server: LiveServer, world: dict[str, Any]
) -> None:
    assert listed(server, world, world["token"]) != set()  # the shape is built and kept
    assert listed(server, world, world["other_token"]) == {"in_prefix"}
    assert listed(server, world, world["other_token"], membership="true") == {"in_prefix"}
    assert listed(server, world, world["other_token"], owned="true") == set()


def test_a_groups_listing_with_subgroups_shows_the_member_its_subtree(
    server: LiveServer, world: dict[str, Any]
) -> None:
    path = f"/groups/{world['a']['id']}/projects"
    assert listed(server, world, world["token"], path) == {"in_a"}
    assert listed(server, world, world["token"], path, include_subgroups="true") == {"in_a", "in_a_b_c"}
    hidden = server.request("GET", path, token=world["other_token"], params={"include_subgroups": "true"})
    assert hidden.status_code == 404  # a private group the other user is not in
    everything = listed(server, world, server.root_token, path, include_subgroups="true")
    assert everything == {"in_a", "in_a_b_c"}  # never the group whose path only starts alike


def test_a_single_project_shows_the_levels_that_reach_it(server: LiveServer, world: dict[str, Any]) -> None:
    """GET /projects/:id reads the project and the caller's levels in one statement: the levels
    must be those of the nearest and farthest groups alike, by id and by path."""
    ids, token = world["ids"], world["token"]

    def permissions(ref: Any) -> dict[str, Any]:
        response = server.request("GET", f"/projects/{ref}", token=token)
        assert response.status_code == 200, response.text
        return dict(response.json()["permissions"])

    deep = permissions(ids["in_a_b_c"])
    assert deep["project_access"] is None
    assert deep["group_access"]["access_level"] == DEVELOPER
    path = server.root("GET", f"/projects/{ids['in_a_b_c']}").json()["path_with_namespace"]
    assert permissions(path.replace("/", "%2F")) == deep
    assert permissions(ids["in_owned_sub"])["group_access"]["access_level"] == OWNER
    on_project = permissions(ids["reporter_on_project"])
    assert on_project["project_access"]["access_level"] == REPORTER
    assert on_project["group_access"] is None
    for hidden in ("nothing", "in_prefix", "in_expired"):
        response = server.request("GET", f"/projects/{ids[hidden]}", token=token)
        assert response.status_code == 404, hidden
