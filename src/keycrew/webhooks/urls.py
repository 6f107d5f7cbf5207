"""Where a hook may send: GitLab's UrlBlocker for webhooks.

A hook's URL must be http(s) and, unless the admin allows it (``allow_local_requests_from_web_hooks_
and_services`` for project and group hooks, ``allow_local_requests_from_system_hooks`` for system
hooks), must not reach loopback, the local network (private, link-local, unspecified, unique-local
and site-local addresses) or the instance's own host. It is checked when the hook is saved, and
again at delivery after resolving the name: the request then goes to the very address that was
checked (``Target``), so a name that resolves elsewhere the second time (DNS rebinding) gains
nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from keycrew.errors import Unprocessable

INVALID_URL = "Invalid url given"
LOCALHOST = "Requests to localhost are not allowed"
LOCAL_NETWORK = "Requests to the local network are not allowed"
UNRESOLVED = "Host cannot be resolved or invalid"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedUrl(Unprocessable):
    """A URL a hook may not use; ``message`` is GitLab's reason."""


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (a module function: tests replace it)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse(url: str) -> SplitResult:
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise BlockedUrl(INVALID_URL) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedUrl("Only allowed schemes are http, https")
    return parts


def default_port(parts: SplitResult) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def address_problem(address: IPAddress) -> str | None:
    """Why a hook may not reach ``address`` unless local requests are allowed, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return LOCALHOST
    if address.is_unspecified or address.is_private or address.is_link_local or address.is_reserved:
        return LOCAL_NETWORK
    if isinstance(address, ipaddress.IPv6Address) and (address.is_site_local or address in _ULA):
        return LOCAL_NETWORK
    if address.is_multicast:
        return LOCAL_NETWORK
    return None


_ULA = ipaddress.IPv6Network("fc00::/7")


@dataclass(frozen=True)
class Target:
    """Where a delivery connects: the checked address, and the name for Host and TLS (SNI)."""

    parts: SplitResult
    address: str

    @property
    def host(self) -> str:
        return self.parts.hostname or ""

    @property
    def port(self) -> int:
        return default_port(self.parts)


def check(url: str, *, allow_local: bool, instance_host: str, resolve_now: bool) -> Target | None:
    """Raise BlockedUrl unless a hook may send to ``url``.

    ``resolve_now``: resolve the name and check every address it has (at delivery, and at save,
    where a name that does not resolve yet is accepted: it is checked again at delivery). Returns
    where to connect (an address that passed), or None when nothing was resolved."""
    parts = _parse(url)
    host = (parts.hostname or "").lower().rstrip(".")
    literal = _literal(host)
    if not allow_local:
        if host == "localhost" or host.endswith(".localhost"):
            raise BlockedUrl(LOCALHOST)
        if host == instance_host.lower():
            raise BlockedUrl(LOCAL_NETWORK)
        if literal is not None and (problem := address_problem(literal)) is not None:
            raise BlockedUrl(problem)
    if literal is not None:
        return Target(parts, str(literal))
    if not resolve_now:
        return None
    try:
        addresses = resolve(host, default_port(parts))
    except (OSError, UnicodeError):
        if resolve_now:
            raise BlockedUrl(UNRESOLVED) from None
        return None
    if not addresses:
        raise BlockedUrl(UNRESOLVED)
    checked: list[str] = []
    for raw in addresses:
        address = _literal(raw.split("%", 1)[0])
        if address is None:
            raise BlockedUrl(UNRESOLVED)
        if not allow_local and (problem := address_problem(address)) is not None:
            raise BlockedUrl(problem)
        checked.append(str(address))
    return Target(parts, checked[0])


def validate_for_save(url: str, *, allow_local: bool, instance_host: str) -> None:
    """At save: GitLab's 422 ``Invalid url given`` for a URL a hook may not use."""
    try:
        parts = _parse(url)
        check(url, allow_local=allow_local, instance_host=instance_host, resolve_now=False)
        if not allow_local and _literal(parts.hostname or "") is None:
            try:
                addresses = resolve(parts.hostname or "", default_port(parts))
            except (OSError, UnicodeError):
                return  # not resolvable now: checked again at delivery
            for raw in addresses:
                address = _literal(raw.split("%", 1)[0])
                if address is not None and address_problem(address) is not None:
                    raise BlockedUrl(INVALID_URL)
    except BlockedUrl:
        raise BlockedUrl(INVALID_URL) from None


def mask_userinfo(url: str) -> str:
    """The URL without its user and password (what logs and the API may show)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()
