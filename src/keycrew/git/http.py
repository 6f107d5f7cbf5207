"""Git smart HTTP in front of the web application: `git http-backend` as a streaming CGI.

Only git's own requests are taken; everything else goes on to the wrapped application::

    GET  /<full path>[.git]/info/refs?service=git-upload-pack|git-receive-pack
    POST /<full path>[.git]/git-upload-pack
    POST /<full path>[.git]/git-receive-pack

Each request is authorised (repos/git_access.py: HTTP Basic, the project's visibility, scopes,
roles), then runs one `git http-backend` whose stdin is fed from the request body as it arrives
and whose stdout is sent on as it is produced, so a push or clone of any size holds only a few
buffers in this process. A push runs the protected-branch hook with what keycrew decided, and
its audit event is written once git has updated the refs, before the response ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread

from keycrew.bootstrap import Runtime
from keycrew.context import Actor
from keycrew.errors import Forbidden, NotFound, Unauthenticated
from keycrew.git.process import Child, spawn
from keycrew.repos import hooks, storage
from keycrew.repos.git_access import (
    ACCESS_DENIED,
    PROJECT_NOT_FOUND,
    GitAccess,
    GitService,
    authorize_git,
    describe_push,
    note_deploy_token_use,
    note_user_activity,
    parse_push_log,
    record_push,
)
from keycrew.tokens.basic import PasswordRejected, count_failed_password, decode_basic

log = logging.getLogger("keycrew.git")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHUNK = 64 * 1024
# git's answer is passed on as it comes, in pieces of what is ready, up to RESPONSE_CHUNK; while
# the client is slower than git, up to twice that waits here (then git is paused), so pieces grow
# and the per-piece cost falls. A request holds at most a few such buffers, whatever its size.
RESPONSE_CHUNK = 256 * 1024
MAX_CGI_HEADER = 64 * 1024
REALM = 'Basic realm="keycrew"'
TOO_MANY = "Too many failed authentication attempts from this address. Try again later."
# What a client may put in Git-Protocol (e.g. "version=2"): it becomes GIT_PROTOCOL for git.
GIT_PROTOCOL = re.compile(r"[A-Za-z0-9=:._-]{1,256}")
SERVICES = {s.value: s for s in GitService}


@dataclass(frozen=True)
class GitRequest:
    """A request the bridge serves: the repository's full path, the service, and git's own path."""

    full_path: str
    service: GitService
    suffix: str  # "info/refs", "git-upload-pack" or "git-receive-pack"


def match(method: str, path: str, query_string: bytes) -> GitRequest | None:
    """The git request ``method path?query`` is, or None for anything else."""
    if method == "GET" and path.endswith("/info/refs"):
        values = parse_qs(query_string.decode("latin-1")).get("service", [])
        service = SERVICES.get(values[0]) if len(values) == 1 else None
        if service is None:
            return None  # dumb HTTP is not served
        repo, suffix = path[: -len("/info/refs")], "info/refs"
    elif method == "POST" and path.endswith(("/git-upload-pack", "/git-receive-pack")):
        repo, _, suffix = path.rpartition("/")
        service = SERVICES[suffix]
    else:
        return None
    repo = repo.strip("/")
    if repo.endswith(".git"):
        repo = repo[: -len(".git")]
    if not repo:
        return None
    return GitRequest(repo, service, suffix)


def basic_credentials(header: bytes | None) -> tuple[str, str] | None:
    """(username, password) from an Authorization: Basic header; ("", "") if malformed; None if absent."""
    if not header:
        return None
    try:
        return decode_basic(header.decode("latin-1")) or ("", "")
    except Unauthenticated:
        return ("", "")


async def respond(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = (message + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GitHTTP:
    """ASGI middleware: serves git smart HTTP, passes every other request to ``app``."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        root = runtime.instance.repositories_dir
        assert root is not None, "the runtime names a repositories directory"
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        hooks.install(root)
        self.base_env = {**storage.git_environment(), **hooks.config_environment(root)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = match(scope["method"], scope["path"], scope.get("query_string", b""))
            if request is not None:
                scope["keycrew.route"] = "git"  # the request metrics' label (app.RequestMetrics)
                await self.serve(request, scope, receive, send)
                return
        await self.app(scope, receive, send)

    # --- authorisation ------------------------------------------------------------------------

    def _authorize(
        self, request: GitRequest, credentials: tuple[str, str] | None, ip: str | None
    ) -> GitAccess:
        username, password = credentials if credentials is not None else (None, None)
        runtime = self.runtime
        try:
            with runtime.sessions() as db:
                # A reader: on SQLite it must not queue behind (or block) writers.
                db.connection(execution_options={"sqlite_begin": "DEFERRED"})
                ctx = runtime.ctx(db, Actor(user=None, ip=ip, via="git"))
                access = authorize_git(ctx, self.root, username, password, request.full_path, request.service)
                db.commit()
        except PasswordRejected as failure:
            # A wrong password counts toward its account's lock, as on the sign-in form.
            with runtime.sessions() as db, db.begin():
                count_failed_password(runtime.ctx(db, Actor(user=None, ip=ip, via="git")), failure)
            raise
        if access.deploy_token_use_due is not None:
            try:
                with runtime.sessions() as db, db.begin():
                    note_deploy_token_use(runtime.ctx(db, access.actor), access.deploy_token_use_due)
            except Exception:
                log.warning("could not record a deploy token's use", exc_info=True)
        if access.activity_due is not None:
            try:
                with runtime.sessions() as db, db.begin():
                    note_user_activity(runtime.ctx(db, access.actor), access.activity_due)
            except Exception:
                log.warning("could not record a user's activity", exc_info=True)
        return access

    def _record_push(self, access: GitAccess, push_log: str) -> None:
        updates = parse_push_log(push_log)
        if not updates:
            return
        payloads = describe_push(self.root, access.project_id, access.default_branch, updates)
        with self.runtime.sessions() as db, db.begin():
            # The actor's user is a detached row from the authorising session: the event takes
            # only its id and username, which is the snapshot it should record.
            record_push(self.runtime.ctx(db, access.actor), access.project_id, updates, payloads)

    async def serve(self, request: GitRequest, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or [])
        client = scope.get("client")
        ip = client[0] if client else None
        credentials = basic_credentials(headers.get(b"authorization"))
        throttle = self.runtime.auth_throttle
        if credentials is not None:
            wait = await throttle.aretry_after(ip)
            if wait:
                await respond(send, 429, TOO_MANY, [(b"retry-after", str(wait).encode())])
                return
        try:
            access = await anyio.to_thread.run_sync(self._authorize, request, credentials, ip)
        except Unauthenticated:
            if credentials is not None:
                await throttle.afailed(ip)
            await respond(send, 401, ACCESS_DENIED, [(b"www-authenticate", REALM.encode())])
            return
        except Forbidden as exc:
            await respond(send, 403, exc.message or "403 Forbidden")
            return
        except NotFound:
            await respond(send, 404, PROJECT_NOT_FOUND)
            return
        user = access.actor.user
        if user is not None or access.deploy_token_id is not None:
            # GitLab's throttle_authenticated_git_http, per user or deploy token, counted once
            # authenticated.
            refused, _headers = await self.runtime.rate_limiter.agit_http(
                None if user is None else user.id, access.deploy_token_id
            )
            if refused is not None:
                rate_headers = [(k.lower().encode(), v.encode()) for k, v in refused.headers.items()]
                await respond(send, 429, "Retry later", rate_headers)
                return
        if access.personal_token_id is not None and self.runtime.usage is not None:
            self.runtime.usage.note(access.personal_token_id, ip)
            self.runtime.usage.exercise(access.personal_token_id, access.service.least_scope, scope["method"])
        await self.run_backend(access, request, scope, headers, receive, send)

    # --- the CGI --------------------------------------------------------------------------------

    def _environment(
        self, access: GitAccess, request: GitRequest, scope: Scope, headers: dict[bytes, bytes]
    ) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(
            GIT_PROJECT_ROOT=str(self.root),
            GIT_HTTP_EXPORT_ALL="1",
            PATH_INFO=f"/{access.repository.name}/{request.suffix}",
            REQUEST_METHOD=scope["method"],
            QUERY_STRING=scope.get("query_string", b"").decode("latin-1"),
            CONTENT_TYPE=headers.get(b"content-type", b"").decode("latin-1"),
            SERVER_PROTOCOL=f"HTTP/{scope.get('http_version', '1.1')}",
            GATEWAY_INTERFACE="CGI/1.1",
        )
        client = scope.get("client")
        if client:
            env["REMOTE_ADDR"] = str(client[0])
        if access.remote_user:
            env["REMOTE_USER"] = access.remote_user
        length = headers.get(b"content-length")
        if length and length.strip().isdigit():
            env["CONTENT_LENGTH"] = length.decode("latin-1").strip()
        encoding = headers.get(b"content-encoding", b"").decode("latin-1").strip().lower()
        if encoding:
            env["HTTP_CONTENT_ENCODING"] = encoding
        protocol = headers.get(b"git-protocol", b"").decode("latin-1").strip()
        if protocol and GIT_PROTOCOL.fullmatch(protocol):
            env["GIT_PROTOCOL"] = protocol
        return env

    async def run_backend(
        self,
        access: GitAccess,
        request: GitRequest,
        scope: Scope,
        headers: dict[bytes, bytes],
        receive: Receive,
        send: Send,
    ) -> None:
        env = self._environment(access, request, scope, headers)
        push_log: Path | None = None
        if access.service is GitService.RECEIVE_PACK and request.suffix != "info/refs":
            fd, name = tempfile.mkstemp(prefix="push-", suffix=".log", dir=self._scratch())
            os.close(fd)
            push_log = Path(name)
            env.update(hooks.push_environment(access.default_branch, access.may_push_protected, push_log))
        try:
            proc = await spawn(["git", "http-backend"], env, limit=RESPONSE_CHUNK)
            await self._exchange(proc, access, push_log, receive, send)
        finally:
            if push_log is not None:
                push_log.unlink(missing_ok=True)

    def _scratch(self) -> Path:
        path = self.root / storage.TMP_DIR
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    async def _exchange(
        self,
        proc: Child,
        access: GitAccess,
        push_log: Path | None,
        receive: Receive,
        send: Send,
    ) -> None:
        # A fetch whose client has gone is stopped; a push that has arrived whole is left to
        # finish, so that git never dies halfway through updating refs.
        stop_on_hangup = access.service is GitService.UPLOAD_PACK
        feeding = asyncio.create_task(_feed(proc, receive, stop_on_hangup))
        errors = asyncio.create_task(_collect_stderr(proc.stderr))
        try:
            status, cgi_headers, rest = await _read_cgi_head(proc.stdout)
            if status is None:
                await proc.wait()
                log.error(
                    "git http-backend gave no response for %s (exit %s): %s",
                    access.full_path,
                    proc.returncode,
                    (await errors).decode(errors="replace").strip(),
                )
                await respond(send, 500, "git http-backend failed")
                return
            await send({"type": "http.response.start", "status": status, "headers": cgi_headers})
            if rest:
                await send({"type": "http.response.body", "body": rest, "more_body": True})
            while chunk := await proc.stdout.read(RESPONSE_CHUNK):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            code = await proc.wait()
            if code != 0:
                log.warning(
                    "git http-backend exited %s for %s: %s",
                    code,
                    access.full_path,
                    (await errors).decode(errors="replace").strip(),
                )
            if push_log is not None and code == 0:
                await self._after_push(access, push_log)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            # The client went away mid-response (uvicorn raises on send): nothing left to tell it.
            log.info("git client disconnected from %s", access.full_path)
        finally:
            feeding.cancel()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            errors.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeding
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await errors

    async def _after_push(self, access: GitAccess, push_log: Path) -> None:
        try:
            text = push_log.read_text()
            await anyio.to_thread.run_sync(self._record_push, access, text)
        except Exception:
            # The refs are updated already; losing the event must not fail the push it describes.
            log.exception("could not record the push to %s", access.full_path)


async def _feed(proc: Child, receive: Receive, stop_on_hangup: bool) -> None:
    """Copy the request body into git's stdin as it arrives (with backpressure) and close it; with
    ``stop_on_hangup``, then stop git if the client goes away before its answer is complete."""
    stdin = proc.stdin
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body = message.get("body", b"")
            if body:
                stdin.write(body)
                await stdin.drain()
            if not message.get("more_body", False):
                # The whole request is in: wait for the client to hang up (or the response to end).
                stdin.close()
                message = await receive()
                break
    except (BrokenPipeError, ConnectionResetError):
        return  # git stopped reading: its own answer says why
    finally:
        with contextlib.suppress(Exception):
            stdin.close()
    if stop_on_hangup and proc.returncode is None:
        log.info("git client went away; stopping git http-backend")
        proc.kill()


async def _collect_stderr(stream: asyncio.StreamReader, keep: int = 16 * 1024) -> bytes:
    """Read git's stderr so it never blocks on a full pipe; keep the last ``keep`` bytes."""
    tail = b""
    while chunk := await stream.read(CHUNK):
        tail = (tail + chunk)[-keep:]
    return tail


async def _read_cgi_head(stdout: asyncio.StreamReader) -> tuple[int | None, list[tuple[bytes, bytes]], bytes]:
    """The CGI response's status and headers, and whatever body bytes came with them."""
    buffer = b""
    while True:
        for separator in (b"\r\n\r\n", b"\n\n"):
            head, sep, rest = buffer.partition(separator)
            if sep:
                return (*_parse_cgi_headers(head), rest)
        if len(buffer) > MAX_CGI_HEADER:
            return None, [], b""
        chunk = await stdout.read(CHUNK)
        if not chunk:
            return None, [], b""
        buffer += chunk


def _parse_cgi_headers(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    status = 200
    headers: list[tuple[bytes, bytes]] = []
    for line in head.splitlines():
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        if name == b"status":
            digits = value.split(b" ", 1)[0]
            status = int(digits) if digits.isdigit() else 500
        else:
            headers.append((name, value))
    return status, headers
