"""Keyset pagination of GET /projects and GET /users/:id/projects (GitLab's ``pagination=keyset``,
by id only): a Link rel="next" with the id_after/id_before cursor, no page counts; the id_after and
id_before filters; 405 for an order keyset pagination cannot follow."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import gitlab
import pytest

from tests.support.live import Factory, LiveServer, uid

UNAVAILABLE = {"message": "Keyset pagination is not yet available for this type of request"}


@pytest.fixture
def owned(server: LiveServer, factory: Factory) -> tuple[dict[str, Any], str, list[int]]:
    """A user with seven personal projects (more than a page of three), ids ascending."""
    user, token = factory.user_with_token()
    made = []
    for _ in range(7):
        response = server.request("POST", "/projects", token=token, json={"name": uid("ks")})
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    return user, token, sorted(made)


def _next(response: Any) -> dict[str, list[str]] | None:
    link = response.headers.get("Link")
    if not link:
        return None
    assert link.endswith('>; rel="next"'), link
    return parse_qs(urlparse(link[1 : link.index(">")]).query)


def test_walks_the_user_projects_by_id_both_ways(
    server: LiveServer, owned: tuple[dict[str, Any], str, list[int]]
) -> None:
    user, token, ids = owned
    path = f"/users/{user['id']}/projects"
    params = {"pagination": "keyset", "order_by": "id", "sort": "asc", "per_page": 3, "simple": "true"}
    first = server.request("GET", path, token=token, params=params)
    assert first.status_code == 200, first.text
    assert [p["id"] for p in first.json()] == ids[:3]
    for header in ("X-Total", "X-Total-Pages", "X-Page", "X-Next-Page"):
        assert header not in first.headers
    cursor = _next(first)
    assert cursor is not None
    assert cursor["id_after"] == [str(ids[2])]
    assert cursor["pagination"] == ["keyset"]
    assert (cursor["order_by"], cursor["sort"], cursor["per_page"]) == (["id"], ["asc"], ["3"])
    assert "private_token" not in cursor
    assert "page" not in cursor
    second = server.request("GET", path, token=token, params={**params, "id_after": ids[2]})
    assert [p["id"] for p in second.json()] == ids[3:6]
    last = server.request("GET", path, token=token, params={**params, "id_after": ids[5]})
    assert [p["id"] for p in last.json()] == ids[6:]
    assert _next(last) is None  # nothing follows: no rel="next"

    # Descending (the default sort) continues with id_before.
    down = server.request("GET", path, token=token, params={**params, "sort": "desc"})
    assert [p["id"] for p in down.json()] == ids[::-1][:3]
    assert _next(down) == {**_next(down), "id_before": [str(ids[4])]}  # type: ignore[dict-item]
    assert "id_after" not in (_next(down) or {})


def test_python_gitlab_walks_every_page(
    server: LiveServer, owned: tuple[dict[str, Any], str, list[int]]
) -> None:
    user, token, ids = owned
    gl = server.gl(token)
    mine = gl.users.get(user["id"], lazy=True).projects.list(
        pagination="keyset", order_by="id", sort="asc", per_page=2, iterator=True
    )
    assert [p.id for p in mine] == ids
    # GET /projects, all the projects the user may see (their own and public ones), walked to the end.
    walked = [
        p.id
        for p in gl.projects.list(
            pagination="keyset", order_by="id", sort="asc", per_page=3, iterator=True, owned=True
        )
    ]
    assert walked == ids
    everything = [p.id for p in gl.projects.list(pagination="keyset", order_by="id", iterator=True)]
    assert everything == sorted(everything, reverse=True)
    assert set(ids) <= set(everything)
    assert len(everything) == len(set(everything))


def test_admin_walks_all_projects(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    for _ in range(6):  # more than a page of 4, whatever the server held before
        factory.project()
    offset = [p.id for p in gl.projects.list(order_by="id", sort="asc", get_all=True, per_page=100)]
    keyset = [
        p.id
        for p in gl.projects.list(pagination="keyset", order_by="id", sort="asc", per_page=4, iterator=True)
    ]
    assert keyset == offset
    assert len(keyset) > 4


def test_id_filters_work_without_keyset(
    server: LiveServer, owned: tuple[dict[str, Any], str, list[int]]
) -> None:
    user, token, ids = owned
    path = f"/users/{user['id']}/projects"
    response = server.request(
        "GET",
        path,
        token=token,
        params={"id_after": ids[1], "id_before": ids[5], "order_by": "id", "sort": "asc"},
    )
    assert [p["id"] for p in response.json()] == ids[2:5]
    assert response.headers["X-Total"] == "3"
    bad = server.request("GET", path, token=token, params={"id_after": "x"})
    assert (bad.status_code, bad.json()) == (400, {"error": "id_after is invalid"})


@pytest.mark.parametrize("order_by", [None, "created_at", "name", "last_activity_at"])
def test_other_orders_are_a_405(
    server: LiveServer, owned: tuple[dict[str, Any], str, list[int]], order_by: str | None
) -> None:
    user, token, _ids = owned
    params = {"pagination": "keyset"} | ({"order_by": order_by} if order_by else {})
    for path in ("/projects", f"/users/{user['id']}/projects"):
        response = server.request("GET", path, token=token, params=params)
        assert (response.status_code, response.json()) == (405, UNAVAILABLE), path
    # Offset pagination (the default, or named) is unchanged.
    offset = server.request(
        "GET", "/projects", token=token, params={"pagination": "offset", "order_by": "name"}
    )
    assert offset.status_code == 200
    assert "X-Page" in offset.headers
