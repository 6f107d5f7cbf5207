"""Bad input is refused at the edge with a 400 (or the route's usual 404), never a 500.

Deeply nested or oversized JSON bodies, lone surrogates and NUL bytes in text, integers too long
for Python's int() or too big for the database's columns, and ids that are not plain ASCII digits
(padded with spaces, signed, with underscores, fullwidth, hexadecimal).
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.live import Factory, LiveServer, uid

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Longer than Python's int() accepts from text (sys.get_int_max_str_digits(): 4,300).
LONG_DIGITS = "9" * 5000
# Beyond any integer column (SQLite's and PostgreSQL's 64 bits, int4's 31).
HUGE = "99999999999999999999"


def _invalid_json(response: Any) -> None:
    assert response.status_code == 400, response.text
    assert "error" in response.json() or "message" in response.json()


# -- item 5: nesting and size ------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000,
        '{"a":' * 100_000,
        '{"name": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"name": ' + "[" * 40 + "]" * 40 + "}",
    ],
    ids=["open-arrays", "open-objects", "deep-value", "depth-40"],
)
@pytest.mark.parametrize("path", ["/projects", "/groups", "/user/personal_access_tokens", "/users"])
def test_deeply_nested_json_is_refused(server: LiveServer, path: str, body: str) -> None:
    response = server.root("POST", path, data=body.encode(), headers=JSON)
    _invalid_json(response)
    assert response.json() in (
        {"error": "Parameters nested too deeply"},
        {"error": "The provided content-type or the request body is not valid JSON"},
    )


def test_moderately_nested_json_is_read(server: LiveServer) -> None:
    """Nesting of a few levels (scopes as an array in an object) is fine."""
    body = {"name": uid("p"), "topics": ["a"], "extra": {"a": [[{"b": [1, 2.5, 10**30]}]]}}
    response = server.root("POST", "/projects", json=body)
    assert response.status_code == 201, response.text


def test_oversized_json_body_is_refused(server: LiveServer) -> None:
    big = b'{"name": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    response = server.root("POST", "/projects", data=big, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "JSON body too large"}


def test_oversized_chunked_json_body_is_refused(server: LiveServer) -> None:
    """No Content-Length to trust: the body is counted while it is read."""

    def chunks() -> Any:
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    response = server.root("POST", "/projects", data=chunks(), headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "JSON body too large"}


# -- item 6: lone surrogates and NUL bytes -----------------------------------------------------

SURROGATE_BODY = b'{"name": "\\ud800", "path": "p\\udfff", "scopes": ["api"]}'


@pytest.mark.parametrize(
    "path",
    [
        "/projects",
        "/groups",
        "/users",
        "/user/personal_access_tokens",
        "/service_accounts",
    ],
)
def test_lone_surrogates_in_json_are_refused(server: LiveServer, path: str) -> None:
    response = server.root("POST", path, data=SURROGATE_BODY, headers=JSON)
    assert response.status_code == 400, response.text


def test_lone_surrogate_in_a_key_is_refused(server: LiveServer) -> None:
    response = server.root("POST", "/projects", data=b'{"\\ud800": "\\u0000x"}', headers=JSON)
    assert response.status_code == 400, response.text


def test_lone_surrogates_in_resource_routes(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    for path in (
        f"/projects/{project['id']}/access_tokens",
        f"/groups/{group['id']}/access_tokens",
        f"/groups/{group['id']}/service_accounts",
        f"/projects/{project['id']}/issues",
    ):
        response = server.root("POST", path, data=SURROGATE_BODY, headers=JSON)
        assert response.status_code == 400, (path, response.text)
    response = server.root("PUT", f"/projects/{project['id']}", data=b'{"name": "a\\udc80b"}', headers=JSON)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("where", ["json", "form", "query"])
def test_nul_bytes_in_text_are_refused(server: LiveServer, where: str) -> None:
    fields = {"name": "a\x00b", "path": uid("p")}
    if where == "json":
        response = server.root("POST", "/projects", json=fields)
    elif where == "form":
        response = server.root("POST", "/projects", data=fields, headers=FORM)
    else:
        response = server.root("POST", "/projects", params=fields)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "name is invalid"}


def test_nul_bytes_in_searches_and_path_segments(server: LiveServer) -> None:
    for path, params in (
        ("/users", {"search": "a\x00b"}),
        ("/users", {"username": "a\x00b"}),
        ("/projects", {"search": "a\x00b"}),
        ("/groups", {"search": "a\x00b"}),
    ):
        response = server.root("GET", path, params=params)
        assert response.status_code == 400, (path, response.text)
    for path in ("/projects/a%00b", "/groups/a%00b", "/projects/g%2Fa%00b/members"):
        response = server.root("GET", path)
        assert response.status_code in (400, 404), (path, response.text)


# -- item 7: integers too long or too big ------------------------------------------------------


@pytest.mark.parametrize("where", ["query", "form", "json"])
def test_integers_longer_than_int_accepts(server: LiveServer, where: str) -> None:
    if where == "query":
        response = server.root("GET", "/projects", params={"per_page": LONG_DIGITS})
        assert response.status_code == 400, response.text
        assert response.json() == {"error": "per_page is invalid"}
        response = server.root("GET", "/users", params={"page": LONG_DIGITS})
    elif where == "form":
        form = {"name": uid("p"), "namespace_id": LONG_DIGITS}
        response = server.root("POST", "/projects", data=form, headers=FORM)
    else:
        raw = f'{{"name": "{uid("p")}", "namespace_id": {LONG_DIGITS}}}'
        response = server.root("POST", "/projects", data=raw.encode(), headers=JSON)
    assert response.status_code == 400, response.text


def test_long_integer_lists_and_path_ids(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    response = server.root("GET", f"/projects/{project['id']}/issues", params={"iids[]": LONG_DIGITS})
    assert response.status_code == 400, response.text
    for path in (f"/users/{LONG_DIGITS}", f"/projects/{LONG_DIGITS}", f"/groups/{LONG_DIGITS}"):
        response = server.root("GET", path)
        assert response.status_code in (400, 404), (path, response.text)
    response = server.root("GET", f"/personal_access_tokens/{LONG_DIGITS}")
    assert response.status_code in (400, 404), response.text
    response = server.root("GET", f"/projects/{project['id']}/members/{LONG_DIGITS}")
    assert response.status_code in (400, 404), response.text


def test_out_of_range_integer_parameters(server: LiveServer, factory: Factory) -> None:
    """Integers that are not ids but would overflow a column, or a comparison with one."""
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    user = factory.user()
    pid, gid = project["id"], group["id"]
    for value in (HUGE, "-" + HUGE, LONG_DIGITS):
        checks: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/projects", {"params": {"per_page": value}}),
            ("GET", "/projects", {"params": {"page": value}}),
            ("GET", "/projects", {"params": {"min_access_level": value}}),
            ("GET", "/groups", {"params": {"min_access_level": value}}),
            ("POST", f"/projects/{pid}/members", {"json": {"user_id": user["id"], "access_level": value}}),
            ("POST", f"/groups/{gid}/members", {"json": {"user_id": user["id"], "access_level": value}}),
            (
                "POST",
                f"/projects/{pid}/access_tokens",
                {"json": {"name": uid("t"), "scopes": ["api"], "access_level": value}},
            ),
            ("POST", f"/projects/{pid}/issues", {"json": {"title": "t", "iid": value}}),
            ("GET", "/audit_events", {"params": {"entity_type": "User", "entity_id": value}}),
            ("PUT", "/application/settings", {"json": {"max_personal_access_token_lifetime": value}}),
        ]
        for method, path, kwargs in checks:
            response = server.root(method, path, **kwargs)
            assert response.status_code < 500, (method, path, value, response.text)
            if value == LONG_DIGITS:
                assert response.status_code == 400, (method, path, response.text)


# -- item 8: ids that are not plain digits ------------------------------------------------------


def _decorated(user_id: int) -> list[str]:
    """``user_id`` written in ways that are not plain ASCII digits (percent-encoded for a path)."""
    digits = str(user_id)
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in digits)
    return [
        f"%20{digits}",
        f"{digits}%20",
        f"%09{digits}",
        f"{digits}%0A",
        f"%2B{digits}",
        f"{digits[0]}_{digits[1:]}" if len(digits) > 1 else f"{digits}_",
        quote(fullwidth),
        hex(user_id),
        f"{digits}.0",
    ]


def test_padded_or_decorated_path_ids_are_refused(server: LiveServer, factory: Factory) -> None:
    victim = factory.user()
    token = factory.token(victim["id"])
    pat_id = server.request("GET", "/personal_access_tokens/self", token=token).json()["id"]
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    for raw in _decorated(victim["id"]):
        for method, path in (
            ("GET", f"/users/{raw}"),
            ("POST", f"/users/{raw}/ban"),
            ("POST", f"/users/{raw}/block"),
            ("POST", f"/users/{raw}/deactivate"),
            ("DELETE", f"/users/{raw}"),
        ):
            response = server.root(method, path)
            assert response.status_code in (400, 404), (method, path, response.text)
    for raw in _decorated(project["id"]):
        response = server.root("GET", f"/projects/{raw}")
        assert response.status_code in (400, 404), (raw, response.text)
    for raw in _decorated(group["id"]):
        response = server.root("GET", f"/groups/{raw}")
        assert response.status_code in (400, 404), (raw, response.text)
    for raw in _decorated(pat_id):
        response = server.root("GET", f"/personal_access_tokens/{raw}")
        assert response.status_code in (400, 404), (raw, response.text)
    assert server.root("GET", f"/users/{victim['id']}").json()["state"] == "active"
    assert server.request("GET", "/user", token=token).status_code == 200


def test_padded_integers_in_parameters_are_refused(server: LiveServer, factory: Factory) -> None:
    """A scalar integer parameter is plain digits, as a path id is (comma-separated id lists, like
    the members API's ``user_id``, keep GitLab's leniency for spaces around the commas)."""
    group = factory.group()
    gid = str(group["id"])
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in gid)
    for raw in (
        f" {gid}",
        f"{gid} ",
        f"{gid}\n",
        f"+{gid}",
        f"{gid[0]}_{gid[1:]}",
        fullwidth,
        hex(group["id"]),
    ):
        name = uid("p")
        response = server.root("POST", "/projects", data={"name": name, "namespace_id": raw}, headers=FORM)
        assert response.status_code == 400, (raw, response.text)
        assert response.json() == {"error": "namespace_id is invalid"}
        response = server.root("GET", "/projects", params={"per_page": raw})
        assert response.status_code == 400, (raw, response.text)
    assert server.root("GET", f"/groups/{gid}/projects").json() == []


# -- item 17: names are matched in full (no trailing newline) ------------------------------------


def test_names_and_paths_with_a_trailing_newline_are_refused(server: LiveServer, factory: Factory) -> None:
    name = uid("n")
    for path, body in (
        (
            "/users",
            {
                "username": name + "\n",
                "email": f"{name}@example.com",
                "name": name,
                "password": "a-long-password-1",
            },
        ),
        ("/groups", {"name": name, "path": name + "\n"}),
        ("/projects", {"name": name, "path": name + "\n"}),
    ):
        response = server.root("POST", path, json=body)
        assert response.status_code == 400, (path, response.text)


def _multipart(fields: dict[str, str], file_name: str, content: bytes) -> tuple[bytes, str]:
    """A multipart body written by hand: clients escape a newline in a file name, an attacker
    does not."""
    boundary = "keycrew-boundary-7c1f"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_a_pypi_file_name_with_a_trailing_newline_is_refused(server: LiveServer, factory: Factory) -> None:
    """(The package's name and version are stripped before they are checked and stored.)"""
    project = factory.project()
    content = b"not really a wheel"
    package = uid("pkg")
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": package,
        "version": "1.0.0",
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
    }
    file_name = f"{package}-1.0.0-py3-none-any.whl\n"
    body, content_type = _multipart(fields, file_name, content)
    response = server.request(
        "POST",
        f"/projects/{project['id']}/packages/pypi",
        token=server.root_token,
        data=body,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 400, response.text
    listed = server.root("GET", f"/projects/{project['id']}/packages/pypi/simple/{package}")
    assert package + "-1.0.0" not in listed.text
