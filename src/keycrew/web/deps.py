"""Per-request plumbing of the web UI: session cookie → actor, one transaction, CSRF, rendering.

Every page takes ``page: Page = page_dep()``; every form handler takes ``page: Page = form_dep()``,
which refuses the request (403) unless it carries the CSRF token of its session and comes from
this site. A form's body is read only after the checks that need none (its origin, a CSRF cookie
to bind a token to, a CSRF header if one is sent) and only up to ``KEYCREW_WEB_FORM_MAX_SIZE``:
a bigger one is refused (413) before it is buffered, whether it declares its length or is chunked.

Like the API's, the dependency opens a session and a transaction, hands the route a ``Ctx`` whose
actor is the signed-in person (``via="web"``, no token scopes), and commits when the
route returns or rolls back when it raises.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Message

from keycrew.bootstrap import Runtime
from keycrew.context import Actor, Ctx
from keycrew.db.text import valid_text
from keycrew.errors import Invalid
from keycrew.identity.admin_mode import session_admin_powers
from keycrew.identity.models import User, UserSession
from keycrew.identity.sign_in import session_user
from keycrew.web import security
from keycrew.web.security import Flash
from keycrew.web.templating import render_template


@dataclass(frozen=True)
class Viewer:
    """Who is signed in, as the page header shows it (a snapshot: usable after the session ends)."""

    id: int
    username: str
    name: str
    admin: bool
    # An admin acting as one (Admin Mode off, or this session in it).
    admin_powers: bool = False
    # The instance asks admins to enter Admin Mode (the header offers to enter or leave it).
    admin_mode: bool = False

    @classmethod
    def of(cls, user: User | None, *, admin_powers: bool = True, admin_mode: bool = False) -> Viewer | None:
        if user is None:
            return None
        return cls(user.id, user.username, user.name, user.admin, user.admin and admin_powers, admin_mode)


class SignInRequired(Exception):
    """The page needs a signed-in person: the UI sends the browser to the sign-in form."""

    def __init__(self, back_to: str) -> None:
        super().__init__(back_to)
        self.back_to = back_to

    def location(self) -> str:
        return sign_in_url(self.back_to)


class AdminModeRequired(SignInRequired):
    """An admin page asked for by an admin whose session is not in Admin Mode: the UI asks for
    the password again, then comes back."""

    def location(self) -> str:
        return "/admin/session/new" + (
            f"?redirect_to={quote(self.back_to, safe='/')}" if self.back_to not in ("", "/") else ""
        )


class CsrfRefused(Exception):
    """A form arrived without the CSRF token of its session, or from another site."""


class FormTooLarge(Exception):
    """A form's body is bigger than the UI accepts: refused (413) without reading the rest."""


class UnstorableText(Exception):
    """A form field (its name or value) holds text that cannot be stored, such as a NUL byte: the
    form is refused (400) before any use case sees it."""


@dataclass
class _Cookie:
    name: str
    value: str | None  # None: delete it
    max_age: int | None = None
    samesite: str = "lax"


@dataclass
class Page:
    request: Request
    ctx: Ctx
    runtime: Runtime
    session: UserSession | None
    session_value: str | None
    csrf_seed: str | None
    flash: Flash | None = None
    viewer: Viewer | None = None
    _cookies: list[_Cookie] = field(default_factory=list)

    # -- who is here --------------------------------------------------------------------------

    @property
    def user(self) -> User | None:
        return self.ctx.actor.user

    def require_user(self) -> User:
        if self.user is None:
            raise SignInRequired(self.here)
        return self.user

    @property
    def here(self) -> str:
        """This page's path and query, to come back to."""
        query = self.request.url.query
        return self.request.url.path + (f"?{query}" if query else "")

    def require_admin_mode(self) -> None:
        """An admin without admin powers (Admin Mode on, not entered) is sent to enter it."""
        user = self.require_user()
        if user.admin and not self.ctx.actor.is_admin:
            raise AdminModeRequired(self.here)

    @property
    def secure(self) -> bool:
        return self.request.url.scheme == "https"

    # -- CSRF and flashes ---------------------------------------------------------------------

    @property
    def binding(self) -> str:
        """What this visitor's CSRF tokens and flashes are bound to."""
        if self.session_value is not None:
            return "session:" + self.session_value
        if self.csrf_seed is None:
            self.csrf_seed = security.new_csrf_seed()
            self._cookies.append(_Cookie(security.CSRF_COOKIE, self.csrf_seed, samesite="strict"))
        return "anonymous:" + self.csrf_seed

    @property
    def csrf(self) -> str:
        return security.csrf_token(self.runtime.instance.secret_key, self.binding)

    def set_session_cookie(self, value: str | None) -> None:
        """After sign-in (a new value) or sign-out (None); the pre-session CSRF seed goes either way."""
        self._cookies.append(_Cookie(security.SESSION_COOKIE, value))
        self._cookies.append(_Cookie(security.CSRF_COOKIE, None))
        self.session_value = value
        self.csrf_seed = None

    # -- responses ----------------------------------------------------------------------------

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        context = {
            "request": self.request,
            "path": self.request.url.path,
            "current_user": self.viewer,
            "csrf_field": security.CSRF_FIELD,
            "csrf": self.csrf,
            "flash": self.flash,
            "today": self.ctx.today(),
            "title": "",
            **values,
        }
        response = HTMLResponse(render_template(template, context), status_code=status)
        self._finish(response)
        return response

    def redirect(self, url: str, flash: Flash | None = None) -> RedirectResponse:
        """303 to ``url`` (a GET), with a flash for the page there."""
        response = RedirectResponse(url, status_code=303)
        if flash is not None:
            sealed = security.seal_flash(self.runtime.instance.secret_key, self.binding, flash)
            self._cookies.append(_Cookie(security.FLASH_COOKIE, sealed, security.FLASH_LIFETIME, "strict"))
        self._finish(response)
        return response

    def notice(self, url: str, message: str) -> RedirectResponse:
        return self.redirect(url, Flash("notice", message))

    def _finish(self, response: Response) -> None:
        response.headers["Cache-Control"] = "no-store"
        response.headers.update(security.SECURITY_HEADERS)
        if self.flash is not None and not any(c.name == security.FLASH_COOKIE for c in self._cookies):
            self._cookies.append(_Cookie(security.FLASH_COOKIE, None))
        for cookie in self._cookies:
            if cookie.value is None:
                response.delete_cookie(cookie.name, path="/", secure=self.secure, httponly=True)
            else:
                response.set_cookie(
                    cookie.name,
                    cookie.value,
                    max_age=cookie.max_age,
                    path="/",
                    secure=self.secure,
                    httponly=True,
                    samesite=cookie.samesite,  # type: ignore[arg-type]
                )
        self._cookies.clear()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """Run a use case so that, if it raises, what it wrote is undone and the page can still
        render the form with the error (the request's transaction goes on)."""
        with self.ctx.db.begin_nested():
            yield


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def sign_in_url(back_to: str) -> str:
    return "/users/sign_in" + (f"?redirect_to={quote(back_to, safe='/')}" if back_to not in ("", "/") else "")


def _same_origin(request: Request) -> bool:
    """A browser names the page a form was sent from; it must be this site (when it says)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.scheme == request.url.scheme and parts.netloc == request.url.netloc


def _bindings(request: Request) -> list[str]:
    """What a CSRF token of this visitor could be bound to, from its cookies alone (the session is
    looked up later, in the request's transaction)."""
    found = []
    if value := request.cookies.get(security.SESSION_COOKIE):
        found.append("session:" + value)
    if seed := request.cookies.get(security.CSRF_COOKIE):
        found.append("anonymous:" + seed)
    return found


def _check_before_body(request: Request, runtime: Runtime) -> None:
    """Refuse a form on what its head says, before its body is read: from another site, without a
    cookie a CSRF token could be bound to, or with a wrong CSRF header (403); declaring a length
    past the cap (413)."""
    bindings = _bindings(request)
    if not _same_origin(request) or not bindings:
        raise CsrfRefused
    header = request.headers.get(security.CSRF_HEADER)
    secret = runtime.instance.secret_key
    if header is not None and not any(security.csrf_valid(secret, b, header) for b in bindings):
        raise CsrfRefused
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > runtime.settings.web_form_max_size:
        raise FormTooLarge


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The body, read up to ``limit`` bytes: past it, FormTooLarge (the rest is never buffered)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise FormTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def form_data(request: Request) -> FormData:
    """The posted form, with repeated fields (checkboxes) kept as lists; read only once the checks
    that need no body passed, and only up to the UI's cap."""
    runtime = runtime_of(request)
    _check_before_body(request, runtime)
    limit = runtime.settings.web_form_max_size
    body = await _bounded_body(request, limit)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    # The UI has no file uploads: a form is fields only, each within the cap.
    form = await Request(request.scope, replay).form(max_files=0, max_fields=1000, max_part_size=limit)
    for name, value in form.multi_items():
        if not valid_text(name) or (isinstance(value, str) and not valid_text(value)):
            raise UnstorableText()
    return FormData(form)


class FormData:
    """Read access to a posted form (the CSRF check has already run)."""

    def __init__(self, form: Any) -> None:
        self._form = form

    def text(self, name: str) -> str:
        value = self._form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def optional(self, name: str) -> str | None:
        return self.text(name) or None

    def values(self, name: str) -> list[str]:
        return [v for v in self._form.getlist(name) if isinstance(v, str) and v]

    def flag(self, name: str) -> bool:
        return self.text(name).lower() in ("1", "true", "on", "yes")


def parse_date(value: str | None, name: str = "expires_at") -> dt.date | None:
    """A date field as a browser sends it (YYYY-MM-DD); empty is None. Raises Invalid otherwise."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Invalid.field(name, "is not a valid date") from None


def _page(request: Request, *, check_csrf: bool, form: FormData | None) -> Iterator[Page]:
    runtime = runtime_of(request)
    value = request.cookies.get(security.SESSION_COOKIE)
    with runtime.sessions() as db:
        if request.method in ("GET", "HEAD") and not value:
            # An anonymous page only reads. A signed-in one may move its session's expiry forward
            # (session_user): on SQLite a reader that turns writer fails if another writer committed
            # since it began, so it takes the write lock up front (IMMEDIATE, the default).
            db.connection(execution_options={"sqlite_begin": "DEFERRED"})
        try:
            ctx = runtime.ctx(db, Actor(user=None, ip=client_ip(request), via="web"))
            found = session_user(ctx, value) if value else None
            session, user = found if found is not None else (None, None)
            powers = session_admin_powers(runtime.instance, session, ctx.now())
            if user is not None:
                ctx.actor = Actor(user=user, ip=client_ip(request), via="web", admin_powers=powers)
            page = Page(
                request,
                ctx,
                runtime,
                session,
                value if session is not None else None,
                request.cookies.get(security.CSRF_COOKIE),
                viewer=Viewer.of(user, admin_powers=powers, admin_mode=runtime.instance.admin_mode),
            )
            if check_csrf:
                posted = form.text(security.CSRF_FIELD) if form is not None else ""
                presented = posted or request.headers.get(security.CSRF_HEADER)
                bound = page.binding if (page.session_value or page.csrf_seed) else None
                secret = runtime.instance.secret_key
                if not _same_origin(request) or not security.csrf_valid(secret, bound, presented):
                    raise CsrfRefused
            elif request.method == "GET":
                page.flash = security.open_flash(
                    runtime.instance.secret_key,
                    page.binding if (page.session_value or page.csrf_seed) else None,
                    request.cookies.get(security.FLASH_COOKIE),
                )
            request.state.web_page = page
            yield page
            db.commit()
        except BaseException:
            db.rollback()
            raise


def _get_page(request: Request) -> Iterator[Page]:
    yield from _page(request, check_csrf=False, form=None)


def _form_page(request: Request, form: FormData = Depends(form_data)) -> Iterator[Page]:
    yield from _page(request, check_csrf=True, form=form)


def page_dep() -> Any:
    return Depends(_get_page, scope="function")


def form_dep() -> Any:
    return Depends(_form_page, scope="function")


def form_dep_data() -> Any:
    return Depends(form_data)


@contextlib.contextmanager
def form_unit(request: Request, form: FormData) -> Iterator[Page]:
    """A form's page and its transaction, opened by the route itself (CSRF checked as by
    ``form_dep``): for a handler that talks to another server between two short units, so that
    no transaction (on SQLite: the write lock) is held while that server answers."""
    yield from _page(request, check_csrf=True, form=form)
