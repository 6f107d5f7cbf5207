"""GET /search, users scope: python-gitlab's gl.search(), GitLab's scope rules and visibility."""

from __future__ import annotations

import gitlab
import gitlab.const
import pytest

from tests.support.live import Factory, LiveServer, uid


def test_search_users_with_python_gitlab(server: LiveServer, factory: Factory) -> None:
    tag = uid("s")
    first = factory.user(username=f"{tag}_one", name="Searchable One")
    second = factory.user(username=f"{tag}_two", name="Searchable Two")
    _user, token = factory.user_with_token(["read_api"])
    found = server.gl(token).search(gitlab.const.SearchScope.USERS, tag)
    assert {u["id"] for u in found} == {first["id"], second["id"]}
    assert all("email" not in u for u in found)
    assert {"id", "username", "name", "state", "avatar_url", "web_url"} <= set(found[0])
    # Exact matches come first; a leading @ is ignored.
    exact = server.gl(token).search("users", f"@{tag}_two")
    assert [u["id"] for u in exact] == [second["id"]]
    # Even admins get the basic entity here.
    assert all("email" not in u for u in server.gl().search("users", tag))


def test_search_short_terms_match_partially_and_blank_finds_nobody(
    server: LiveServer, factory: Factory
) -> None:
    tag = uid("q")
    user = factory.user(username=f"{tag}zz")
    response = server.root("GET", "/search", params={"scope": "users", "search": f"{tag}z"})
    assert [u["id"] for u in response.json()] == [user["id"]]
    response = server.root("GET", "/search", params={"scope": "users", "search": ""})
    assert response.status_code == 200
    assert response.json() == []


def test_search_hides_blocked_users_from_non_admins(server: LiveServer, factory: Factory) -> None:
    tag = uid("b")
    blocked = factory.user(username=f"{tag}_blocked")
    assert server.root("POST", f"/users/{blocked['id']}/block").json() is True
    _user, token = factory.user_with_token(["api"])
    assert server.gl(token).search("users", tag) == []
    assert [u["id"] for u in server.gl().search("users", tag)] == [blocked["id"]]


def test_search_pagination(server: LiveServer, factory: Factory) -> None:
    tag = uid("n")
    made = {factory.user(username=f"{tag}{i}")["id"] for i in range(3)}
    response = server.root("GET", "/search", params={"scope": "users", "search": tag, "per_page": 2})
    assert response.headers["X-Total"] == "3"
    assert 'rel="next"' in response.headers["Link"]
    everything = server.gl().search("users", tag, per_page=1, get_all=True)
    assert {u["id"] for u in everything} == made


def test_search_scope_rules(server: LiveServer) -> None:
    def error(**params: str) -> tuple[int, object]:
        response = server.root("GET", "/search", params=params)
        return response.status_code, response.json()

    assert error(scope="users") == (400, {"error": "search is missing"})
    assert error(search="x") == (400, {"error": "scope is missing"})
    assert error() == (400, {"error": "search is missing, scope is missing"})
    assert error(scope="planets", search="x") == (400, {"error": "scope does not have a valid value"})
    assert error(scope="blobs", search="x") == (400, {"error": "Scope supported only with advanced search"})
    status, body = error(scope="projects", search="x")
    assert status == 400
    assert isinstance(body, dict)
    assert body["error"].startswith("Scope not supported")
    with pytest.raises(gitlab.GitlabSearchError) as refused:
        server.gl().search("issues", "x")
    assert refused.value.response_code == 400


def test_search_needs_authentication(server: LiveServer) -> None:
    response = server.request("GET", "/search", params={"scope": "users", "search": "root"})
    assert response.status_code == 401
    assert response.json() == {"message": "401 Unauthorized"}
