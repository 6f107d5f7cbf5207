"""Reading a source instance for a direct transfer: GitLab's REST API v4 only, so that the source
may be GitLab or another keycrew.

``SourceClient`` sends the access token in the ``PRIVATE-TOKEN`` header only: never in a URL, a log
line or an exception message. Lists are generators that follow the source's pagination (the
``Link: rel="next"`` header, which carries keyset cursors where the source uses them, else
``X-Next-Page``), 100 items a page, so that large sources stream.

Errors are one family, ``SourceError``, whose ``failure()`` is the shape of an entity's failure in
GitLab's bulk imports (``exception_class``, ``exception_message``, ``source_url``...):

- a path that does not exist: ``SourceNotFound``;
- 401 or 403, or a token without ``api``/``read_api``: ``SourceAuthError``;
- DNS failure, connection refused, TLS failure: ``SourceUnreachable`` (at once, not retried);
- 5xx, 429 (honouring ``Retry-After``) and timeouts: retried ``retries`` times with exponential
  backoff (``backoff`` seconds doubled each try, capped at 30 s, with jitter), then
  ``SourceTransientError`` saying what was tried;
- anything that is not the JSON expected (or a redirect): ``SourceProtocolError``.

The source URL must be http(s) with a host; whether it may reach the local network is not decided
here (GitLab checks ``allow_local_requests_from_web_hooks_and_services``): the caller that creates
an import runs ``keycrew.webhooks.urls.check`` with that setting (this package, in the same layer
as ``keycrew.webhooks``, cannot import it).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

log = logging.getLogger("keycrew.imports.source")

PER_PAGE = 100
BACKOFF_CAP = 30.0
READ_SCOPES = ("api", "read_api")
USER_FIELDS = ("id", "username", "name", "state", "user_type", "bot", "web_url")

JSONObject = dict[str, Any]


# -- errors ---------------------------------------------------------------------------------------


class SourceError(Exception):
    """Why reading the source failed; the message is fit for an entity's ``failures`` list."""

    def __init__(self, message: str, *, source_url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source_url = source_url

    def failure(self, *, relation: str | None = None, source_title: str | None = None) -> JSONObject:
        """This error as one of an entity's failures (GitLab's BulkImports::Failure entity)."""
        return {
            "relation": relation,
            "exception_class": type(self).__name__,
            "exception_message": self.message,
            "correlation_id_value": None,
            "source_url": self.source_url,
            "source_title": source_title,
        }


class SourceNotFound(SourceError):
    """The group, project or other record does not exist on the source (or the token cannot see it)."""


class SourceAuthError(SourceError):
    """The source refused the token (401/403), or the token lacks the scopes an import needs."""


class SourceUnreachable(SourceError):
    """The source host cannot be reached: the name does not resolve, the connection is refused..."""


class SourceTransientError(SourceError):
    """The source kept failing (5xx, 429, timeouts) through every retry."""


class SourceProtocolError(SourceError):
    """The source answered something that is not the GitLab API's JSON."""


# -- the client -----------------------------------------------------------------------------------


def _check_url(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SourceProtocolError("the source URL is not valid") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceProtocolError("the source URL must be http or https with a host")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise SourceProtocolError("the source URL must not carry credentials, a query or a fragment")
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def _encoded(full_path: str) -> str:
    return quote(full_path.strip("/"), safe="")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class SourceClient:
    """A reader of one source instance's REST API v4 with one access token."""

    def __init__(
        self,
        url: str,
        access_token: str,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 1.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = _check_url(url)
        self._token = access_token
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.url + "/api/v4",
            headers={"PRIVATE-TOKEN": access_token, "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )
        self._origin = urlsplit(str(self._http.base_url))[:2]

    def __repr__(self) -> str:
        return f"SourceClient({self.url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SourceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads ------------------------------------------------------------------------------------

    def version(self) -> JSONObject:
        """The source's version (``GET /version``), which also proves the token is accepted."""
        return self._object("/version", None, refused="the source refused the access token")

    def token_scopes(self) -> list[str]:
        """The scopes of the access token (``GET /personal_access_tokens/self``)."""
        token = self._object(
            "/personal_access_tokens/self", None, refused="the source refused the access token"
        )
        scopes = token.get("scopes")
        if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
            raise SourceProtocolError(
                "the source did not list the access token's scopes", source_url=self.url
            )
        return list(scopes)

    def check_token(self) -> list[str]:
        """The token's scopes, if it may read the source's API (``api`` or ``read_api``)."""
        scopes = self.token_scopes()
        if not any(scope in READ_SCOPES for scope in scopes):
            having = ", ".join(scopes) or "none"
            raise SourceAuthError(
                f"the source access token needs the api or read_api scope (it has: {having})",
                source_url=self.url,
            )
        return scopes

    def group(self, full_path: str) -> JSONObject:
        return self._object(
            f"/groups/{_encoded(full_path)}", f"group '{full_path}'", {"with_projects": "false"}
        )

    def descendant_groups(self, group_id: int) -> Iterator[JSONObject]:
        """Every group below ``group_id``, at any depth."""
        return self._list(f"/groups/{group_id}/descendant_groups", f"group {group_id}", {"order_by": "id"})

    def group_projects(self, group_id: int) -> Iterator[JSONObject]:
        """The projects directly in ``group_id`` (not in its subgroups)."""
        params = {"include_subgroups": "false", "order_by": "id", "sort": "asc", "with_shared": "false"}
        return self._list(f"/groups/{group_id}/projects", f"group {group_id}", params)

    def project(self, full_path: str) -> JSONObject:
        return self._object(f"/projects/{_encoded(full_path)}", f"project '{full_path}'")

    def group_members(self, group_id: int) -> Iterator[JSONObject]:
        """Direct members of the group (not inherited ones)."""
        return self._list(f"/groups/{group_id}/members", f"group {group_id}")

    def project_members(self, project_id: int) -> Iterator[JSONObject]:
        """Direct members of the project (not inherited ones)."""
        return self._list(f"/projects/{project_id}/members", f"project {project_id}")

    def issues(self, project_id: int) -> Iterator[JSONObject]:
        """Every issue of the project, open and closed, oldest first."""
        params = {"scope": "all", "state": "all", "order_by": "created_at", "sort": "asc"}
        return self._list(f"/projects/{project_id}/issues", f"project {project_id}", params)

    def notes(self, project_id: int, issue_iid: int) -> Iterator[JSONObject]:
        """The notes of one issue, oldest first (system notes included: the importer chooses)."""
        params = {"order_by": "created_at", "sort": "asc"}
        what = f"issue #{issue_iid} of project {project_id}"
        return self._list(f"/projects/{project_id}/issues/{issue_iid}/notes", what, params)

    def user(self, user_id: int) -> JSONObject:
        """One user, for authorship: id, username, name, state, and user_type/bot when the source
        tells them (``user_type`` None where it does not)."""
        found = self._object(f"/users/{int(user_id)}", f"user {user_id}")
        return {field: found.get(field) for field in USER_FIELDS}

    def users(self, ids: Iterable[int]) -> Iterator[JSONObject]:
        """Each of the users ``ids`` once, in order; a user the source no longer has is skipped
        (its records then belong to the source's Ghost User or to no one)."""
        for user_id in dict.fromkeys(int(i) for i in ids):
            try:
                yield self.user(user_id)
            except SourceNotFound:
                continue

    def pypi_packages(self, project_id: int) -> Iterator[JSONObject]:
        params = {"package_type": "pypi", "order_by": "created_at", "sort": "asc"}
        return self._list(f"/projects/{project_id}/packages", f"project {project_id}", params)

    def package_files(self, project_id: int, package_id: int) -> Iterator[JSONObject]:
        what = f"package {package_id} of project {project_id}"
        return self._list(f"/projects/{project_id}/packages/{package_id}/package_files", what)

    def repository_url(self, project: Mapping[str, Any]) -> str:
        """The project's ``http_url_to_repo`` with the token as basic-auth password, for git.

        The result holds the token: pass it to git only, never to a log."""
        raw = project.get("http_url_to_repo")
        if not isinstance(raw, str) or not raw:
            raise SourceProtocolError(
                "the source did not give the project's repository URL", source_url=self.url
            )
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceProtocolError(
                "the source gave a repository URL that is not http(s)", source_url=self.url
            )
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        if ":" in (parts.hostname or ""):
            host = f"[{parts.hostname}]" if parts.port is None else f"[{parts.hostname}]:{parts.port}"
        netloc = f"oauth2:{quote(self._token, safe='')}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    # -- the transport ----------------------------------------------------------------------------

    def _object(
        self,
        path: str,
        what: str | None,
        params: Mapping[str, str] | None = None,
        *,
        refused: str | None = None,
    ) -> JSONObject:
        response = self._request(path, params, what, refused=refused)
        body = self._json(response, path)
        if not isinstance(body, dict):
            raise SourceProtocolError(
                f"the source answered GET {path} with JSON that is not an object", source_url=self.url
            )
        return body

    def _list(self, path: str, what: str, params: Mapping[str, str] | None = None) -> Iterator[JSONObject]:
        """A generator over every page of a listing; nothing is requested until it is iterated."""
        first: dict[str, str] = {"per_page": str(PER_PAGE)} | dict(params or {})
        next_target: str | None = path
        query: Mapping[str, str] | None = first
        pages = 0
        while next_target is not None:
            response = self._request(next_target, query, what)
            body = self._json(response, path)
            if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
                raise SourceProtocolError(
                    f"the source answered GET {path} with JSON that is not a list", source_url=self.url
                )
            yield from body
            pages += 1
            next_target, query = self._next(response, path, first)
            if pages > 1_000_000:  # a source that links pages in a circle
                raise SourceProtocolError(f"the source's pages of GET {path} never end", source_url=self.url)

    def _next(
        self, response: httpx.Response, path: str, first: Mapping[str, str]
    ) -> tuple[str | None, Mapping[str, str] | None]:
        link = response.links.get("next", {}).get("url")
        if link:
            target = httpx.URL(str(response.url)).join(link)
            if (target.scheme, target.netloc.decode()) != self._origin:
                raise SourceProtocolError(
                    f"the source's next page of GET {path} points to another host", source_url=self.url
                )
            # The full link (keyset cursor or page number), relative to the base URL's path.
            base_path = httpx.URL(str(self._http.base_url)).path.rstrip("/")
            relative = target.raw_path.decode()
            if not relative.startswith(base_path + "/"):
                raise SourceProtocolError(
                    f"the source's next page of GET {path} is outside its API", source_url=self.url
                )
            return relative[len(base_path) :], None
        page = response.headers.get("x-next-page", "").strip()
        if page:
            if not page.isdigit():
                raise SourceProtocolError(
                    f"the source gave a bad next page for GET {path}", source_url=self.url
                )
            return path, dict(first) | {"page": page}
        return None, None

    def _json(self, response: httpx.Response, path: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SourceProtocolError(
                f"the source answered GET {path} with something that is not JSON", source_url=self.url
            ) from None

    def _request(
        self, target: str, params: Mapping[str, str] | None, what: str | None, *, refused: str | None = None
    ) -> httpx.Response:
        label = target.split("?", 1)[0]
        attempts = self.retries + 1
        problem = ""
        for attempt in range(1, attempts + 1):
            wait: float | None = None
            try:
                response = self._http.get(target, params=params)
            except httpx.TimeoutException:
                problem = "timed out"
            except (httpx.ConnectError, httpx.UnsupportedProtocol) as error:
                raise SourceUnreachable(
                    f"the source at {self.url} cannot be reached ({_reason(error)})", source_url=self.url
                ) from None
            except httpx.TransportError as error:
                problem = f"connection failed ({_reason(error)})"
            else:
                status = response.status_code
                if status < 300:
                    return response
                if status in (401, 403):
                    message = refused or (
                        "the source refused the access token"
                        if status == 401
                        else f"the source access token may not read {what or label}"
                    )
                    raise SourceAuthError(message, source_url=self.url)
                if status == 404:
                    subject = what or label
                    raise SourceNotFound(f"{subject} was not found on the source", source_url=self.url)
                if status == 429 or status >= 500:
                    problem = f"HTTP {status}"
                    wait = _retry_after(response) if status in (429, 503) else None
                elif 300 <= status < 400:
                    raise SourceProtocolError(
                        f"the source answered GET {label} with a redirect (HTTP {status}): check its URL",
                        source_url=self.url,
                    )
                else:
                    raise SourceProtocolError(
                        f"the source answered GET {label} with HTTP {status}", source_url=self.url
                    )
            if attempt == attempts:
                break
            delay = min(BACKOFF_CAP, self.backoff * 2 ** (attempt - 1))
            delay = delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter: half to all of the step
            if wait is not None:
                delay = min(max(delay, wait), BACKOFF_CAP * 4)
            log.warning(
                "source GET %s: %s (attempt %d of %d), retrying in %.2fs",
                label,
                problem,
                attempt,
                attempts,
                delay,
            )
            self._sleep(delay)
        raise SourceTransientError(
            f"the source kept failing on GET {label}: {problem} after {attempts} attempts",
            source_url=self.url,
        )


def _reason(error: Exception) -> str:
    """A short reason for a transport error, without anything from the request (no headers)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]
