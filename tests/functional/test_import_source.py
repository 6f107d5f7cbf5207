"""The direct-transfer source client (keycrew.imports.source): a real keycrew source populated over
its API and read back, and a real fault-injecting HTTP server for retries, timeouts and bad answers."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gitlab
import httpx
import pytest
import requests

from keycrew.imports.source import (
    SourceAuthError,
    SourceClient,
    SourceError,
    SourceNotFound,
    SourceProtocolError,
    SourceTransientError,
    SourceUnreachable,
)
from tests.support.live import Factory, LiveServer, free_port, uid
from tests.support.records import DEVELOPER, MAINTAINER, REPORTER, new_issue, new_note

FAKE_TOKEN = "glpat-fault-server-secret-0123456789"


class CountingTransport(httpx.HTTPTransport):
    """A real HTTP transport that remembers each request's path and query."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.raw_path.decode())
        return super().handle_request(request)


# --- a real keycrew source -----------------------------------------------------------------------


@dataclass
class Source:
    top: Any
    sub: Any
    leaf: Any
    projects: dict[str, Any]
    alice: dict[str, Any]
    bob: dict[str, Any]
    issues: list[dict[str, Any]]
    notes: dict[int, list[dict[str, Any]]]


@pytest.fixture
def source(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> Source:
    top = gl.groups.create({"name": uid("src"), "path": uid("src")})
    sub = gl.groups.create({"name": "sub", "path": "sub", "parent_id": top.id})
    leaf = gl.groups.create({"name": "leaf", "path": "leaf", "parent_id": sub.id})
    projects = {
        "top": gl.projects.create({"name": "app", "path": "app", "namespace_id": top.id}),
        "sub": gl.projects.create({"name": "lib", "path": "lib", "namespace_id": sub.id}),
        "leaf": gl.projects.create({"name": "tool", "path": "tool", "namespace_id": leaf.id}),
    }
    alice, alice_token = factory.user_with_token(["api"])
    bob, bob_token = factory.user_with_token(["api"])
    top.members.create({"user_id": alice["id"], "access_level": MAINTAINER})
    sub.members.create({"user_id": bob["id"], "access_level": REPORTER})
    projects["sub"].members.create({"user_id": alice["id"], "access_level": MAINTAINER})
    pid = projects["sub"].id
    projects["sub"].members.create({"user_id": bob["id"], "access_level": DEVELOPER})
    issues = [
        new_issue(server, pid, alice_token, title="first", description="by alice"),
        new_issue(server, pid, bob_token, title="second", confidential=True),
        new_issue(server, pid, title="third, by root"),
    ]
    notes: dict[int, list[dict[str, Any]]] = {issue["iid"]: [] for issue in issues}
    for issue in issues[:2]:
        notes[issue["iid"]].append(new_note(server, pid, issue["iid"], bob_token, body="bob says"))
        notes[issue["iid"]].append(new_note(server, pid, issue["iid"], alice_token, body="alice answers"))
    return Source(top, sub, leaf, projects, alice, bob, issues, notes)


def test_reads_a_populated_source_back(server: LiveServer, source: Source) -> None:
    with SourceClient(server.url, server.root_token, retries=0) as client:
        assert client.version()["version"]
        assert "api" in client.check_token()

        top = client.group(source.top.full_path)
        assert (top["id"], top["full_path"]) == (source.top.id, source.top.full_path)
        descendants = list(client.descendant_groups(top["id"]))
        assert sorted(g["full_path"] for g in descendants) == sorted(
            [source.sub.full_path, source.leaf.full_path]
        )
        by_group = {
            g.full_path: [p["path_with_namespace"] for p in client.group_projects(g.id)]
            for g in (source.top, source.sub, source.leaf)
        }
        assert by_group == {
            source.top.full_path: [source.projects["top"].path_with_namespace],
            source.sub.full_path: [source.projects["sub"].path_with_namespace],
            source.leaf.full_path: [source.projects["leaf"].path_with_namespace],
        }

        project = client.project(source.projects["sub"].path_with_namespace)
        assert project["id"] == source.projects["sub"].id

        top_members = {m["username"]: m["access_level"] for m in client.group_members(top["id"])}
        assert top_members.get(source.alice["username"]) == MAINTAINER
        assert source.bob["username"] not in top_members  # bob is a member below, not here
        sub_members = {m["username"]: m["access_level"] for m in client.group_members(source.sub.id)}
        assert sub_members.get(source.bob["username"]) == REPORTER
        assert source.alice["username"] not in sub_members  # inherited only: not listed
        project_members = {m["username"]: m["access_level"] for m in client.project_members(project["id"])}
        assert project_members[source.alice["username"]] == MAINTAINER
        assert project_members[source.bob["username"]] == DEVELOPER

        issues = list(client.issues(project["id"]))
        assert [(i["iid"], i["title"], i["author"]["id"]) for i in issues] == [
            (i["iid"], i["title"], i["author"]["id"]) for i in source.issues
        ]
        assert [i["confidential"] for i in issues] == [False, True, False]
        for issue in source.issues:
            read = [
                (n["body"], n["author"]["username"])
                for n in client.notes(project["id"], issue["iid"])
                if not n.get("system")
            ]
            assert read == [(n["body"], n["author"]["username"]) for n in source.notes[issue["iid"]]]

        author_ids = {i["author"]["id"] for i in issues} | {source.alice["id"], source.bob["id"]}
        users = {u["id"]: u for u in client.users([*sorted(author_ids), 987654321])}
        assert set(users) == author_ids  # the unknown id is skipped
        assert users[source.alice["id"]]["username"] == source.alice["username"]
        assert users[source.alice["id"]]["state"] == "active"
        assert set(users[source.bob["id"]]) >= {"id", "username", "name", "state", "user_type", "bot"}
        assert client.user(source.bob["id"])["name"] == source.bob["name"]

        clone_url = client.repository_url(project)
        assert clone_url.startswith("http://oauth2:")
        assert clone_url.endswith(urlsplit(project["http_url_to_repo"]).path)
        assert server.root_token in clone_url


def test_pagination_streams_more_than_a_page_of_issues(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    with requests.Session() as http:
        http.headers["PRIVATE-TOKEN"] = server.root_token
        for number in range(105):
            response = http.post(
                server.api(f"/projects/{project['id']}/issues"), json={"title": f"i{number}"}
            )
            assert response.status_code == 201, response.text
    transport = CountingTransport()
    client = SourceClient(server.url, server.root_token, retries=0, transport=transport)
    titles = [issue["title"] for issue in client.issues(project["id"])]
    assert titles == [f"i{number}" for number in range(105)]
    listing = [path for path in transport.seen if path.startswith(f"/api/v4/projects/{project['id']}/issues")]
    assert len(listing) == 2
    assert all("per_page=100" in path for path in listing)


def test_a_wrong_token_is_refused(server: LiveServer) -> None:
    wrong = "glpat-" + "x" * 20
    client = SourceClient(server.url, wrong, retries=0)
    with pytest.raises(SourceAuthError) as raised:
        client.version()
    assert raised.value.message == "the source refused the access token"
    assert wrong not in str(raised.value)
    with pytest.raises(SourceAuthError):
        client.check_token()


def test_a_token_that_cannot_read_the_api_fails_the_check(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token(["read_repository"])
    client = SourceClient(server.url, token, retries=0)
    assert client.token_scopes() == ["read_repository"]
    with pytest.raises(SourceAuthError) as raised:
        client.check_token()
    assert "api or read_api" in raised.value.message
    assert "read_repository" in raised.value.message
    assert token not in str(raised.value)


def test_read_api_is_enough(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token(["read_api"])
    assert SourceClient(server.url, token, retries=0).check_token() == ["read_api"]


def test_unknown_paths_are_not_found(server: LiveServer) -> None:
    client = SourceClient(server.url, server.root_token, retries=0)
    missing = uid("nope")
    with pytest.raises(SourceNotFound) as raised:
        client.group(f"{missing}/y")
    assert raised.value.message == f"group '{missing}/y' was not found on the source"
    failure = raised.value.failure(relation="group")
    assert failure["exception_class"] == "SourceNotFound"
    assert failure["exception_message"] == raised.value.message
    assert failure["source_url"] == server.url
    with pytest.raises(SourceNotFound, match=f"project '{missing}/p' was not found"):
        client.project(f"{missing}/p")
    with pytest.raises(SourceNotFound):
        list(client.issues(987654321))


# --- a fault-injecting HTTP server ---------------------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FaultServer:
    """A real HTTP server on 127.0.0.1 that answers GETs from a script: ``routes[path]`` is a list of
    answers used in turn (the last one repeats). It records each request's path and headers."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Answer]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()
        fault = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                with fault._lock:
                    fault.requests.append((self.path, dict(self.headers.items())))
                    script = fault.routes.get(path) or [Answer(404, b'{"message":"404 Not found"}')]
                    answer = script.pop(0) if len(script) > 1 else script[0]
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in answer.headers.items():
                        self.send_header(name, value.replace("{url}", fault.url))
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for seen, _ in self.requests if urlsplit(seen).path == path)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def fault() -> Iterator[FaultServer]:
    server = FaultServer()
    yield server
    server.stop()


class Sleeps:
    """Stands in for time.sleep: records each backoff and waits only a moment."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(0.001)


VERSION = b'{"version": "17.0.0", "revision": "abc"}'


def client_for(fault: FaultServer, sleeps: Sleeps, **kwargs: Any) -> SourceClient:
    options: dict[str, Any] = {"timeout": 5.0, "retries": 3, "backoff": 0.01, "sleep": sleeps} | kwargs
    return SourceClient(fault.url, FAKE_TOKEN, **options)


def test_two_500s_then_success(fault: FaultServer) -> None:
    fault.routes["/api/v4/version"] = [Answer(500, b"oops"), Answer(502, b"<html>"), Answer(200, VERSION)]
    sleeps = Sleeps()
    assert client_for(fault, sleeps).version()["version"] == "17.0.0"
    assert fault.hits("/api/v4/version") == 3
    assert len(sleeps.delays) == 2
    assert sleeps.delays[1] > sleeps.delays[0] * 0.9  # the step doubles, jittered by at most half
    _, headers = fault.requests[0]
    assert {k.lower(): v for k, v in headers.items()}["private-token"] == FAKE_TOKEN
    assert all(FAKE_TOKEN not in path for path, _ in fault.requests)


def test_429_waits_as_long_as_retry_after_says(fault: FaultServer) -> None:
    fault.routes["/api/v4/version"] = [Answer(429, b"{}", {"Retry-After": "7"}), Answer(200, VERSION)]
    sleeps = Sleeps()
    assert client_for(fault, sleeps).version()["revision"] == "abc"
    assert fault.hits("/api/v4/version") == 2
    assert sleeps.delays == [7.0]


def test_a_source_that_always_fails_gives_up_after_the_retries(
    fault: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    fault.routes["/api/v4/groups/a%2Fb"] = [Answer(500, b"{}")]
    sleeps = Sleeps()
    with caplog.at_level(logging.DEBUG), pytest.raises(SourceTransientError) as raised:
        client_for(fault, sleeps, retries=4).group("a/b")
    assert fault.hits("/api/v4/groups/a%2Fb") == 5
    assert len(sleeps.delays) == 4
    assert "HTTP 500 after 5 attempts" in raised.value.message
    assert "GET /groups/a%2Fb" in raised.value.message
    assert raised.value.failure()["exception_class"] == "SourceTransientError"
    assert "retrying" in caplog.text
    assert FAKE_TOKEN not in caplog.text


def test_backoff_is_capped(fault: FaultServer) -> None:
    fault.routes["/api/v4/version"] = [Answer(503, b"{}")]
    sleeps = Sleeps()
    with pytest.raises(SourceTransientError):
        client_for(fault, sleeps, retries=8, backoff=1.0).version()
    assert len(sleeps.delays) == 8
    assert max(sleeps.delays) <= 30.0
    assert sleeps.delays[-1] >= 15.0  # 2**7 s capped to 30 s, jittered down by at most half


def test_a_slow_answer_is_retried_then_given_up(fault: FaultServer) -> None:
    fault.routes["/api/v4/version"] = [Answer(200, VERSION, delay=5.0)]
    sleeps = Sleeps()
    with pytest.raises(SourceTransientError) as raised:
        client_for(fault, sleeps, timeout=1.0, retries=1).version()
    assert "timed out after 2 attempts" in raised.value.message
    assert fault.hits("/api/v4/version") == 2


def test_connection_refused_is_unreachable() -> None:
    sleeps = Sleeps()
    client = SourceClient(
        f"http://127.0.0.1:{free_port()}", FAKE_TOKEN, retries=3, backoff=0.01, sleep=sleeps
    )
    with pytest.raises(SourceUnreachable) as raised:
        client.version()
    assert sleeps.delays == []
    assert "cannot be reached" in raised.value.message
    assert FAKE_TOKEN not in str(raised.value)


def test_an_unknown_host_is_unreachable() -> None:
    client = SourceClient("http://source.invalid", FAKE_TOKEN, retries=0)
    with pytest.raises(SourceUnreachable):
        client.version()


def test_bad_json_is_a_protocol_error(fault: FaultServer) -> None:
    fault.routes["/api/v4/version"] = [Answer(200, b"<html>not json</html>")]
    fault.routes["/api/v4/groups/1/descendant_groups"] = [Answer(200, b'{"not": "a list"}')]
    client = client_for(fault, Sleeps())
    with pytest.raises(SourceProtocolError, match="not JSON"):
        client.version()
    with pytest.raises(SourceProtocolError, match="not a list"):
        list(client.descendant_groups(1))


def test_redirects_are_not_followed(fault: FaultServer) -> None:
    fault.routes["/api/v4/version"] = [Answer(302, b"", {"Location": "http://elsewhere.invalid/"})]
    with pytest.raises(SourceProtocolError, match="redirect"):
        client_for(fault, Sleeps()).version()
    assert fault.hits("/api/v4/version") == 1


def test_forbidden_is_an_auth_error(fault: FaultServer) -> None:
    fault.routes["/api/v4/projects/a%2Fb"] = [Answer(403, b'{"message":"403 Forbidden"}')]
    with pytest.raises(SourceAuthError, match="may not read project 'a/b'"):
        client_for(fault, Sleeps()).project("a/b")


def page(items: list[dict[str, Any]]) -> bytes:
    return json.dumps(items).encode()


def test_packages_follow_keyset_links_and_page_headers(fault: FaultServer) -> None:
    packages = "/api/v4/projects/7/packages"
    files = "/api/v4/projects/7/packages/3/package_files"
    fault.routes[packages] = [
        Answer(
            200,
            page([{"id": 3, "name": "one"}]),
            {"Link": '<{url}/api/v4/projects/7/packages?cursor=abc>; rel="next"'},
        ),
        Answer(200, page([{"id": 4, "name": "two"}])),
    ]
    fault.routes[files] = [
        Answer(200, page([{"id": 10, "file_name": "one-1.0.tar.gz"}]), {"X-Next-Page": "2"}),
        Answer(200, page([{"id": 11, "file_name": "one-1.0-py3-none-any.whl"}]), {"X-Next-Page": ""}),
    ]
    client = client_for(fault, Sleeps())
    assert [p["name"] for p in client.pypi_packages(7)] == ["one", "two"]
    assert [f["id"] for f in client.package_files(7, 3)] == [10, 11]
    listed = [path for path, _ in fault.requests]
    first_query = parse_qs(urlsplit(listed[0]).query)
    assert first_query["package_type"] == ["pypi"]
    assert first_query["per_page"] == ["100"]
    assert parse_qs(urlsplit(listed[1]).query) == {"cursor": ["abc"]}
    assert parse_qs(urlsplit(listed[3]).query)["page"] == ["2"]


def test_a_next_link_to_another_host_is_refused(fault: FaultServer) -> None:
    fault.routes["/api/v4/groups/1/members"] = [
        Answer(200, page([{"id": 1}]), {"Link": '<http://attacker.invalid/api/v4/x>; rel="next"'})
    ]
    members = client_for(fault, Sleeps()).group_members(1)
    assert next(members) == {"id": 1}
    with pytest.raises(SourceProtocolError, match="another host"):
        next(members)


@pytest.mark.parametrize(
    "url", ["ftp://example.com", "example.com", "http://", "http://user:pw@example.com", "http://h:99999"]
)
def test_the_source_url_must_be_http_with_a_host(url: str) -> None:
    with pytest.raises(SourceProtocolError):
        SourceClient(url, FAKE_TOKEN)


def test_the_token_is_in_no_log_and_no_message(fault: FaultServer, caplog: pytest.LogCaptureFixture) -> None:
    fault.routes["/api/v4/version"] = [Answer(500, b"{}"), Answer(401, b'{"message":"401 Unauthorized"}')]
    fault.routes["/api/v4/personal_access_tokens/self"] = [Answer(200, b"[]")]
    fault.routes["/api/v4/groups/x"] = [Answer(404, b"{}")]
    fault.routes["/api/v4/users/5"] = [Answer(200, b"{", delay=1.0)]
    messages: list[str] = []
    client = client_for(fault, Sleeps(), timeout=0.2, retries=1)
    with caplog.at_level(logging.DEBUG):
        for call in (
            client.version,
            client.check_token,
            lambda: client.group("x"),
            lambda: client.user(5),
            lambda: client.repository_url({"http_url_to_repo": "ftp://x"}),
        ):
            with pytest.raises(SourceError) as raised:
                call()
            messages += [str(raised.value), repr(raised.value), json.dumps(raised.value.failure())]
    messages.append(repr(client))
    assert len(messages) == 16
    assert all(FAKE_TOKEN not in message for message in messages)
    assert FAKE_TOKEN not in caplog.text
    assert all(FAKE_TOKEN not in path for path, _ in fault.requests)
