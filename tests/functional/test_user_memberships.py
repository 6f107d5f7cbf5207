"""GET /users/:id/memberships: a user's direct projects and groups, for admins only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import gitlab
import pytest

from tests.support.live import Factory, LiveServer, uid


def memberships(server: LiveServer, user_id: int | str, token: str | None = None, **params: Any) -> Any:
    return server.request(
        "GET", f"/users/{user_id}/memberships", token=token or server.root_token, params=params
    )


def _entries(found: Any) -> list[dict[str, Any]]:
    """What the server sent for each listed membership (python-gitlab adds its parent's user_id)."""
    return [m.asdict() for m in found]


@pytest.fixture
def member(factory: Factory) -> dict[str, Any]:
    """A user with direct memberships: a project (Developer) then a subgroup (Reporter), and
    inherited access below the subgroup that must not be listed."""
    user = factory.user()
    parent = factory.group(name=uid("Parent"))
    sub = factory.group(parent_id=parent["id"], name="Sub Name", path=uid("sub"))
    project = factory.project(name=uid("Project"), namespace_id=parent["id"])
    factory.member("projects", project["id"], user["id"], 30)
    factory.member("groups", sub["id"], user["id"], 20)
    # Inherited only: a project and a subgroup under the subgroup the user is a member of.
    below = factory.group(parent_id=sub["id"], path=uid("below"))
    factory.project(namespace_id=sub["id"])
    return {"user": user, "parent": parent, "sub": sub, "project": project, "below": below}


def test_python_gitlab_lists_direct_memberships(gl: gitlab.Gitlab, member: dict[str, Any]) -> None:
    user = gl.users.get(member["user"]["id"], lazy=True)
    found = _entries(user.memberships.list(get_all=True))
    assert found == [
        {
            "source_id": member["project"]["id"],
            "source_name": member["project"]["name"],
            "source_type": "Project",
            "access_level": 30,
        },
        # The group's own name, not its full name ("Parent / Sub Name").
        {
            "source_id": member["sub"]["id"],
            "source_name": "Sub Name",
            "source_type": "Namespace",
            "access_level": 20,
        },
    ]
    assert isinstance(found[0]["access_level"], int)


def test_type_filter_both_ways(gl: gitlab.Gitlab, member: dict[str, Any]) -> None:
    user = gl.users.get(member["user"]["id"], lazy=True)
    projects = _entries(user.memberships.list(type="Project", get_all=True))
    groups = _entries(user.memberships.list(type="Namespace", get_all=True))
    assert [(m["source_type"], m["source_id"]) for m in projects] == [("Project", member["project"]["id"])]
    assert [(m["source_type"], m["source_id"]) for m in groups] == [("Namespace", member["sub"]["id"])]


@pytest.mark.parametrize("value", ["Group", "project", "namespace", "Projects", "User"])
def test_a_bad_type_is_a_400(server: LiveServer, member: dict[str, Any], value: str) -> None:
    response = memberships(server, member["user"]["id"], type=value)
    assert (response.status_code, response.json()) == (400, {"error": "type does not have a valid value"})


def test_python_gitlab_sees_the_400(gl: gitlab.Gitlab, member: dict[str, Any]) -> None:
    with pytest.raises(gitlab.GitlabListError) as err:
        gl.users.get(member["user"]["id"], lazy=True).memberships.list(type="Group")
    assert err.value.response_code == 400


def test_admins_only(server: LiveServer, factory: Factory, member: dict[str, Any]) -> None:
    user, token = factory.user_with_token()
    for target in (member["user"]["id"], user["id"]):  # someone else's, or one's own
        response = memberships(server, target, token=token)
        assert (response.status_code, response.json()) == (403, {"message": "403 Forbidden"})
    with pytest.raises(gitlab.GitlabListError) as err:
        server.gl(token).users.get(user["id"], lazy=True).memberships.list()
    assert err.value.response_code == 403
    # Even for a user that does not exist: nothing is told to a non-admin.
    assert memberships(server, 999999999, token=token).status_code == 403
    anonymous = server.request("GET", f"/users/{user['id']}/memberships")
    assert anonymous.status_code == 401


def test_an_unknown_user_is_a_404(server: LiveServer, gl: gitlab.Gitlab) -> None:
    for user_id in (999999999, 0, 99999999999999999999):
        response = memberships(server, user_id)
        assert (response.status_code, response.json()) == (404, {"message": "404 User Not Found"})
    with pytest.raises(gitlab.GitlabListError) as err:
        gl.users.get(999999999, lazy=True).memberships.list()
    assert err.value.response_code == 404


def test_the_route_only_matches_digits(server: LiveServer, member: dict[str, Any]) -> None:
    username = member["user"]["username"]
    for path in (username, "-1", "1a", "%201"):
        response = server.root("GET", f"/users/{path}/memberships")
        assert response.status_code == 404, path
        assert response.json() != {"message": "404 User Not Found"}, path


def test_user_without_memberships_lists_nothing(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    response = memberships(server, user["id"])
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["X-Total"] == "0"


def test_expired_memberships_are_not_listed(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    today = server.clock.now().date()
    ending, lasting = factory.project(), factory.project()
    for project, expires in ((ending, today), (lasting, today + dt.timedelta(days=1))):
        added = server.root(
            "POST",
            f"/projects/{project['id']}/members",
            json={"user_id": user["id"], "access_level": 30, "expires_at": expires.isoformat()},
        )
        assert added.status_code == 201, added.text
    # An expiry date is the first day without access: today's is over already.
    assert [m["source_id"] for m in memberships(server, user["id"]).json()] == [lasting["id"]]
    server.clock.travel_to(dt.datetime.combine(today + dt.timedelta(days=1), dt.time(1), dt.UTC))
    response = memberships(server, user["id"])
    assert response.json() == []
    assert response.headers["X-Total"] == "0"


def test_pagination_headers_with_one_per_page(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, member: dict[str, Any]
) -> None:
    user_id = member["user"]["id"]
    extra = factory.group(name=uid("Extra"))
    factory.member("groups", extra["id"], user_id, 10)
    expected = [member["project"]["id"], member["sub"]["id"], extra["id"]]

    pages = [memberships(server, user_id, page=page, per_page=1) for page in (1, 2, 3, 4)]
    assert [[m["source_id"] for m in p.json()] for p in pages] == [[i] for i in expected] + [[]]
    first, second, last = pages[0].headers, pages[1].headers, pages[2].headers
    assert (first["X-Total"], first["X-Total-Pages"], first["X-Per-Page"]) == ("3", "3", "1")
    assert (first["X-Page"], first["X-Next-Page"], first["X-Prev-Page"]) == ("1", "2", "")
    assert (second["X-Next-Page"], second["X-Prev-Page"]) == ("3", "1")
    assert (last["X-Page"], last["X-Next-Page"]) == ("3", "")
    assert 'rel="next"' in first["Link"]
    assert 'rel="last"' in first["Link"]
    assert f"/api/v4/users/{user_id}/memberships?page=2&per_page=1" in first["Link"]
    assert 'rel="next"' not in last["Link"]

    # The filter is kept in the links and counts only its own rows.
    groups = memberships(server, user_id, type="Namespace", per_page=1)
    assert groups.headers["X-Total"] == "2"
    assert "type=Namespace&page=2&per_page=1" in groups.headers["Link"]

    listed = gl.users.get(user_id, lazy=True).memberships.list(iterator=True, per_page=1)
    assert (listed.total, listed.total_pages, listed.per_page) == (3, 3, 1)
    assert [m.source_id for m in listed] == expected


def test_head_answers_like_get(server: LiveServer, member: dict[str, Any]) -> None:
    response = server.root("HEAD", f"/users/{member['user']['id']}/memberships", params={"per_page": 1})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["X-Total"] == "2"
    assert server.root("HEAD", "/users/999999999/memberships").status_code == 404


def test_a_removed_membership_and_a_deleted_project_are_gone(
    server: LiveServer, member: dict[str, Any]
) -> None:
    user_id = member["user"]["id"]
    assert server.root("DELETE", f"/groups/{member['sub']['id']}/members/{user_id}").status_code == 204
    assert server.root("DELETE", f"/projects/{member['project']['id']}").status_code in (202, 204)
    response = memberships(server, user_id)
    assert response.json() == []
