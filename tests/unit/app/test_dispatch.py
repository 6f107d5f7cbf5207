"""Route dispatch (keycrew.app.IndexedRouting): a request tries only the routes its path can match,
and picks exactly the route Starlette's full scan would pick, for every route of the app."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Match

from keycrew.app import IndexedRouting, create_app
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


def _pick(routes: list[Any], scope: dict[str, Any]) -> Any:
    """Starlette's choice among ``routes``: the first full match, else the first partial (405)."""
    partial = None
    for route in routes:
        match, _ = route.matches(dict(scope))
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


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
            assert _pick(index.candidates(path), scope) is _pick(app.router.routes, scope), (method, path)
            checked += 1
    assert checked > 1000


def test_a_path_tries_only_the_routes_that_can_match_it(app: Any) -> None:
    index: IndexedRouting = app.router.middleware_stack
    everything = len(app.router.routes)
    # Health endpoints are registered after every API and web router, yet try only a few routes.
    assert len(index.candidates("/-/liveness")) < everything / 3
    assert len(index.candidates("/api/v4/users/1")) < everything
