"""Hardening of the web UI and of the HTTP edge (issue 10, items 11, 18 and 20).

- A form's body is read only after the checks that need none (origin, CSRF cookie and header), and
  only up to a small cap: a big anonymous POST is refused unread (403 or 413), with Content-Length
  or chunked, and the serving process does not grow by the body's size. `keycrew serve` caps the
  request head too.
- /api/v4/version and /api/v4/metadata need a token, as GitLab's; the OpenAPI document and its
  viewer are served over HTTP only when KEYCREW_API_DOCS is on.
- Every page of the web UI, errors included, carries the security headers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from fastapi.testclient import TestClient

from keycrew.app import create_app
from keycrew.config import Settings
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, free_port
from tests.support.processes import KEYCREW, Running, clean_env
from tests.support.web import sign_in_form, signed_in

SECURITY_HEADERS = ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Content-Security-Policy")
MB = 1024 * 1024


def cookie_header(http: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


def raw_post(
    url: str, path: str, size: int, *, headers: dict[str, str] | None = None, chunked: bool = False
) -> tuple[int | None, int]:
    """POST ``size`` bytes of form data over a raw socket, with Content-Length or chunked, and stop
    sending as soon as the server answers: (the answer's status or None, bytes of body sent)."""
    parts = urlsplit(url)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head.append("Content-Type: application/x-www-form-urlencoded")
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        piece = b"login=" + b"a" * (64 * 1024 - 6)
        try:
            while sent < size:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break  # the server answered before the body ended
                data = piece[: size - sent]
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                sent += len(data)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed the connection: read what it answered
        answer = b""
        try:
            while b"\r\n" not in answer and len(answer) < 65536:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:
            pass
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return (int(match.group(1)) if match else None), sent


# -- item 11: form bodies on a live server -----------------------------------------------------------


def test_an_oversized_form_is_refused_with_413_before_it_is_read(server: LiveServer) -> None:
    http, token = sign_in_form(server.url)
    response = http.post(
        f"{server.url}/users/sign_in",
        data={"login": "a" * (200 * 1024), "password": "x", "authenticity_token": token},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 413, response.text[:300]
    for name in SECURITY_HEADERS:
        assert name in response.headers


def test_a_chunked_form_is_cut_off_at_the_cap(server: LiveServer) -> None:
    http, token = sign_in_form(server.url)
    headers = {"Cookie": cookie_header(http), "X-CSRF-Token": token}
    status, sent = raw_post(server.url, "/users/sign_in", 4 * MB, headers=headers, chunked=True)
    assert status == 413
    assert sent < 4 * MB


def test_a_form_without_the_csrf_cookie_is_refused_unread(server: LiveServer) -> None:
    status, sent = raw_post(server.url, "/users/sign_in", 4 * MB)
    assert status == 403
    assert sent < 4 * MB


def test_a_wrong_csrf_header_is_refused_before_the_body(server: LiveServer) -> None:
    http, _token = sign_in_form(server.url)
    headers = {"Cookie": cookie_header(http), "X-CSRF-Token": "not-the-token"}
    status, sent = raw_post(server.url, "/users/sign_in", 4 * MB, headers=headers)
    assert status == 403
    assert sent < 4 * MB


def test_forms_within_the_cap_still_work(server: LiveServer) -> None:
    # The CSRF token in the form, as browsers send it.
    http, token = sign_in_form(server.url)
    response = http.post(
        f"{server.url}/users/sign_in",
        data={"login": "root", "password": ROOT_PASSWORD, "authenticity_token": token},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 303
    # The CSRF token in a header, and a form with fields repeated.
    http, token = sign_in_form(server.url)
    response = http.post(
        f"{server.url}/users/sign_in",
        data=[("login", "root"), ("password", ROOT_PASSWORD), ("x", "1"), ("x", "2")],
        headers={"X-CSRF-Token": token},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 303
    # A wrong password still renders the form (the attempt was read).
    http, token = sign_in_form(server.url)
    response = http.post(
        f"{server.url}/users/sign_in",
        data={"login": "root", "password": "wrong", "authenticity_token": token},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 401


def test_a_signed_in_form_over_the_cap_is_refused(server: LiveServer) -> None:
    http, token = signed_in(server.url, "root", ROOT_PASSWORD)
    response = http.post(
        f"{server.url}/-/user_settings/personal_access_tokens",
        data={"name": "n" * (100 * 1024), "scopes": "api", "authenticity_token": token},
        timeout=30,
        allow_redirects=False,
    )
    assert response.status_code == 413


# -- item 11: the serving process's memory and the request head ------------------------------------


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, str]]:
    """`keycrew serve` with one worker: the serving process is the one started."""
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    running = Running.start(
        [*KEYCREW, "serve", "--port", str(port)],
        env=clean_env(tmp / "data", KEYCREW_INITIAL_ROOT_PASSWORD=ROOT_PASSWORD),
        cwd=tmp,
        stderr_path=tmp / "serve.stderr",
    )
    url = f"http://127.0.0.1:{port}"
    try:
        running.wait_http(f"{url}/-/liveness", 60)
        yield running, url
    finally:
        running.kill_group()


@pytest.mark.slow
def test_big_anonymous_posts_do_not_grow_the_server(served: tuple[Running, str]) -> None:
    running, url = served
    http, token = sign_in_form(url)
    cookies = {"Cookie": cookie_header(http)}
    # Warm up every path once, so that only the bodies could make the process grow.
    for _ in range(2):
        raw_post(url, "/users/sign_in", 1 * MB)
        raw_post(url, "/users/sign_in", 1 * MB, headers={**cookies, "X-CSRF-Token": token}, chunked=True)
        raw_post(url, "/users/sign_in", 1 * MB, headers=cookies)
    before = rss_kib(running.proc.pid)
    status, _ = raw_post(url, "/users/sign_in", 20 * MB)  # no cookie at all
    assert status == 403
    status, _ = raw_post(url, "/users/sign_in", 20 * MB, headers=cookies)  # a cookie, the token in the body
    assert status == 413
    headers = {**cookies, "X-CSRF-Token": token}
    status, _ = raw_post(url, "/users/sign_in", 20 * MB, headers=headers, chunked=True)
    assert status == 413
    # The same with a client that sends the whole body before it reads the answer.
    response = requests.post(f"{url}/users/sign_in", data=b"a" * (20 * MB), timeout=60)
    assert response.status_code == 403
    growth = rss_kib(running.proc.pid) - before
    assert growth < 5 * 1024, f"the server grew by {growth} KiB"
    assert "Traceback" not in running.output()


@pytest.mark.slow
def test_serve_caps_the_request_head(served: tuple[Running, str]) -> None:
    running, url = served
    parts = urlsplit(url)
    huge = "".join(f"X-Filler-{i}: {'v' * 4000}\r\n" for i in range(256))  # about 1 MiB of headers
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(f"GET /-/liveness HTTP/1.1\r\nHost: {parts.netloc}\r\n{huge}\r\n".encode())
        answer = sock.recv(65536)
    assert re.match(rb"HTTP/1\.1 (431|400) ", answer), answer[:200]
    # A long URL too.
    response = requests.get(f"{url}/-/liveness?q={'x' * (200 * 1024)}", timeout=30)
    assert response.status_code in (414, 431, 400)
    # Ordinary requests go on being served.
    assert requests.get(f"{url}/-/liveness", timeout=30).status_code == 200
    assert "Traceback" not in running.output()


# -- item 18: /version, /metadata and the OpenAPI document ------------------------------------------


@pytest.mark.parametrize("path", ["/version", "/metadata"])
def test_version_and_metadata_need_a_token(server: LiveServer, factory: Factory, path: str) -> None:
    anonymous = server.request("GET", path)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"message": "401 Unauthorized"}
    body = server.root("GET", path).json()
    assert body["version"]
    assert body["revision"]
    # As GitLab's, a read_user token may read them.
    user_id = server.root("GET", "/user").json()["id"]
    read_user = factory.token(user_id, ["read_user"])
    assert server.request("GET", path, token=read_user).status_code == 200


def test_python_gitlab_reads_the_version_with_its_token(server: LiveServer) -> None:
    version, revision = server.gl().version()
    assert version != "unknown"
    assert revision != "unknown"


def test_the_openapi_document_is_not_served_by_default(server: LiveServer) -> None:
    for path in ("/-/openapi.json", "/-/docs"):
        response = requests.get(f"{server.url}{path}", timeout=30)
        assert response.status_code == 404, path
    # The application still describes itself, in process.
    assert server.runtime is not None
    assert "/api/v4/projects" in create_app(server.runtime).openapi()["paths"]


def test_the_openapi_document_is_served_when_the_setting_says_so(server: LiveServer) -> None:
    settings = server.runtime.settings.model_copy(update={"api_docs": True})
    client = TestClient(create_app(dataclasses.replace(server.runtime, settings=settings)))
    assert client.get("/-/openapi.json").json()["paths"]
    assert client.get("/-/docs").status_code == 200


def test_the_api_docs_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().api_docs is False
    monkeypatch.setenv("KEYCREW_API_DOCS", "true")
    assert Settings().api_docs is True


# -- item 20: security headers on every page, errors included ----------------------------------------


def assert_protected(response: requests.Response) -> None:
    missing = [name for name in SECURITY_HEADERS if name not in response.headers]
    assert not missing, f"{response.status_code} {response.request.method} {response.url} lacks {missing}"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_error_pages_carry_the_security_headers(server: LiveServer) -> None:
    html = {"Accept": "text/html"}
    # A visitor is sent to the sign-in form; a signed-in person gets the 404 page.
    path = f"/no/such/page/{time.time_ns()}"
    redirect = requests.get(f"{server.url}{path}", headers=html, allow_redirects=False, timeout=30)
    assert redirect.status_code == 303
    assert_protected(redirect)
    http, token = signed_in(server.url, "root", ROOT_PASSWORD)
    missing = http.get(f"{server.url}{path}", headers=html, timeout=30)
    assert missing.status_code == 404
    assert_protected(missing)
    # 405: a GET to a form's address.
    wrong_method = requests.delete(f"{server.url}/users/sign_in", headers=html, timeout=30)
    assert wrong_method.status_code == 405
    assert_protected(wrong_method)
    # 403: a form without its CSRF token.
    refused = http.post(f"{server.url}/users/sign_out", data={}, headers=html, timeout=30)
    assert refused.status_code == 403
    assert_protected(refused)
    # 403: a form from another site.
    foreign = http.post(
        f"{server.url}/users/sign_out",
        data={"authenticity_token": token},
        headers={**html, "Origin": "https://evil.example.com"},
        timeout=30,
    )
    assert foreign.status_code == 403
    assert_protected(foreign)
    # The static files.
    static = requests.get(f"{server.url}/-/static/keycrew.css", timeout=30)
    assert static.status_code in (200, 404)
    assert_protected(static)


def test_pages_carry_the_security_headers(server: LiveServer) -> None:
    assert_protected(requests.get(f"{server.url}/users/sign_in", timeout=30))


def test_api_json_errors_say_nosniff(server: LiveServer) -> None:
    for response in (
        server.request("GET", "/user"),
        server.root("GET", f"/projects/{10**9}"),
        requests.get(f"{server.url}/api/v4/no/such/route", timeout=30),
    ):
        assert response.status_code in (401, 404)
        assert response.headers.get("X-Content-Type-Options") == "nosniff", response.url


# -- item 11: the PyPI upload's multipart parser ----------------------------------------------------


def pypi_post(server: LiveServer, project_id: int, body: bytes, boundary: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v4/projects/{project_id}/packages/pypi",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        auth=("__token__", server.root_token),
        timeout=30,
    )


def part(name: str, value: str, boundary: str, extra: str = "") -> bytes:
    return f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n{extra}\r\n{value}\r\n'.encode()


def test_pypi_uploads_bound_the_multipart_structure(server: LiveServer, factory: Factory) -> None:
    project_id = factory.project()["id"]
    # A boundary longer than the parser takes: 400, not 500.
    long = "b" * 300
    response = pypi_post(server, project_id, part("name", "x", long) + f"--{long}--\r\n".encode(), long)
    assert response.status_code == 400, response.text
    boundary = "kc-boundary"
    end = f"--{boundary}--\r\n".encode()
    # Part headers past the bound, in one header or in many.
    huge = part("name", "x", boundary, f"X-Pad: {'p' * (64 * 1024)}\r\n") + end
    assert pypi_post(server, project_id, huge, boundary).status_code == 400
    many = part("name", "x", boundary, "".join(f"X-H{i}: v\r\n" for i in range(100))) + end
    assert pypi_post(server, project_id, many, boundary).status_code == 400
    # Too many parts.
    parts = b"".join(part(f"f{i}", "", boundary) for i in range(2000)) + end
    assert pypi_post(server, project_id, parts, boundary).status_code == 400
