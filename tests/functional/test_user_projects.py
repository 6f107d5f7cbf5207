"""GET /users/:id/projects (the projects of a user's personal namespace the caller may see), and
the contributed and starred listings, which keycrew answers empty (no stars, no contribution events)."""

from __future__ import annotations

import json

import gitlab
import pytest

from tests.support.live import Factory, LiveServer, uid


def _personal(server: LiveServer, token: str, **attrs: object) -> dict[str, object]:
    response = server.request("POST", "/projects", token=token, json={"name": uid("up")} | attrs)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_lists_the_personal_projects_the_caller_may_see(server: LiveServer, factory: Factory) -> None:
    owner, owner_token = factory.user_with_token()
    public = _personal(server, owner_token, visibility="public", name=f"{uid('alpha')}")
    private = _personal(server, owner_token, visibility="private")
    internal = _personal(server, owner_token, visibility="internal")
    # A group project the owner created is not in their personal namespace.
    group = factory.group(token=owner_token)
    factory.project(token=owner_token, namespace_id=group["id"])

    # The owner sees all three, newest first by default.
    mine = server.gl(owner_token).users.get(owner["id"], lazy=True).projects.list(get_all=True)
    assert [p.id for p in mine] == [internal["id"], private["id"], public["id"]]
    assert {p.namespace["id"] for p in mine} == {public["namespace"]["id"]}  # type: ignore[index]

    # Another user sees the public and internal ones, not the private one; anonymous only the public.
    _, other_token = factory.user_with_token()
    seen = server.gl(other_token).users.get(owner["id"], lazy=True).projects.list(get_all=True)
    assert {p.id for p in seen} == {public["id"], internal["id"]}
    anonymous = server.request("GET", f"/users/{owner['id']}/projects")
    assert anonymous.status_code == 200, anonymous.text
    assert [p["id"] for p in anonymous.json()] == [public["id"]]
    assert anonymous.headers["X-Total"] == "1"

    # Admins see every one; the username names the user as well as the id.
    by_name = server.root("GET", f"/users/{owner['username']}/projects")
    assert {p["id"] for p in by_name.json()} == {public["id"], private["id"], internal["id"]}


def test_filters_order_and_pagination(server: LiveServer, factory: Factory) -> None:
    owner, token = factory.user_with_token()
    tag = uid("f")
    made = [
        _personal(server, token, name=f"{tag} b", path=f"{tag}-b", visibility="public"),
        _personal(server, token, name=f"{tag} a", path=f"{tag}-a", visibility="private"),
        _personal(server, token, name=f"other {tag}", path=f"{tag}-c", visibility="public"),
    ]
    ids = [p["id"] for p in made]
    base = f"/users/{owner['id']}/projects"

    def listed(query: str) -> list[int]:
        response = server.request("GET", f"{base}?{query}", token=token)
        assert response.status_code == 200, response.text
        return [p["id"] for p in response.json()]

    assert listed("order_by=name&sort=asc") == [ids[1], ids[0], ids[2]]
    assert listed("order_by=id&sort=asc") == ids
    assert listed("visibility=private") == [ids[1]]
    assert listed(f"search={tag}-a") == [ids[1]]
    assert listed("owned=true&order_by=id&sort=asc") == ids
    assert listed("membership=true&min_access_level=50&order_by=id&sort=asc") == ids
    assert listed("archived=true") == []
    assert sorted(listed("archived=false")) == ids
    simple = server.request("GET", f"{base}?simple=true&order_by=id&sort=asc", token=token).json()
    assert [p["id"] for p in simple] == ids
    assert "permissions" not in simple[0]
    assert "owner" not in simple[0]
    page = server.request("GET", f"{base}?per_page=2&page=2&order_by=id&sort=asc", token=token)
    assert [p["id"] for p in page.json()] == [ids[2]]
    assert (page.headers["X-Total"], page.headers["X-Total-Pages"], page.headers["X-Page"]) == ("3", "2", "2")

    # Another user's "owned" and "membership" filters are about the caller: none of these.
    _, other = factory.user_with_token()
    assert server.request("GET", f"{base}?owned=true", token=other).json() == []


def test_bad_input_and_unknown_users(server: LiveServer, factory: Factory) -> None:
    owner, token = factory.user_with_token()
    base = f"/users/{owner['id']}/projects"
    for query, message in (
        ("order_by=nope", "order_by does not have a valid value"),
        ("sort=up", "sort does not have a valid value"),
        ("visibility=secret", "visibility does not have a valid value"),
        ("min_access_level=31", "min_access_level does not have a valid value"),
    ):
        response = server.request("GET", f"{base}?{query}", token=token)
        assert response.status_code == 400, (query, response.text)
        assert message in response.text
    for ref in ("987654321", "99999999999999999999999", uid("nobody")):
        for suffix in ("projects", "contributed_projects", "starred_projects"):
            response = server.request("GET", f"/users/{ref}/{suffix}", token=token)
            assert response.status_code == 404, (ref, suffix, response.text)
            assert response.json() == {"message": "404 User Not Found"}
    with pytest.raises(gitlab.GitlabListError) as err:
        server.gl(token).users.get(987654321, lazy=True).projects.list()
    assert err.value.response_code == 404


def test_contributed_and_starred_are_empty_with_pagination_headers(
    server: LiveServer, factory: Factory
) -> None:
    owner, token = factory.user_with_token()
    _personal(server, token, visibility="public")
    user = server.gl(token).users.get(owner["id"], lazy=True)
    assert user.contributed_projects.list() == []
    assert user.starred_projects.list() == []
    for suffix in ("contributed_projects", "starred_projects"):
        for caller in (token, None):
            response = server.request("GET", f"/users/{owner['username']}/{suffix}", token=caller)
            assert response.status_code == 200, response.text
            assert response.json() == []
            assert (response.headers["X-Total"], response.headers["X-Page"]) == ("0", "1")
    bad = server.request("GET", f"/users/{owner['id']}/starred_projects?order_by=nope", token=token)
    assert bad.status_code == 400


def test_cli_user_project_list(server: LiveServer, factory: Factory) -> None:
    owner, token = factory.user_with_token()
    project = _personal(server, token, visibility="private")
    result = server.gitlab_cli(
        "-o", "json", "user-project", "list", "--user-id", str(owner["id"]), token=token
    )
    assert result.returncode == 0, result.stderr
    assert [p["id"] for p in json.loads(result.stdout)] == [project["id"]]
    _, other = factory.user_with_token()
    result = server.gitlab_cli(
        "-o", "json", "user-project", "list", "--user-id", str(owner["id"]), token=other
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
