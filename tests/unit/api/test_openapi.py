"""The OpenAPI document is completed from the routes' code (keycrew.api.openapi): every parameter a
route reads through Params is documented, with its type, choices and whether it is required."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request, Response
from fastapi.routing import APIRoute

import keycrew.api
from keycrew.api import openapi
from keycrew.api.deps import Params, api_ctx, params_dep
from keycrew.app import create_app, full_paths
from keycrew.bootstrap import build
from keycrew.config import Settings
from keycrew.context import Ctx

API_DIR = Path(keycrew.api.__file__).parent


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("openapi")
    return create_app(build(Settings(data_dir=Path(data), database_url=f"sqlite:///{data}/k.sqlite3")))


@pytest.fixture(scope="module")
def leaves(app: Any) -> list[tuple[Any, str]]:
    return [leaf for route in app.router.routes for leaf in full_paths(route)]


@pytest.fixture(scope="module")
def document(app: Any) -> dict[str, Any]:
    return dict(app.openapi())


def _params_reads_in_code() -> set[tuple[str, int]]:
    """Every ``<p>.<getter>(...)`` call in keycrew/api where ``p`` is an argument typed Params."""
    sites = set()
    for path in API_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            names = {
                a.arg
                for a in function.args.args + function.args.kwonlyargs
                if isinstance(a.annotation, ast.Name) and a.annotation.id == "Params"
            }
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in names
                    and node.func.attr in openapi.KIND_SCHEMAS
                ):
                    sites.add((str(path), node.lineno))
    return sites


def test_the_scan_reaches_every_params_read_of_the_api(leaves: list[tuple[Any, str]]) -> None:
    """A read the scan never reaches (params handed on in a way it does not follow) would be
    missing from the document."""
    reached: set[tuple[str, int]] = set()
    for route, _path in leaves:
        if isinstance(route, APIRoute):
            reached |= openapi.scan_route(route).sites
    in_code = _params_reads_in_code()
    assert in_code, "no Params read found: the check lost its teeth"
    assert sorted(in_code - reached) == []


def test_every_read_key_is_resolved(leaves: list[tuple[Any, str]]) -> None:
    assert list(openapi.unresolved_reads(leaves)) == []


def test_every_operation_documents_what_its_code_reads(
    document: dict[str, Any], leaves: list[tuple[Any, str]]
) -> None:
    checked = 0
    for route, path in leaves:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        expected = {name for name, _schema, _required in openapi.parameters_of(openapi.scan_route(route))}
        template = path[: len(path) - len(route.path)] + route.path_format
        if not template.startswith("/api/v4/"):
            continue  # the web UI's and the registry token service's routes are left out
        for method in route.methods or ():
            operation = document["paths"][template][method.lower()]
            documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            assert expected <= documented, (method, path)
            if method in ("POST", "PUT", "PATCH") and expected:
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                assert set(body["properties"]) == expected, (method, path)
            assert "422" not in operation["responses"] or 422 in (route.responses or {}), (method, path)
            checked += 1
    assert checked > 100


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


# -- the scan's rules, on routes of this module -------------------------------------------------------

ORDERS = ("name", "created_at")
SETTINGS = {"enabled": bool, "limit": int}
TEXTS = ("title", "body")


def _filters(params: Params) -> dict[str, Any]:
    return {"order_by": params.choice("order_by", ORDERS), "page": params.integer("page")}


def _route(request: Request, ctx: Ctx = api_ctx(), params: Params = params_dep()) -> Response:
    params.req_text("name")
    params.strings("scopes", required=True) if params.has("scopes") else None
    _filters(params)
    for key in TEXTS:
        params.text(key)
    for name, kind in SETTINGS.items():
        params.boolean(name) if kind is bool else params.integer(name)
    for key in ("a", "b", "c"):
        if key in ("a", "b"):
            params.flag(key)
        elif key == "c":
            params.date(key)
    return Response(status_code=204)


def test_the_scan_follows_helpers_loops_and_branches() -> None:
    route = APIRoute("/x", _route, methods=["POST"])
    scan = openapi.scan_route(route)
    found = {name: (schema, required) for name, schema, required in openapi.parameters_of(scan)}
    assert found == {
        "name": ({"type": "string", "minLength": 1}, True),
        # required=True, but read only when given: not required
        "scopes": ({"type": "array", "items": {"type": "string"}}, False),
        "order_by": ({"type": "string", "enum": ["name", "created_at"]}, False),
        "page": ({"type": "integer"}, False),
        "title": ({"type": "string"}, False),
        "body": ({"type": "string"}, False),
        "enabled": ({"type": "boolean"}, False),
        "limit": ({"type": "integer"}, False),
        "a": ({"type": "boolean"}, False),
        "b": ({"type": "boolean"}, False),
        "c": ({"type": "string", "format": "date"}, False),
    }
    assert scan.statuses == {204}
    assert scan.unresolved == []


def _unresolvable(params: Params = params_dep()) -> None:
    for key in _keys():
        params.text(key)


def _keys() -> list[str]:
    return ["x"]


def test_a_read_the_scan_cannot_resolve_is_reported() -> None:
    scan = openapi.scan_route(APIRoute("/y", _unresolvable, methods=["GET"]))
    assert len(scan.unresolved) == 1
    assert "params.text(key)" in scan.unresolved[0]
