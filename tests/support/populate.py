"""A direct-transfer source populated through its public clients only (python-gitlab, git, twine),
and what an instance shows of a group tree through its API, so that a source and the destination
it was imported into can be compared as a user of both would compare them.

Plain code, no fixtures: tests/functional/test_direct_transfer_proof.py starts the servers.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gitlab

from tests.functional.test_pypi import _client_env, make_wheel, twine_upload
from tests.support.git import Git, remote_url
from tests.support.live import Factory, LiveServer, uid

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
PACKAGE_VERSION = "1.2.3"


@dataclass
class Package:
    """The PyPI package uploaded to a source project: its name, version, file and digest."""

    name: str
    version: str
    filename: str
    sha256: str
    project: str


@dataclass
class Populated:
    """What was put on the source: the top group's path, the people (``carol`` deleted since, her
    records on the source's Ghost User), the bot, the service account and the package."""

    server: LiveServer
    top: str
    people: dict[str, dict[str, Any]]
    bot: dict[str, Any]
    service_account: dict[str, Any]
    package: Package | None
    projects: list[str] = field(default_factory=list)


# -- populating --------------------------------------------------------------------------------------


def _person(factory: Factory, name: str) -> tuple[dict[str, Any], str]:
    """A human with an ``api`` token and a recognisable display name."""
    return factory.user_with_token(["api"], name=f"{name.title()} {uid('')}")


def _issue(gl: gitlab.Gitlab, project_id: int, **attrs: Any) -> Any:
    """An issue created with ``gl``'s token (its author is whoever holds it)."""
    close = attrs.pop("closed", False)
    issue = gl.projects.get(project_id, lazy=True).issues.create(attrs)
    if close:
        issue.state_event = "close"
        issue.save()
    return issue


def _note(gl: gitlab.Gitlab, project_id: int, iid: int, body: str) -> None:
    gl.projects.get(project_id, lazy=True).issues.get(iid, lazy=True).notes.create({"body": body})


def push_repository(server: LiveServer, tmp: Path, full_path: str) -> dict[str, str]:
    """Two branches and a tag pushed with the real git as root: the refs the source now has."""
    git = Git(tmp / uid("git"))
    git.tmp.mkdir(parents=True)
    repo = git.new_repo()
    git.commit(repo, "README.md", f"# {full_path}\n")
    git.commit(repo, "main.py", "print('hello')\n")
    git.run("tag", "-a", "v1.0", "-m", "first release", cwd=repo)
    git.run("checkout", "--quiet", "-b", "feature", cwd=repo)
    git.commit(repo, "feature.py", "FEATURE = True\n")
    url = remote_url(server.url, full_path, "root", server.root_token)
    pushed = git.push(repo, url, "refs/heads/main", "refs/heads/feature", "refs/tags/v1.0")
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    return ls_remote(tmp, server.url, full_path, server.root_token)


def ls_remote(tmp: Path, base_url: str, full_path: str, token: str) -> dict[str, str]:
    """``git ls-remote`` of a project as root, with ``token``: {ref: object id}."""
    listed = Git(tmp).run("ls-remote", remote_url(base_url, full_path, "root", token))
    refs: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        sha, ref = line.split("\t")
        refs[ref] = sha
    return refs


def upload_package(server: LiveServer, tmp: Path, project: Any) -> Package:
    """A wheel built offline and uploaded with twine to the project's PyPI registry."""
    dist = tmp / uid("dist")
    dist.mkdir(parents=True)
    name = uid("kcpkg")
    wheel = make_wheel(dist, name, PACKAGE_VERSION)
    done = twine_upload(server, project.id, "__token__", server.root_token, wheel)
    assert done.returncode == 0, done.stdout + done.stderr
    return Package(
        name, PACKAGE_VERSION, wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest(), project.path
    )


def populate(server: LiveServer, tmp: Path) -> Populated:
    """The issue's source: a top group with a subgroup and a sub-subgroup, a project in the top
    group (with a repository and a PyPI package) and one in the subgroup (with a repository),
    two humans at different levels, a project bot and a service account as members, open, closed
    and confidential issues and notes by several people, and one person deleted afterwards."""
    factory = Factory(server)
    gl = server.gl()
    top_path = uid("top")
    top = gl.groups.create({"name": f"Top {top_path}", "path": top_path, "description": "the top"})
    sub = gl.groups.create({"name": "Sub", "path": "sub", "parent_id": top.id})
    gl.groups.create({"name": "Leaf", "path": "leaf", "parent_id": sub.id})
    app = gl.projects.create({"name": "App", "path": "app", "namespace_id": top.id, "description": "the app"})
    lib = gl.projects.create({"name": "Lib", "path": "lib", "namespace_id": sub.id})

    alice, alice_token = _person(factory, "alice")
    bob, bob_token = _person(factory, "bob")
    carol, carol_token = _person(factory, "carol")
    top.members.create({"user_id": alice["id"], "access_level": MAINTAINER})
    sub.members.create({"user_id": bob["id"], "access_level": REPORTER})
    lib.members.create({"user_id": bob["id"], "access_level": DEVELOPER})
    app.members.create({"user_id": bob["id"], "access_level": REPORTER})
    top.members.create({"user_id": carol["id"], "access_level": DEVELOPER})
    bot_token = app.access_tokens.create({"name": "deploy-bot", "scopes": ["api"], "access_level": DEVELOPER})
    bot = gl.users.get(bot_token.user_id).asdict()
    made = server.root("POST", "/service_accounts", json={})
    assert made.status_code == 201, made.text
    account = dict(made.json())
    top.members.create({"user_id": account["id"], "access_level": REPORTER})

    as_alice, as_bob, as_carol = (server.gl(t) for t in (alice_token, bob_token, carol_token))
    for project in (app, lib):
        first = _issue(as_alice, project.id, title="Crash on start", description="It *crashes*.")
        second = _issue(as_bob, project.id, title="Secret leak", description="hush", confidential=True)
        third = _issue(gl, project.id, title="Old chore", description="done long ago", closed=True)
        _note(as_bob, project.id, first.iid, "I see it too")
        _note(as_alice, project.id, first.iid, "Fixed on `main`")
        _note(gl, project.id, second.iid, "Looking into it")
        _note(as_carol, project.id, third.iid, "carol was here")
        _issue(as_carol, project.id, title="Carol's idea", description="by someone who leaves")
    _note(server.gl(bot_token.token), app.id, 1, "a note by the bot")

    refs_app = push_repository(server, tmp, app.path_with_namespace)
    refs_lib = push_repository(server, tmp, lib.path_with_namespace)
    assert set(refs_app) >= {"refs/heads/main", "refs/heads/feature", "refs/tags/v1.0"}, refs_app
    assert set(refs_lib) >= {"refs/heads/main", "refs/heads/feature", "refs/tags/v1.0"}, refs_lib
    package = upload_package(server, tmp, app)

    # Carol leaves: her issues and notes move to the source's Ghost User.
    gl.users.delete(carol["id"])
    return Populated(
        server=server,
        top=top.full_path,
        people={"alice": alice, "bob": bob, "carol": carol},
        bot=bot,
        service_account=account,
        package=package,
        projects=["app", "sub/lib"],
    )


def populate_many_issues(server: LiveServer, count: int, notes_every: int = 50) -> Populated:
    """A top group with one project holding ``count`` issues (a note on every ``notes_every``-th),
    written by root through python-gitlab: the kill -9 test's source."""
    gl = server.gl()
    top_path = uid("big")
    top = gl.groups.create({"name": top_path, "path": top_path})
    project = gl.projects.create({"name": "Big", "path": "big", "namespace_id": top.id})
    issues = gl.projects.get(project.id, lazy=True).issues
    for n in range(1, count + 1):
        issue = issues.create({"title": f"issue {n}", "description": f"body {n}"})
        if n % notes_every == 0:
            issue.notes.create({"body": f"note on {n}"})
    return Populated(server, top.full_path, {}, {}, {}, None, ["big"])


# -- what an instance shows --------------------------------------------------------------------------


@dataclass
class Tree:
    """A group tree as one instance's API shows it, paths relative to its top group; authors and
    members by user id."""

    top: dict[str, Any]
    groups: dict[str, dict[str, Any]]
    projects: dict[str, dict[str, Any]]
    # {project: [{iid, title, state, confidential, description, author}]}
    issues: dict[str, list[dict[str, Any]]]
    # {project: {iid: [(body, author id)]}} (system notes left out)
    notes: dict[str, dict[int, list[tuple[str, int]]]]
    # {"group:<rel>" or "project:<rel>": {user id: access level}} (direct members only)
    members: dict[str, dict[int, int]]


def _relative(top: str, full_path: str) -> str:
    return "" if full_path == top else full_path.removeprefix(top + "/")


def read_tree(server: LiveServer, top_full_path: str, token: str | None = None) -> Tree:
    """Everything the comparison needs, read with python-gitlab (as an admin: every record)."""
    gl = server.gl(token)
    top = gl.groups.get(top_full_path)
    groups = {"": top.asdict()} | {
        _relative(top.full_path, g.full_path): g.asdict() for g in top.descendant_groups.list(all=True)
    }
    projects = {
        _relative(top.full_path, p.path_with_namespace): gl.projects.get(p.id).asdict()
        for p in top.projects.list(all=True, include_subgroups=True)
    }
    issues: dict[str, list[dict[str, Any]]] = {}
    notes: dict[str, dict[int, list[tuple[str, int]]]] = {}
    members: dict[str, dict[int, int]] = {}
    for rel, group in groups.items():
        listed = gl.groups.get(group["id"], lazy=True).members.list(all=True)
        members[f"group:{rel}"] = {m.id: m.access_level for m in listed}
    for rel, project in projects.items():
        handle = gl.projects.get(project["id"], lazy=True)
        members[f"project:{rel}"] = {m.id: m.access_level for m in handle.members.list(all=True)}
        found = handle.issues.list(all=True, scope="all", state="all", order_by="created_at", sort="asc")
        issues[rel] = sorted(
            (
                {
                    "iid": i.iid,
                    "title": i.title,
                    "state": i.state,
                    "confidential": i.confidential,
                    "description": i.description,
                    "author": i.author["id"],
                }
                for i in found
            ),
            key=lambda i: int(i["iid"]),
        )
        notes[rel] = {
            i.iid: [
                (n.body, n.author["id"])
                for n in handle.issues.get(i.iid, lazy=True).notes.list(
                    all=True, sort="asc", order_by="created_at"
                )
                if not n.system
            ]
            for i in found
        }
    return Tree(groups[""], groups, projects, issues, notes, members)


def user_ids(tree: Tree) -> set[int]:
    """Every user the tree mentions: authors and members."""
    found = {i["author"] for issues in tree.issues.values() for i in issues}
    found |= {a for per_issue in tree.notes.values() for notes in per_issue.values() for _, a in notes}
    return found | {u for levels in tree.members.values() for u in levels}


def users(server: LiveServer, ids: set[int]) -> dict[int, dict[str, Any]]:
    """Those users as an admin sees them (``user_type`` included)."""
    gl = server.gl()
    return {i: gl.users.get(i).asdict() for i in sorted(ids)}


def placeholder_username(source_username: str) -> re.Pattern[str]:
    """GitLab's placeholder usernames for a source username: its letters and digits,
    ``_placeholder_``, a base-36 checksum, and a counter when that name was taken."""
    kept = "".join(c for c in source_username if c.isascii() and c.isalnum())
    return re.compile(rf"{re.escape(kept or 'gitlab_migration')}_placeholder_[0-9a-z]+")


def pip_download(url: str, project_id: int, token: str, name: str, version: str, target: Path) -> Path:
    """``pip download`` of one version from a project's PyPI index, with a token: the file."""
    host = url.removeprefix("http://")
    target.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-input",
        "--dest",
        str(target),
        "--index-url",
        f"http://__token__:{token}@{host}/api/v4/projects/{project_id}/packages/pypi/simple",
        f"{name}=={version}",
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, env=_client_env(target.parent), timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (found,) = list(target.glob("*.whl"))
    return found


# -- a gate between the destination and the source ---------------------------------------------------


class GatedProxy:
    """A real HTTP proxy in front of a source that holds the requests ``hold`` picks until
    ``release()``: the destination's import then stops at a known point (say, before the second
    page of a project's issues), whatever the machine's speed, and a test acts while it waits.

    Pagination links the source gives are rewritten to the proxy's address, so that a client
    following them stays behind the gate; nothing is logged (the requests carry the source token)."""

    def __init__(self, target: str, hold: Callable[[str, str], bool]) -> None:
        self.target = urlsplit(target)
        self.hold = hold
        self.released = threading.Event()
        self.held = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> GatedProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()

    def release(self) -> None:
        self.released.set()

    def wait_held(self, timeout: float) -> None:
        """Until a request is held (bounded)."""
        deadline = time.monotonic() + timeout
        while self.held == 0:
            assert time.monotonic() < deadline, f"no request reached the gate within {timeout} s"
            time.sleep(0.05)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the requests carry the source's token."""

            def _body(self) -> bytes | None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _forward(self) -> None:
                body = self._body()
                if proxy.hold(self.command, self.path) and not proxy.released.is_set():
                    with proxy._lock:
                        proxy.held += 1
                    proxy.released.wait(timeout=300)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "transfer-encoding", "connection", "content-length")
                }
                connection = http.client.HTTPConnection(proxy.target.netloc, timeout=120)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    answer = connection.getresponse()
                    data = answer.read()
                    source = f"{proxy.target.scheme}://{proxy.target.netloc}"
                    with contextlib.suppress(OSError):
                        self.send_response(answer.status, answer.reason)
                        for key, value in answer.getheaders():
                            if key.lower() in ("transfer-encoding", "connection", "content-length"):
                                continue
                            if key.lower() == "link":
                                value = value.replace(source, proxy.url)
                            self.send_header(key, value)
                        self.send_header("Content-Length", str(len(data)))
                        self.send_header("Connection", "close")
                        self.end_headers()
                        if self.command != "HEAD":
                            self.wfile.write(data)
                finally:
                    connection.close()

            def do_GET(self) -> None:
                self._forward()

            def do_HEAD(self) -> None:
                self._forward()

            def do_POST(self) -> None:
                self._forward()

        return Handler


def later_issue_pages(project_id: int) -> Callable[[str, str], bool]:
    """A gate rule: the second and later pages of a project's issues (by page number, or by a
    keyset cursor when the next-page link carries one)."""
    pattern = re.compile(rf"^/api/v4/projects/{project_id}/issues(\?|$)")

    def hold(method: str, path: str) -> bool:
        if method != "GET" or not pattern.match(path):
            return False
        query = parse_qs(urlsplit(path).query)
        page = query.get("page", ["1"])[0]
        return not page.isdigit() or int(page) > 1 or bool({"cursor", "id_after", "id_before"} & set(query))

    return hold
