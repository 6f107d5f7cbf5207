"""The OpenAPI document (``app.openapi()``, served at /-/openapi.json): FastAPI's, completed from
the code itself so that it cannot drift from what the routes really read and answer.

Parameters. A route reads its parameters imperatively through ``Params`` (api/params.py):
``params.text("search")``, ``params.choice("sort", SORTS)``, ``params.req_text("name")``...
FastAPI cannot see those, so the document is completed by reading the code: when the schema is
built, the source of each route function is parsed (``ast``) and every ``<params>.<kind>("name",
...)`` call is collected, following the calls that pass the ``Params`` object on (module-level
helpers such as ``_filters(params)``, and ``fetch_listing(reads, params, ...)`` down to the
pagination's ``page_args``). The code is the one source of truth; nothing is declared twice.

- A key is a literal, or a loop variable over a module constant (``for key in UPDATABLE``,
  ``for name, setting in SETTINGS.items()``): the constant's actual value is used, and ``if``
  tests the scan can decide for each value (``key in _TEXT``, ``setting.kind is bool``) pick the
  branch, so each key gets the kind it is really read with.
- Kinds map to JSON schema (``KIND_SCHEMAS``); ``choice``'s choices (a literal or a constant,
  evaluated) become an ``enum``; ``req_*`` and ``required=True`` make a parameter required unless
  the read is conditional (inside a branch the scan cannot decide).
- GET, HEAD and DELETE: query parameters. POST, PUT and PATCH: the same names as a body object
  (JSON or form, as python-gitlab and the CLI send them) and as query parameters, since Params
  merges both (the body wins).
- A read whose key the scan cannot resolve is reported by ``unresolved_reads`` (a unit test keeps
  it empty): write such reads so that the scan sees them, or the document would be incomplete.

Responses. The success status is the route's ``status_code`` plus any literal ``status_code=``
the route (or an api/ helper it calls) answers with (``Response(status_code=204)``,
``JSONResponse(..., status_code=201)``); paginated routes (those reaching ``page_args``) answer an
array with the pagination headers. Every operation documents GitLab's error bodies: 400, 404,
429 and 503 always, 401 and 403 where a credential is read, 409 on writes; a route adds others
with ``responses=`` in its decorator. FastAPI's 422 is dropped: keycrew answers bad parameters
with 400. A method a path does not take answers 405 with ``Allow`` (``components/responses``).

Links. Each create (a POST answering 201) links to the operations under the path it created
(``POST /projects`` to ``/projects/{project_id}...``), for stateful fuzzers and client generators;
they are derived from the paths too (``add_links``).
"""

from __future__ import annotations

import ast
import builtins
import inspect
import operator
import re
import textwrap
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from fastapi.routing import APIRoute

from keycrew.api.endpoints import CtxSpec, PrincipalSpec
from keycrew.api.pagination import page_args
from keycrew.api.params import read_params

# JSON schema of each Params getter's value.
KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "req_text": {"type": "string"},
    "integer": {"type": "integer"},
    "req_integer": {"type": "integer"},
    "id": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "flag": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
    "strings": {"type": "array", "items": {"type": "string"}},
    "integers": {"type": "array", "items": {"type": "integer"}},
    "ids": {"type": "array", "items": {"type": "integer"}},
    "choice": {"type": "string"},
    # Presence or the raw value only: any JSON value (the route checks it itself).
    "raw": {},
    "has": {},
}
_REQUIRED_KINDS = {"req_text", "req_integer"}
_PRESENCE_KINDS = {"raw", "has"}
_WRITE_METHODS = {"post", "put", "patch"}
_PAGE_HEADERS = ("X-Total", "X-Total-Pages", "X-Per-Page", "X-Page", "X-Next-Page", "X-Prev-Page", "Link")
# Where the scan follows calls: keycrew's API adapter (routes, pagination, helpers).
_FOLLOWED_PACKAGE = "keycrew.api"
_UNKNOWN = object()


# -- the scan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """One parameter a route reads: its name, the Params getter, whether it must be given."""

    name: str
    kind: str
    required: bool = False
    choices: tuple[str, ...] | None = None


@dataclass
class Scan:
    """What a route's code reads and answers."""

    reads: list[Read] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)
    paginated: bool = False
    unresolved: list[str] = field(default_factory=list)
    # Where each read is: (file, line), to check that the scan reaches every read in the code.
    sites: set[tuple[str, int]] = field(default_factory=set)


_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class _Evaluator:
    """Evaluates the few expressions a scan needs (constants, names, attributes, literal
    containers, comparisons, ``.items()``...) in a function's globals and the loop bindings;
    anything else is ``_UNKNOWN``. Never calls code but a few pure builtins and dict views."""

    _SAFE_CALLS: dict[str, Callable[[Any], Any]] = {
        "tuple": tuple,
        "list": list,
        "sorted": sorted,
        "frozenset": frozenset,
        "set": set,
    }

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace

    def value(self, node: ast.expr, env: dict[str, Any]) -> Any:
        match node:
            case ast.Constant(value=value):
                return value
            case ast.Name(id=name):
                if name in env:
                    return env[name]
                if name in self.namespace:
                    return self.namespace[name]
                return getattr(builtins, name, _UNKNOWN)
            case ast.Attribute(value=base, attr=attr):
                found = self.value(base, env)
                return _UNKNOWN if found is _UNKNOWN else getattr(found, attr, _UNKNOWN)
            case ast.Tuple(elts=elts) | ast.List(elts=elts) | ast.Set(elts=elts):
                items = [self.value(e, env) for e in elts]
                return _UNKNOWN if any(i is _UNKNOWN for i in items) else tuple(items)
            case ast.Starred(value=inner):
                return self.value(inner, env)
            case ast.Compare(left=left, ops=[op], comparators=[right]) if type(op) in _COMPARE:
                a, b = self.value(left, env), self.value(right, env)
                if a is _UNKNOWN or b is _UNKNOWN:
                    return _UNKNOWN
                try:
                    return bool(_COMPARE[type(op)](a, b))
                except TypeError:
                    return _UNKNOWN
            case ast.UnaryOp(op=ast.Not(), operand=inner):
                found = self.value(inner, env)
                return _UNKNOWN if found is _UNKNOWN else not found
            case ast.BoolOp(op=op, values=values):
                results = [self.value(v, env) for v in values]
                if any(r is _UNKNOWN for r in results):
                    return _UNKNOWN
                return all(results) if isinstance(op, ast.And) else any(results)
            case ast.Call(func=ast.Attribute(value=base, attr="items" | "keys" | "values" as view), args=[]):
                found = self.value(base, env)
                return tuple(getattr(found, view)()) if isinstance(found, dict) else _UNKNOWN
            case ast.Call(func=ast.Name(id=name), args=[arg]) if name in self._SAFE_CALLS:
                found = self.value(arg, env)
                return _UNKNOWN if found is _UNKNOWN else self._SAFE_CALLS[name](found)
            case ast.ListComp(elt=elt, generators=[ast.comprehension(target=target, iter=it, ifs=[])]):
                items = self.value(it, env)
                if items is _UNKNOWN:
                    return _UNKNOWN
                out = []
                for item in _iterate(items):
                    bound = _bind(target, item)
                    if bound is None:
                        return _UNKNOWN
                    one = self.value(elt, {**env, **bound})
                    if one is _UNKNOWN:
                        return _UNKNOWN
                    out.append(one)
                return tuple(out)
        return _UNKNOWN


def _iterate(value: Any) -> list[Any]:
    try:
        return list(value)
    except TypeError:
        return []


def _bind(target: ast.expr, value: Any) -> dict[str, Any] | None:
    """The loop variables ``target`` binds to ``value`` (None: a target the scan cannot bind)."""
    if isinstance(target, ast.Name):
        return {target.id: value}
    if isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
        items = _iterate(value)
        if len(items) != len(target.elts):
            return None
        return {t.id: v for t, v in zip(target.elts, items, strict=True)}  # type: ignore[attr-defined]
    return None


@cache
def _function_tree(function: Callable[..., Any]) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    """The function's syntax tree, its line numbers those of its file."""
    try:
        lines, first = inspect.getsourcelines(function)
    except (OSError, TypeError):
        return None
    tree = ast.parse(textwrap.dedent("".join(lines)))
    ast.increment_lineno(tree, first - 1)
    node = tree.body[0]
    return node if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else None


class _Scanner:
    def __init__(self, module: str) -> None:
        self.module = module  # the route's: its helpers are followed too
        self.scan = Scan()
        self.seen: set[tuple[Any, str | None, bool]] = set()

    def function(self, function: Callable[..., Any], params_name: str | None, *, conditional: bool) -> None:
        function = inspect.unwrap(function)
        key = (function, params_name, conditional)
        if key in self.seen:
            return
        self.seen.add(key)
        if function is page_args:
            self.scan.paginated = True
        tree = _function_tree(function)
        if tree is None:
            return
        walker = _Walker(self, function, params_name)
        for statement in tree.body:
            walker.visit(statement, {}, conditional)


class _Walker:
    """Walks one function's body with the loop variables bound to concrete values."""

    def __init__(self, scanner: _Scanner, function: Callable[..., Any], params_name: str | None) -> None:
        self.scanner = scanner
        self.function = function
        self.params_name = params_name
        self.evaluator = _Evaluator(function.__globals__)

    def visit(self, node: ast.AST, env: dict[str, Any], conditional: bool) -> None:
        match node:
            case ast.For(target=target, iter=it, body=body, orelse=orelse):
                self.visit(it, env, conditional)
                self._loop(target, it, body, env, conditional)
                for other in orelse:
                    self.visit(other, env, conditional)
                return
            case (
                ast.ListComp(elt=elt, generators=gens)
                | ast.SetComp(elt=elt, generators=gens)
                | (ast.GeneratorExp(elt=elt, generators=gens))
            ):
                self._comprehension(gens, [elt], env, conditional)
                return
            case ast.DictComp(key=k, value=v, generators=gens):
                self._comprehension(gens, [k, v], env, conditional)
                return
            case ast.If(test=test, body=body, orelse=orelse) | ast.IfExp(test=test, body=body, orelse=orelse):
                self.visit(test, env, conditional)
                decided = self.evaluator.value(test, env)
                taken: list[Any] = (
                    [body] if decided is True else [orelse] if decided is False else [body, orelse]
                )
                undecided = conditional or decided is _UNKNOWN
                for branch in taken:
                    for statement in branch if isinstance(branch, list) else [branch]:
                        self.visit(statement, env, undecided)
                return
            case ast.BoolOp(values=[first, *rest]):
                self.visit(first, env, conditional)
                for operand in rest:
                    self.visit(operand, env, True)
                return
            case ast.Call():
                self._call(node, env, conditional)
        for child in ast.iter_child_nodes(node):
            self.visit(child, env, conditional)

    def _loop(
        self, target: ast.expr, it: ast.expr, body: list[ast.stmt], env: dict[str, Any], conditional: bool
    ) -> None:
        values = self.evaluator.value(it, env)
        bindings = [_bind(target, v) for v in _iterate(values)] if values is not _UNKNOWN else [None]
        for bound in bindings:
            inner = env if bound is None else {**env, **bound}
            for child in body:
                self.visit(child, inner, True)

    def _comprehension(
        self, gens: list[ast.comprehension], elts: list[ast.expr], env: dict[str, Any], conditional: bool
    ) -> None:
        if not gens:
            for elt in elts:
                self.visit(elt, env, conditional)
            return
        first, rest = gens[0], gens[1:]
        self.visit(first.iter, env, conditional)
        values = self.evaluator.value(first.iter, env)
        bindings = [_bind(first.target, v) for v in _iterate(values)] if values is not _UNKNOWN else [None]
        for bound in bindings:
            inner = env if bound is None else {**env, **bound}
            kept = True
            for test in first.ifs:
                self.visit(test, inner, True)
                if self.evaluator.value(test, inner) is False:
                    kept = False
            if kept:
                self._comprehension(rest, elts, inner, True)

    def _is_params(self, node: ast.expr) -> bool:
        return self.params_name is not None and isinstance(node, ast.Name) and node.id == self.params_name

    def _call(self, node: ast.Call, env: dict[str, Any], conditional: bool) -> None:
        scan = self.scanner.scan
        for keyword in node.keywords:
            value = keyword.value
            literal = value.value if isinstance(value, ast.Constant) else None
            if keyword.arg == "status_code" and isinstance(literal, int):
                scan.statuses.add(literal)
        func = node.func
        if isinstance(func, ast.Attribute) and self._is_params(func.value):
            self._read(func.attr, node, env, conditional)
            return
        passed = [i for i, arg in enumerate(node.args) if self._is_params(arg)]
        passed_kw = [k.arg for k in node.keywords if k.arg and self._is_params(k.value)]
        callee = self.evaluator.value(func, env)
        if not inspect.isfunction(callee) or not (
            callee.__module__.startswith(_FOLLOWED_PACKAGE) or callee.__module__ == self.scanner.module
        ):
            return
        names = list(inspect.signature(callee).parameters)
        targets: list[str | None] = [names[i] for i in passed if i < len(names)]
        targets += passed_kw
        for target in targets or [None]:
            self.scanner.function(callee, target, conditional=conditional)

    def _read(self, kind: str, node: ast.Call, env: dict[str, Any], conditional: bool) -> None:
        if kind not in KIND_SCHEMAS:
            return  # keys(): no single parameter
        scan = self.scanner.scan
        scan.sites.add((inspect.getsourcefile(self.function) or "", node.lineno))
        name = self.evaluator.value(node.args[0], env) if node.args else _UNKNOWN
        if not isinstance(name, str):
            where = f"{self.function.__module__}.{self.function.__qualname__}:{node.lineno}"
            scan.unresolved.append(f"{where}: {ast.unparse(node)}")
            return
        required = kind in _REQUIRED_KINDS or any(
            k.arg == "required" and isinstance(k.value, ast.Constant) and k.value.value is True
            for k in node.keywords
        )
        choices = None
        if kind == "choice" and len(node.args) > 1:
            found = self.evaluator.value(node.args[1], env)
            if found is not _UNKNOWN and all(isinstance(c, str) for c in _iterate(found)):
                choices = tuple(_iterate(found))
        scan.reads.append(Read(name, kind, required and not conditional, choices))


def scan_route(route: APIRoute) -> Scan:
    """What ``route``'s code reads (through its Params argument) and which statuses it answers."""
    scanner = _Scanner(route.endpoint.__module__)
    scanner.function(route.endpoint, params_argument(route), conditional=False)
    return scanner.scan


def params_argument(route: APIRoute) -> str | None:
    """The name of the route function's ``Params`` argument (``params: Params = params_dep()``)."""
    for sub in route.dependant.dependencies:
        if sub.call is read_params:
            return sub.name
    return None


def _schema_of(reads: list[Read]) -> dict[str, Any]:
    typed = [r for r in reads if r.kind not in _PRESENCE_KINDS] or reads
    schemas: list[dict[str, Any]] = []
    for read in typed:
        schema = dict(KIND_SCHEMAS[read.kind])
        if read.choices is not None:
            schema["enum"] = list(read.choices)
        if read.required and schema.get("type") == "string" and "enum" not in schema:
            schema["minLength"] = 1
        if schema not in schemas:
            schemas.append(schema)
    if len(schemas) == 1:
        return schemas[0]
    if {} in schemas:
        return {}
    return {"anyOf": schemas}


def parameters_of(scan: Scan) -> list[tuple[str, dict[str, Any], bool]]:
    """Each parameter the route reads: (name, JSON schema, required), in the order first read."""
    by_name: dict[str, list[Read]] = {}
    for read in scan.reads:
        by_name.setdefault(read.name, []).append(read)
    return [(name, _schema_of(reads), any(r.required for r in reads)) for name, reads in by_name.items()]


# -- the document -----------------------------------------------------------------------------------

ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "Message": {
        "type": "object",
        "description": "GitLab's error: a message that starts with the status line (api/errors.py), "
        "or a map of field errors.",
        "required": ["message"],
        "properties": {"message": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
    },
    "Error": {
        "type": "object",
        "description": 'GitLab\'s parameter error: {"error": "name is missing"}.',
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "OAuthError": {
        "type": "object",
        "description": "An OAuth-style refusal: invalid_token (401) or insufficient_scope (403).",
        "required": ["error", "error_description"],
        "properties": {
            "error": {"type": "string", "enum": ["invalid_token", "insufficient_scope"]},
            "error_description": {"type": "string"},
            "scope": {"type": "string"},
        },
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str, *bodies: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    schema = _ref(bodies[0]) if len(bodies) == 1 else {"anyOf": [_ref(b) for b in bodies]}
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
    if headers:
        response["headers"] = headers
    return response


_RATE_LIMIT_HEADERS = (
    "RateLimit-Name",
    "RateLimit-Limit",
    "RateLimit-Observed",
    "RateLimit-Remaining",
    "RateLimit-Reset",
)
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
ERRORS: dict[int, dict[str, Any]] = {
    400: _error(
        "Bad request: a parameter is missing or invalid, or the body is not valid JSON.", "Error", "Message"
    ),
    401: _error(
        "No valid credential.",
        "Message",
        "OAuthError",
        headers={"WWW-Authenticate": {"description": "Bearer challenge.", "schema": {"type": "string"}}},
    ),
    403: _error("Forbidden: not allowed, or the token lacks a scope.", "Message", "OAuthError"),
    404: _error("Not found (or not visible to the caller).", "Message", "Error"),
    405: _error(
        "Method not allowed on this path.",
        "Message",
        headers={
            "Allow": {
                "description": "The methods of this path.",
                "required": True,
                "schema": {"type": "string"},
            }
        },
    ),
    409: _error("Conflict: the name or path is taken, or the change lost a race.", "Message"),
    422: _error("Unprocessable.", "Message"),
    # GitLab's throttle answers plain text, "Retry later".
    429: {
        "description": "Too many requests: retry later.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
        "headers": _RETRY_AFTER
        | {
            name: {"description": "The throttle's figures.", "schema": {"type": "string"}}
            for name in _RATE_LIMIT_HEADERS
        },
    },
    503: _error("Unavailable (the database is unreachable): retry later.", "Message", headers=_RETRY_AFTER),
}

SECURITY_SCHEMES = {
    "PrivateToken": {"type": "apiKey", "in": "header", "name": "PRIVATE-TOKEN"},
    "Bearer": {"type": "http", "scheme": "bearer"},
    "JobToken": {"type": "apiKey", "in": "header", "name": "JOB-TOKEN"},
    "PrivateTokenQuery": {"type": "apiKey", "in": "query", "name": "private_token"},
    "AccessTokenQuery": {"type": "apiKey", "in": "query", "name": "access_token"},
    "Basic": {"type": "http", "scheme": "basic"},
}
_TOKEN_SECURITY: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES if name != "Basic"]

# Response classes whose content is not JSON, by the media type they answer.
_MEDIA_TYPES: dict[type, str] = {
    HTMLResponse: "text/html",
    PlainTextResponse: "text/plain",
    FileResponse: "application/octet-stream",
}


DESCRIPTION = """GitLab's REST API v4, as keycrew serves it.

A token goes in the `PRIVATE-TOKEN` header (or `Authorization: Bearer`, `JOB-TOKEN`, or the
`private_token`/`access_token` query parameter). An administrator's token with the `sudo` scope
may act as another user on any authenticated operation with the `Sudo` header (or `sudo`
parameter): a username or a user id. Write operations read their parameters from the query string
and from a JSON or form body alike (the body wins). Lists are paginated with `page` and `per_page`
(at most 100) and answer `X-Total`, `X-Total-Pages`, `X-Next-Page` and `Link`. A method a path does
not take answers 405 with `Allow`."""


def _spec_of(route: APIRoute) -> CtxSpec | PrincipalSpec | None:
    for sub in route.dependant.dependencies:
        spec = getattr(sub.call, "keycrew_spec", None)
        if isinstance(spec, CtxSpec | PrincipalSpec):
            return spec
    return None


def _authenticates(route: APIRoute) -> bool:
    """Whether the route reads a credential: through its Ctx or principal, or on its own (the
    package registry's routes, in a route class of their own)."""
    return _spec_of(route) is not None or type(route) is not APIRoute


def _media_type(route: APIRoute) -> str | None:
    returned = inspect.signature(route.endpoint).return_annotation
    if isinstance(returned, str):
        returned = route.endpoint.__globals__.get(returned, returned)
    for kind, media in _MEDIA_TYPES.items():
        if isinstance(returned, type) and issubclass(returned, kind):
            return media
    return None


def _query_parameter(name: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": schema}
    if schema.get("type") == "array":
        # A comma-separated value (scopes=api,read_api); key[]=a&key[]=b is read too.
        parameter["style"] = "form"
        parameter["explode"] = False
    return parameter


def _operation_id(method: str, path: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"\W", "_", f"{method}{path}")).strip("_")


def _complete(operation: dict[str, Any], route: APIRoute, method: str, path: str) -> None:
    scan = scan_route(route)
    operation["operationId"] = _operation_id(method, path)
    parameters = [p for p in operation.get("parameters", []) if p.get("in") != "query"]
    found = parameters_of(scan)
    if method in _WRITE_METHODS and found:
        properties = {name: schema for name, schema, _ in found}
        required = [name for name, _, req in found if req]
        body: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            body["required"] = required
        operation["requestBody"] = {
            "required": bool(required),
            "content": {
                "application/json": {"schema": body},
                "application/x-www-form-urlencoded": {"schema": body},
            },
        }
        parameters += [_query_parameter(name, schema, False) for name, schema, _ in found]
    else:
        parameters += [_query_parameter(name, schema, req) for name, schema, req in found]
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    operation["responses"] = _responses(operation.get("responses", {}), route, method, scan)
    if _authenticates(route):
        spec = _spec_of(route)
        anonymous = isinstance(spec, CtxSpec) and not spec.auth
        security = [{"Basic": []}] if type(route) is not APIRoute else list(_TOKEN_SECURITY)
        operation["security"] = [*security, {}] if anonymous else security


def _responses(declared: dict[str, Any], route: APIRoute, method: str, scan: Scan) -> dict[str, Any]:
    responses = {code: r for code, r in declared.items() if code != "422" or 422 in (route.responses or {})}
    success = {route.status_code or 200} | {s for s in scan.statuses if 200 <= s < 300}
    template = next((r for code, r in responses.items() if code.startswith("2")), None)
    for code in sorted(success):
        response = dict(responses.get(str(code)) or template or {"description": "Success"})
        response["description"] = response.get("description") or "Success"
        media = _media_type(route)
        if code in (204, 205) or method == "head":
            response.pop("content", None)
        elif media is not None:
            response["content"] = {media: {"schema": {"type": "string"}}}
        elif scan.paginated:
            response["content"] = {"application/json": {"schema": {"type": "array", "items": {}}}}
        if scan.paginated and code == 200:
            response["headers"] = {
                name: {"description": "Pagination.", "schema": {"type": "string"}} for name in _PAGE_HEADERS
            }
        responses[str(code)] = response
    errors = {400, 404, 429, 503} | {s for s in scan.statuses if s >= 400}
    errors |= {int(code) for code in (route.responses or {}) if str(code).isdigit() and int(code) >= 400}
    if _authenticates(route):
        errors |= {401, 403}
    if method in _WRITE_METHODS or method == "delete":
        errors.add(409)
    for code in sorted(errors):
        documented = dict(ERRORS.get(code, _error("Error.", "Message")))
        if code in (route.responses or {}):  # the route's own words for it
            documented["description"] = route.responses[code].get("description") or documented["description"]
        if method == "head":
            documented = {k: v for k, v in documented.items() if k != "content"}
        responses[str(code)] = documented
    return dict(sorted(responses.items()))


def _routes(app: FastAPI, leaves: Iterable[tuple[Any, str]]) -> dict[tuple[str, str], APIRoute]:
    found: dict[tuple[str, str], APIRoute] = {}
    for route, path in leaves:
        if isinstance(route, APIRoute) and route.include_in_schema:
            path = path[: len(path) - len(route.path)] + route.path_format  # {name:path} -> {name}
            for method in route.methods or ():
                found.setdefault((path, method.lower()), route)
    return found


_METHOD_ORDER = ["get", "head", "post", "put", "patch", "delete", "options", "trace"]


def build(app: FastAPI, leaves: Iterable[tuple[Any, str]]) -> dict[str, Any]:
    """The completed document of ``app``, whose routes with their full paths are ``leaves``."""
    with warnings.catch_warnings():
        # FastAPI names a route's HEAD and GET alike; each operation is renamed below.
        warnings.filterwarnings("ignore", message="Duplicate Operation ID", category=UserWarning)
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            servers=app.servers,
        )
    document["info"]["description"] = app.description or DESCRIPTION
    # The same document in every process: a route's methods are a set, so each path's
    # operations are put in one order (clients and test runs split across processes compare it).
    document["paths"] = {
        path: {method: operations[method] for method in sorted(operations, key=_METHOD_ORDER.index)}
        for path, operations in document.get("paths", {}).items()
    }
    routes = _routes(app, leaves)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            route = routes.get((path, method))
            if route is not None:
                _complete(operation, route, method, path)
    add_links(document)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas.update(ERROR_SCHEMAS)
    # A method a path does not take: 405 with Allow (no operation of its own to document it on).
    components["responses"] = {"MethodNotAllowed": ERRORS[405]}
    components["securitySchemes"] = SECURITY_SCHEMES
    return document


_PARAMETER = re.compile(r"\{(\w+)\}")


def add_links(document: dict[str, Any]) -> None:
    """OpenAPI links from each create to what it created: ``POST /projects`` (201) to every
    operation under ``/projects/{project_id}``, its new path parameter taken from the body's ``id``
    (``iid`` for an ``*_iid``), the others from the request's path. Stateful fuzzers and client
    generators follow them; they are derived from the paths, so they cannot drift either."""
    paths = document.get("paths", {})
    for path, operations in paths.items():
        created = operations.get("post", {}).get("responses", {}).get("201")
        if created is None:
            continue
        known = set(_PARAMETER.findall(path))
        links: dict[str, Any] = {}
        for target, target_operations in paths.items():
            rest = target[len(path) :]
            found = re.match(r"^/\{(\w+)\}(/|$)", rest) if target.startswith(path) else None
            if found is None or not set(_PARAMETER.findall(target)) <= known | {found.group(1)}:
                continue
            new = found.group(1)
            parameters = {name: f"$request.path.{name}" for name in _PARAMETER.findall(target) if name != new}
            parameters[new] = "$response.body#/iid" if new.endswith("_iid") else "$response.body#/id"
            for method, operation in target_operations.items():
                if method != "head":
                    links[operation["operationId"]] = {
                        "operationId": operation["operationId"],
                        "parameters": parameters,
                    }
        if links:
            created["links"] = links


def install(app: FastAPI, leaves: Callable[[], Iterable[tuple[Any, str]]]) -> None:
    """Make ``app.openapi()`` build the completed document (once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app, leaves())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def unresolved_reads(leaves: Iterable[tuple[Any, str]]) -> Iterator[str]:
    """Params reads whose key the scan could not resolve (the document would miss them)."""
    for route, _path in leaves:
        if isinstance(route, APIRoute):
            yield from scan_route(route).unresolved


__all__ = ["KIND_SCHEMAS", "Read", "Scan", "build", "install", "parameters_of", "scan_route"]
