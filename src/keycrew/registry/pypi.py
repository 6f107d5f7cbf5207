"""The PyPI package registry over HTTP: what twine uploads to and pip installs from.

Routes (under /api/v4, GitLab's shapes): ``POST /projects/:id/packages/pypi`` (twine's
multipart upload), ``GET .../pypi/simple`` and ``.../pypi/simple/<name>`` (PEP 503 pages), and
``GET .../pypi/files/<sha256>/<file name>`` (the file). Credentials come as HTTP Basic — a
personal, project, group or service-account token with any username (``__token__`` by
convention), or a deploy token with its own username — or as a PRIVATE-TOKEN / Bearer access
token. A 401 always carries ``WWW-Authenticate: Basic`` so that pip and twine retry with
credentials. Failed authentications count towards the per-IP ban of ``Runtime.auth_throttle``.

An upload is checked before its body is read, streamed to a staging file (size limit, SHA-256)
without holding a database transaction, then recorded in one short transaction that checks the
credential again.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, cast

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from keycrew.bootstrap import Runtime
from keycrew.context import Ctx
from keycrew.errors import (
    BadParameter,
    Invalid,
    MissingParameter,
    Unauthenticated,
)
from keycrew.namespaces.models import Project
from keycrew.packages import pypi
from keycrew.packages.storage import PackageStore, StagedFile
from keycrew.tokens.basic import ANONYMOUS, Credential, authenticate_basic, decode_basic
from keycrew.tokens.scopes import Ability

REALM = 'Basic realm="keycrew"'
BASE = "/projects/{project_ref}/packages/pypi"
# Room for the form fields around the file (twine sends the long description, classifiers...).
FIELDS_LIMIT = 1024 * 1024
# File data is written to disk in pieces of about this size, off the event loop.
WRITE_BATCH = 1024 * 1024
# Bounds on the multipart structure, whatever python-multipart's own: the headers of one part
# (their bytes and their number) and the parts of a form (twine sends about thirty).
PART_HEADERS_LIMIT = 8 * 1024
PART_HEADER_COUNT = 16
PARTS_LIMIT = 1000
# The form fields twine sends that the registry reads; every other one is ignored.
KEPT_FIELDS = (
    "name",
    "version",
    "sha256_digest",
    "md5_digest",
    "requires_python",
    "metadata_version",
    "summary",
)
PROTECT_HEADERS = {"Cache-Control": "private, no-store"}


class TooManyFailures(Exception):
    """The client's IP is banned after too many failed authentications."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too many failed authentication attempts from this IP")
        self.retry_after = retry_after


def error_response(exc: Unauthenticated | TooManyFailures) -> JSONResponse:
    """The PyPI routes' own answers: a 401 that asks pip and twine for credentials, and a banned IP."""
    match exc:
        case TooManyFailures():
            # 429 with Retry-After, as the git and container registry adapters answer a banned IP.
            return JSONResponse(
                {"message": "429 Too Many Requests - Too many failed authentication attempts from this IP"},
                status_code=429,
                headers={"Retry-After": str(exc.retry_after)},
            )
    return JSONResponse({"message": "401 Unauthorized"}, status_code=401, headers={"WWW-Authenticate": REALM})


class PypiRoute(APIRoute):
    """Answers a missing credential and a banned IP in a PyPI route (dependencies included) as
    pip and twine expect; every other domain error goes on to the application's handler, which
    gives GitLab's status and body (api/errors.py), as for the rest of the API."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (Unauthenticated, TooManyFailures) as exc:
                return error_response(exc)

        return guarded


router = APIRouter(route_class=PypiRoute, tags=["packages_pypi"])


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _presented(request: Request) -> tuple[str, str] | None:
    """(username, password) from Basic, or ("__token__", token) from PRIVATE-TOKEN / Bearer."""
    authorization = request.headers.get("authorization", "")
    basic = decode_basic(authorization)
    if basic is not None:
        return basic
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return "__token__", value.strip()
    private = request.headers.get("private-token", "").strip()
    if private:
        return "__token__", private
    return None


def authenticate(runtime: Runtime, db: Session, request: Request) -> Credential:
    """The request's credential (ANONYMOUS without one); failures count towards the IP ban."""
    ip = _client_ip(request)
    try:
        presented = _presented(request)
        if presented is None:
            return ANONYMOUS
        retry_after = runtime.auth_throttle.retry_after(ip)
        if retry_after:
            raise TooManyFailures(retry_after)
        credential = authenticate_basic(
            db,
            runtime.instance.secret_key,
            presented[0],
            presented[1],
            runtime.clock.now().date(),
            password_auth_enabled=False,  # packages take tokens, never passwords (as GitLab)
            instance_prefix=runtime.instance.token_prefix,
        )
    except Unauthenticated:
        runtime.auth_throttle.failed(ip)
        raise
    if credential.token is not None and runtime.usage is not None:
        runtime.usage.note(credential.token.id, ip)
    return credential


@contextmanager
def session(runtime: Runtime, request: Request, *, write: bool = False) -> Iterator[tuple[Ctx, Credential]]:
    """One session and transaction with the authenticated actor, committed when the block ends."""
    with runtime.sessions() as db:
        if not write:
            # Readers on SQLite start DEFERRED so they never queue behind writers.
            db.connection(execution_options={"sqlite_begin": "DEFERRED"})
        try:
            credential = authenticate(runtime, db, request)
            yield runtime.ctx(db, pypi.actor_for(credential, _client_ip(request))), credential
            db.commit()
        except BaseException:
            db.rollback()
            raise


def _store(runtime: Runtime) -> PackageStore:
    return PackageStore(runtime.instance.packages_dir or (runtime.settings.data_dir / "packages").resolve())


def _page(title: str, links: list[str]) -> HTMLResponse:
    body = "\n".join(
        [
            "<!DOCTYPE html>",
            "<html>",
            "  <head>",
            '    <meta name="pypi:repository-version" content="1.0">',
            f"    <title>Links for {html.escape(title)}</title>",
            "  </head>",
            "  <body>",
            f"    <h1>Links for {html.escape(title)}</h1>",
            *(f"    {link}<br>" for link in links),
            "  </body>",
            "</html>",
            "",
        ]
    )
    return HTMLResponse(body, headers=PROTECT_HEADERS)


def _index_page(request: Request, project: Project, entries: list[pypi.IndexEntry]) -> HTMLResponse:
    links = [
        '<a href="{}">{}</a>'.format(
            html.escape(
                str(
                    request.url_for(
                        "pypi_simple_package", project_ref=project.id, package_name=e.normalized_name
                    )
                )
            ),
            html.escape(e.name),
        )
        for e in entries
    ]
    return _page(project.name, links)


@router.get(BASE + "/simple", name="pypi_simple_index")
def simple_index(request: Request, project_ref: str) -> HTMLResponse:
    """PEP 503 root page: one link per package of the project."""
    runtime = _runtime(request)
    with session(runtime, request) as (ctx, credential):
        project = pypi.authorized_project(ctx, credential, project_ref, Ability.READ_PACKAGE)
        entries = pypi.pypi_index(ctx, project)
    return _index_page(request, project, entries)


@router.get(BASE + "/simple/{package_name:path}", name="pypi_simple_package")
def simple_package(request: Request, project_ref: str, package_name: str) -> HTMLResponse:
    """PEP 503 project page: every file of every version, with its SHA-256 and Requires-Python."""
    runtime = _runtime(request)
    name = package_name.strip("/")
    with session(runtime, request) as (ctx, credential):
        project = pypi.authorized_project(ctx, credential, project_ref, Ability.READ_PACKAGE)
        if not name:
            entries = pypi.pypi_index(ctx, project)
            return _index_page(request, project, entries)
        display_name, files = pypi.pypi_package_files(ctx, project, name)
    links = []
    for listed in files:
        url = request.url_for(
            "pypi_download", project_ref=project.id, sha256=listed.sha256, file_name=listed.file_name
        )
        href = html.escape(f"{url}#sha256={listed.sha256}")
        requires = html.escape(listed.requires_python)
        links.append(
            f'<a href="{href}" data-requires-python="{requires}">{html.escape(listed.file_name)}</a>'
        )
    return _page(display_name, links)


@router.api_route(BASE + "/files/{sha256}/{file_name}", methods=["GET", "HEAD"], name="pypi_download")
def download(request: Request, project_ref: str, sha256: str, file_name: str) -> FileResponse:
    """The file itself, streamed from disk."""
    runtime = _runtime(request)
    with session(runtime, request) as (ctx, credential):
        project = pypi.authorized_project(ctx, credential, project_ref, Ability.READ_PACKAGE)
        found = pypi.pypi_download(ctx, _store(runtime), project, sha256, file_name)
    return FileResponse(
        found.path,
        media_type="application/octet-stream",
        filename=found.file_name,
        headers=PROTECT_HEADERS,
    )


class FormReader:
    """python-multipart callbacks collecting twine's form: small fields in memory, the ``content``
    file's bytes handed out in batches (``take``) to be written to the staging file."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.file_name: str | None = None
        self.ended = False
        self._field_bytes = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._header_bytes = 0
        self._parts = 0
        self._name: str | None = None
        self._in_file = False
        self._value = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    @property
    def pending_size(self) -> int:
        return self._pending_size

    def take(self) -> bytes:
        data = b"".join(self._pending)
        self._pending, self._pending_size = [], 0
        return data

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > PARTS_LIMIT:
            raise BadParameter("The request body has too many parts")
        self._headers, self._name, self._in_file, self._value = {}, None, False, bytearray()
        self._header_bytes = 0

    def _count_header(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > PART_HEADERS_LIMIT:
            raise BadParameter("The headers of a part are too large")

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if len(self._headers) >= PART_HEADER_COUNT:
            raise BadParameter("A part has too many headers")
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if self._name == "content" and filename is not None:
            if self.file_name is not None:
                raise BadParameter("content is invalid")
            self.file_name = filename.decode("utf-8", "replace")
            self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pending.append(bytes(data[start:end]))
            self._pending_size += end - start
            return
        self._field_bytes += end - start
        if self._field_bytes > FIELDS_LIMIT:
            raise Invalid("Request fields are too large")
        if self._name in KEPT_FIELDS:
            self._value += data[start:end]

    def _part_end(self) -> None:
        if not self._in_file and self._name in KEPT_FIELDS and self._name not in self.fields:
            value = self._value.decode("utf-8", "replace")
            if "\x00" in value:
                raise BadParameter(f"{self._name} is invalid")
            self.fields[self._name] = value

    def _end(self) -> None:
        self.ended = True


async def receive_form(request: Request, staged: StagedFile) -> pypi.PypiUpload:
    """Stream the multipart body: the ``content`` file into ``staged``, the fields into memory."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    reader = FormReader()
    if content_type == b"multipart/form-data" and options.get(b"boundary"):
        try:
            parser = MultipartParser(options[b"boundary"], cast(Any, reader.callbacks()))
        except FormParserError:  # a boundary python-multipart refuses (too long)
            raise BadParameter("The request body is not valid multipart/form-data") from None
        try:
            async for chunk in request.stream():
                parser.write(chunk)
                if reader.pending_size >= WRITE_BATCH:
                    await run_in_threadpool(staged.write, reader.take())
            parser.finalize()
        except MultipartParseError:
            raise BadParameter("The request body is not valid multipart/form-data") from None
        except ClientDisconnect:
            raise BadParameter("The request body ended early") from None
        if reader.pending_size:
            await run_in_threadpool(staged.write, reader.take())
        if not reader.ended:
            raise BadParameter("The request body ended early")
    missing = [
        f"{field} is missing"
        for field, present in (
            ("content", reader.file_name is not None),
            ("name", bool(reader.fields.get("name"))),
            ("version", bool(reader.fields.get("version"))),
        )
        if not present
    ]
    if missing:
        raise MissingParameter(", ".join(missing))
    fields = reader.fields
    assert reader.file_name is not None
    return pypi.PypiUpload(
        name=fields["name"],
        version=fields["version"],
        file_name=reader.file_name,
        sha256_digest=fields.get("sha256_digest") or None,
        md5_digest=fields.get("md5_digest") or None,
        requires_python=fields.get("requires_python"),
        metadata_version=fields.get("metadata_version"),
        summary=fields.get("summary"),
    )


def _check_upload_allowed(runtime: Runtime, request: Request, project_ref: str) -> None:
    with session(runtime, request) as (ctx, credential):
        pypi.authorized_project(ctx, credential, project_ref, Ability.CREATE_PACKAGE)


def _record_upload(
    runtime: Runtime, request: Request, project_ref: str, upload: pypi.PypiUpload, staged: StagedFile
) -> None:
    store = _store(runtime)
    # The placement wraps the commit: if the transaction fails, the placed file goes too.
    with store.placement() as placement, session(runtime, request, write=True) as (ctx, credential):
        pypi.upload_pypi_file(ctx, credential, project_ref, upload, staged, store, placement)


@router.post(BASE, status_code=201, name="pypi_upload")
async def upload(request: Request, project_ref: str) -> JSONResponse:
    """twine upload: the credential is checked before the body is read."""
    runtime = _runtime(request)
    await run_in_threadpool(_check_upload_allowed, runtime, request, project_ref)
    max_size = runtime.settings.packages_max_file_size
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_size + FIELDS_LIMIT:
        raise Invalid("File is too large")
    with await run_in_threadpool(_store(runtime).stage, max_size) as staged:
        form = await receive_form(request, staged)
        await run_in_threadpool(_record_upload, runtime, request, project_ref, form, staged)
    return JSONResponse({"message": "201 Created"}, status_code=201)
