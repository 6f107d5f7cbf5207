"""Route dispatch (keycrew.app.IndexedRouting): a request tries only the routes its path can match,
and picks exactly the route Starlette's full scan would pick, for every route of the app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Match, compile_path

from keycrew.api.endpoints import ApiEndpoint
from keycrew.app import IndexedRouting, create_app, full_paths
from keycrew.bootstrap import build
from keycrew.config import Settings

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("dispatch")
    return create_app(build(Settings(data_dir=Path(data), database_url=f"sqlite:///{data}/k.sqlite3")))


def _paths(routes: list[Any], prefix: str = "") -> Iterator[str]:
    for route in routes:
        path = getattr(route, "path", None)
        if isinstance(path, str):
            yield prefix + path
        else:  # an included router
            yield from _paths(route.original_router.routes, prefix + route.include_context.prefix)


def _leaf_match(leaf: Any, template: str, scope: dict[str, Any]) -> Match:
    if not hasattr(leaf, "methods"):
        return leaf.matches(dict(scope))[0]  # a mount
    if compile_path(template)[0].match(scope["path"]) is None:
        return Match.NONE
    return Match.FULL if scope["method"] in (leaf.methods or ()) else Match.PARTIAL


def _first(pairs: list[tuple[Any, Match]]) -> Any:
    """Starlette's choice: the first full match, else the first partial (405)."""
    partial = None
    for route, match in pairs:
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


def _leaves_pick(routes: list[Any], scope: dict[str, Any]) -> Any:
    """The route a full scan serves ``scope`` with, looking inside included routers."""
    pairs = [
        (leaf, _leaf_match(leaf, template, scope)) for route in routes for leaf, template in full_paths(route)
    ]
    return _first(pairs)


def _index_pick(index: IndexedRouting, scope: dict[str, Any]) -> Any:
    pairs = []
    for candidate in index.candidates(scope["path"]):
        if isinstance(candidate, ApiEndpoint):
            pairs.append((candidate.route, candidate.matches(dict(scope))[0]))
        elif hasattr(candidate, "original_router"):  # reached through its router
            leaf = _leaves_pick([candidate], scope)
            match = candidate.matches(dict(scope))[0]
            pairs.append((leaf, match))
        else:
            pairs.append((candidate, candidate.matches(dict(scope))[0]))
    return _first(pairs)


def _requests(app: Any) -> set[str]:
    paths = {"/", "/-", "/api", "/api/v4", "/api/v4/nothing", "/root/p", "/root/p/-/project_members"}
    for template in _paths(app.router.routes):
        path = re.sub(r"\{[^}]+:(web)?path\}", "a/b", template)
        path = re.sub(r"\{[^}]+\}", "x1", path)
        paths |= {path, path + "/", path.rsplit("/", 1)[0], path.replace("/x1", "/5"), path + "/more"}
    return paths


def test_the_app_dispatches_through_the_index(app: Any) -> None:
    assert isinstance(app.router.middleware_stack, IndexedRouting)


def test_every_request_gets_the_route_a_full_scan_gives(app: Any) -> None:
    index: IndexedRouting = app.router.middleware_stack
    checked = 0
    for path in sorted(_requests(app)):
        for method in METHODS:
            scope = {"type": "http", "path": path, "method": method, "root_path": "", "headers": []}
            assert _index_pick(index, scope) is _leaves_pick(app.router.routes, scope), (method, path)
            checked += 1
    assert checked > 1000


def test_a_path_tries_only_the_routes_that_can_match_it(app: Any) -> None:
    index: IndexedRouting = app.router.middleware_stack
    everything = len(app.router.routes)
    # Health endpoints are registered after every API and web router, yet try only a few routes.
    assert len(index.candidates("/-/liveness")) < everything / 3
    # An API path tries the routes under its own prefix (/users/...), not every compiled endpoint.
    assert len(index.candidates("/api/v4/users/1")) < len(index.endpoints) / 3
    assert len(index.candidates("/api/v4/projects/1/members/all")) < len(index.endpoints) / 2


def test_every_api_route_is_served_by_a_compiled_endpoint(app: Any) -> None:
    """FastAPI's own handling is the fallback for a route api/endpoints.py cannot compile; no API
    route needs it today."""
    index: IndexedRouting = app.router.middleware_stack
    compiled = {id(e.route) for e in index.endpoints}
    api_routes = [
        (leaf, template)
        for route in app.router.routes
        for leaf, template in full_paths(route)
        if template.startswith("/api/v4/") and "/packages/pypi" not in template
    ]
    assert len(api_routes) > 100
    assert [template for leaf, template in api_routes if id(leaf) not in compiled] == []
