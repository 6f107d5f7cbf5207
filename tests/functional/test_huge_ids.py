"""Ids out of the database's range (above 2**31, 2**63, 10**20, or hugely negative) never give a 500.

An out-of-range id names nothing: every route answers it exactly as it answers an unknown id in
range (a 404 for a path id, the route's usual 400/401/empty list for a parameter). The sweep walks
every /api/v4 route with a path parameter, so routes added later are covered too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from keycrew.api.routes import ROUTERS
from keycrew.registry import pypi
from tests.support.live import Factory, LiveServer, uid

# Just beyond PostgreSQL's int4, just beyond SQLite's (and int8's) 64 bits, far beyond.
OUT_OF_RANGE = ("2147483648", "9223372036854775808", "99999999999999999999")
HUGE = "99999999999999999999"
# A path id is digits only (400 otherwise); as a parameter it is an integer that names nothing.
NEGATIVE = "-99999999999999999999"
# In range, and no record has it: the answer an out-of-range id must get too.
UNKNOWN = "999999999"


@dataclass
class World:
    """Real records, so that the sweep gets past every path segment but the one it replaces."""

    user: dict[str, Any]
    user_token: str
    pat_id: int
    group: dict[str, Any]
    project: dict[str, Any]
    issue_iid: int
    note_id: int
    project_token_id: int
    group_token_id: int
    impersonation_id: int
    instance_sa: int
    group_sa: int
    group_sa_token: int
    project_sa: int
    project_sa_token: int
    project_deploy_token: int
    group_deploy_token: int
    event_id: int


def _post(server: LiveServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = server.root("POST", path, json=body)
    assert response.status_code == 201, (path, response.text)
    return dict(response.json())


@pytest.fixture(scope="module")
def world(server: LiveServer) -> World:
    factory = Factory(server)
    user, user_token = factory.user_with_token(["api"])
    pat_id = server.request("GET", "/personal_access_tokens/self", token=user_token).json()["id"]
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    factory.member("projects", project["id"], user["id"], 30)
    pid, gid = project["id"], group["id"]
    issue = _post(server, f"/projects/{pid}/issues", {"title": "an issue"})
    note = _post(server, f"/projects/{pid}/issues/{issue['iid']}/notes", {"body": "a note"})
    bot_token = {"name": uid("bot"), "scopes": ["api"]}
    project_token = _post(server, f"/projects/{pid}/access_tokens", bot_token)
    group_token = _post(server, f"/groups/{gid}/access_tokens", bot_token)
    impersonation = _post(server, f"/users/{user['id']}/impersonation_tokens", bot_token)
    instance_sa = _post(server, "/service_accounts", {})
    group_sa = _post(server, f"/groups/{gid}/service_accounts", {})
    group_sa_token = _post(
        server, f"/groups/{gid}/service_accounts/{group_sa['id']}/personal_access_tokens", bot_token
    )
    project_sa = _post(server, f"/projects/{pid}/service_accounts", {})
    project_sa_token = _post(
        server, f"/projects/{pid}/service_accounts/{project_sa['id']}/personal_access_tokens", bot_token
    )
    deploy = {"name": uid("dep"), "scopes": ["read_repository"]}
    project_deploy = _post(server, f"/projects/{pid}/deploy_tokens", deploy)
    group_deploy = _post(server, f"/groups/{gid}/deploy_tokens", deploy)
    event = server.root("GET", "/audit_events", params={"per_page": 1}).json()[0]
    return World(
        user=user,
        user_token=user_token,
        pat_id=pat_id,
        group=group,
        project=project,
        issue_iid=issue["iid"],
        note_id=note["id"],
        project_token_id=project_token["id"],
        group_token_id=group_token["id"],
        impersonation_id=impersonation["id"],
        instance_sa=instance_sa["id"],
        group_sa=group_sa["id"],
        group_sa_token=group_sa_token["id"],
        project_sa=project_sa["id"],
        project_sa_token=project_sa_token["id"],
        project_deploy_token=project_deploy["id"],
        group_deploy_token=group_deploy["id"],
        event_id=event["id"],
    )


def _real(world: World, route: str, name: str) -> str:
    """The value of path parameter ``name`` that names a real record on this route."""
    in_project, in_group = route.startswith("/projects/{"), route.startswith("/groups/{")
    value: object
    if name in ("project_id", "source_id", "resource_id", "project_ref", "group_id", "namespace_id"):
        value = world.project["id"] if in_project else world.group["id"]
    elif name == "user_id":
        if "/service_accounts" in route:
            value = world.project_sa if in_project else world.group_sa if in_group else world.instance_sa
        else:
            value = world.user["id"]
    elif name == "token_id":
        if "impersonation_tokens" in route:
            value = world.impersonation_id
        elif "/access_tokens" in route:
            value = world.project_token_id if in_project else world.group_token_id
        elif "/service_accounts" in route:
            value = world.project_sa_token if in_project else world.group_sa_token
        elif "deploy_tokens" in route:
            value = world.project_deploy_token if in_project else world.group_deploy_token
        else:
            value = world.pat_id
    elif name == "issue_iid":
        value = world.issue_iid
    elif name == "note_id":
        value = world.note_id
    elif name == "event_id":
        value = world.event_id
    else:  # package names, file names, digests
        value = "x"
    return str(value)


# Path parameters that are free text to look up, not records: any value, a number or "-1"
# included, is a fair question with a 200 answer (GitLab's /namespaces/:namespace/exists).
FREE_TEXT = {("/namespaces/{namespace}/exists", "namespace")}


def _cases() -> list[tuple[str, str, str]]:
    """(method, route, parameter) for every API route with a path parameter naming a record."""
    cases = []
    for router in [*ROUTERS, pypi.router]:
        for route in router.routes:
            path = getattr(route, "path", "")
            for name in re.findall(r"{(\w+)(?::path)?}", path):
                if (path, name) in FREE_TEXT:
                    continue
                for method in sorted(getattr(route, "methods", ()) or ()):
                    if method != "HEAD":
                        cases.append((method, path, name))
    return cases


CASES = _cases()


def _url(server: LiveServer, world: World, route: str, swept: str, value: str) -> str:
    def fill(match: re.Match[str]) -> str:
        return value if match.group(1) == swept else _real(world, route, match.group(1))

    return server.api(re.sub(r"{(\w+)(?::path)?}", fill, route))


def _call(method: str, url: str, token: str) -> requests.Response:
    return requests.request(method, url, headers={"PRIVATE-TOKEN": token}, json={}, timeout=30)


def _answer(response: requests.Response) -> tuple[int, object]:
    """Status and, for errors, the body (success bodies carry timestamps and differ)."""
    if response.status_code >= 400:
        return response.status_code, response.json()
    return response.status_code, None


def test_the_sweep_covers_the_token_routes() -> None:
    swept = {(m, r) for m, r, _ in CASES}
    for expected in [
        ("GET", "/personal_access_tokens/{token_id}"),
        ("POST", "/personal_access_tokens/{token_id}/rotate"),
        ("DELETE", "/personal_access_tokens/{token_id}"),
        ("GET", "/projects/{resource_id}/access_tokens/{token_id}"),
        ("POST", "/groups/{resource_id}/access_tokens/{token_id}/rotate"),
        ("DELETE", "/users/{user_id}/impersonation_tokens/{token_id}"),
        ("GET", "/projects/{project_id}/issues/{issue_iid}/notes/{note_id}"),
        ("PATCH", "/groups/{source_id}/service_accounts/{user_id}"),
        ("GET", "/groups/{source_id}/members/{user_id}"),
        ("GET", "/audit_events/{event_id}"),
    ]:
        assert expected in swept
    assert len(CASES) > 150


@pytest.mark.parametrize("as_admin", [True, False], ids=["admin", "user"])
def test_out_of_range_path_ids_answer_as_unknown_ids(
    server: LiveServer, world: World, as_admin: bool
) -> None:
    token = server.root_token if as_admin else world.user_token
    values = OUT_OF_RANGE if as_admin else (HUGE,)
    mismatches = []
    for method, route, name in CASES:
        expected = _answer(_call(method, _url(server, world, route, name, UNKNOWN), token))
        assert expected[0] < 500, (method, route, name, expected)
        for value in values:
            got = _answer(_call(method, _url(server, world, route, name, value), token))
            if got != expected:
                mismatches.append((method, route, name, value, got, expected))
        negative = _call(method, _url(server, world, route, name, NEGATIVE), token)
        if not 400 <= negative.status_code < 500:
            mismatches.append((method, route, name, NEGATIVE, _answer(negative), "a 4xx"))
    assert not mismatches, "\n".join(map(str, mismatches))


def test_the_named_routes_answer_404(server: LiveServer, world: World) -> None:
    pid, gid, user_id = world.project["id"], world.group["id"], world.user["id"]
    for method, path, message in [
        ("GET", f"/personal_access_tokens/{HUGE}", "404 Personal Access Token Not Found"),
        ("DELETE", f"/personal_access_tokens/{HUGE}", "404 Personal Access Token Not Found"),
        ("POST", f"/personal_access_tokens/{HUGE}/rotate", "404 Personal Access Token Not Found"),
        ("GET", f"/projects/{pid}/access_tokens/{HUGE}", "404 project Access Token Not Found"),
        ("DELETE", f"/projects/{pid}/access_tokens/{HUGE}", "404 project Access Token Not Found"),
        ("POST", f"/projects/{pid}/access_tokens/{HUGE}/rotate", "404 project Access Token Not Found"),
        ("GET", f"/groups/{gid}/access_tokens/{HUGE}", "404 group Access Token Not Found"),
        ("DELETE", f"/groups/{gid}/access_tokens/{HUGE}", "404 group Access Token Not Found"),
        ("POST", f"/groups/{gid}/access_tokens/{HUGE}/rotate", "404 group Access Token Not Found"),
        ("GET", f"/users/{user_id}/impersonation_tokens/{HUGE}", "404 Impersonation Token Not Found"),
        ("DELETE", f"/users/{user_id}/impersonation_tokens/{HUGE}", "404 Impersonation Token Not Found"),
        ("GET", f"/users/{HUGE}/impersonation_tokens", "404 User Not Found"),
    ]:
        response = server.root(method, path)
        assert (response.status_code, response.json()) == (404, {"message": message}), (method, path)
    # Not an integer at all is still a bad parameter.
    bad = server.root("GET", f"/users/{user_id}/impersonation_tokens/abc")
    assert (bad.status_code, bad.json()) == (400, {"error": "impersonation_token_id is invalid"})


def _same(server: LiveServer, method: str, path: str, token: str | None = None, **kwargs: Any) -> None:
    """``path`` with {id} as an out-of-range (or negative) id answers as with an unknown id in range."""

    def send(value: str) -> tuple[int, object]:
        options = {
            key: (
                {k: (v.format(id=value) if isinstance(v, str) else v) for k, v in arg.items()}
                if isinstance(arg, dict)
                else arg
            )
            for key, arg in kwargs.items()
        }
        return _answer(server.request(method, path.format(id=value), token=token, **options))

    expected = send(UNKNOWN)
    assert expected[0] < 500
    for value in (*OUT_OF_RANGE, NEGATIVE):
        assert send(value) == expected, (method, path, kwargs, value)


def test_out_of_range_ids_in_parameters(server: LiveServer, world: World) -> None:
    root, user = server.root_token, world.user_token
    pid, gid = world.project["id"], world.group["id"]
    # An admin naming an unknown user: 404; anyone else asking for another user's tokens: 401.
    _same(server, "GET", "/personal_access_tokens", root, params={"user_id": "{id}"})
    assert server.root("GET", "/personal_access_tokens", params={"user_id": HUGE}).status_code == 404
    _same(server, "GET", "/personal_access_tokens", user, params={"user_id": "{id}"})
    assert server.request("GET", "/personal_access_tokens", user, params={"user_id": HUGE}).status_code == 401
    for kind, source in (("projects", pid), ("groups", gid)):
        for listing in ("members", "members/all"):
            _same(server, "GET", f"/{kind}/{source}/{listing}", root, params={"user_ids[]": "{id}"})
            found = server.root("GET", f"/{kind}/{source}/{listing}", params={"user_ids[]": HUGE})
            assert (found.status_code, found.json()) == (200, [])
        _same(server, "POST", f"/{kind}/{source}/members", root, json={"user_id": "{id}", "access_level": 30})
        _same(
            server,
            "POST",
            f"/{kind}/{source}/members",
            root,
            json={"user_id": "{id},{id}", "access_level": 30},
        )
    _same(server, "GET", "/groups", root, params={"skip_groups[]": "{id}"})
    _same(server, "GET", "/audit_events", root, params={"entity_type": "User", "entity_id": "{id}"})
    _same(server, "GET", f"/projects/{pid}/issues", root, params={"author_id": "{id}"})
    _same(server, "GET", f"/projects/{pid}/issues", root, params={"iids[]": "{id}"})
    _same(server, "POST", "/projects", root, json={"name": uid("p"), "namespace_id": "{id}"})
    _same(server, "POST", "/groups", root, json={"name": uid("g"), "path": uid("g"), "parent_id": "{id}"})


def test_out_of_range_sudo(server: LiveServer) -> None:
    for value in (*OUT_OF_RANGE, NEGATIVE):
        message = {"message": f"404 User with ID or username '{value}' Not Found"}
        by_header = server.root("GET", "/user", headers={"Sudo": value})
        assert (by_header.status_code, by_header.json()) == (404, message)
        by_param = server.root("GET", "/user", params={"sudo": value})
        assert (by_param.status_code, by_param.json()) == (404, message)


def test_out_of_range_numbers_in_bodies_are_refused(server: LiveServer, world: World) -> None:
    user_id = world.user["id"]
    too_big = server.root("PUT", f"/users/{user_id}", json={"projects_limit": HUGE})
    assert (too_big.status_code, too_big.json()) == (
        400,
        {"message": {"projects_limit": ["must be less than or equal to 2147483647"]}},
    )
    just_fits = server.root("PUT", f"/users/{user_id}", json={"projects_limit": 2**31 - 1})
    assert just_fits.status_code == 200, just_fits.text
    for body in ({"projects_limit": HUGE}, {"projects_limit": int(HUGE)}):
        created = server.root(
            "POST",
            "/users",
            json={
                "username": uid("u"),
                "email": f"{uid('e')}@example.com",
                "name": "N",
                "password": "a-long-password-1",
            }
            | body,
        )
        assert created.status_code == 400, created.text
