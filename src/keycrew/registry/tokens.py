"""Docker registry bearer tokens: which requested actions a credential gets, and the signed JWT.

A client asks for ``type:name:actions`` scopes; each granted entry lists only the requested
actions the credential may do. A resource it may not touch gets ``actions: []`` rather than a
failed request (the registry then answers the client's request with 401 itself), and unknown or
malformed scopes are left out. Repositories map to the project whose full path is the longest
prefix of their name (``group/project`` or ``group/project/image``).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

from keycrew.db.reads import SessionReads
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Project, Route
from keycrew.tokens.abilities import Decision, decide, scope_allows
from keycrew.tokens.basic import Credential
from keycrew.tokens.scopes import Ability

log = logging.getLogger("keycrew.registry")

# Docker Distribution's repository name grammar (lowercase components joined by '/').
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY_NAME = re.compile(rf"{COMPONENT}(?:/{COMPONENT})*")
MAX_NAME_LENGTH = 255
MAX_SCOPES = 50
# NOT-before leeway for clocks that run a little behind ours (GitLab: 5 s).
NBF_LEEWAY = dt.timedelta(seconds=5)

ACTION_ABILITIES: dict[str, Ability] = {
    "pull": Ability.READ_CONTAINER_IMAGE,
    "push": Ability.CREATE_CONTAINER_IMAGE,
    "delete": Ability.ADMIN_CONTAINER_IMAGE,
    "*": Ability.ADMIN_CONTAINER_IMAGE,
}
REGISTRY_ABILITIES = frozenset(ACTION_ABILITIES.values())

AccessEntry = dict[str, Any]  # {"type", "name", "actions"}


class TooManyScopes(ValueError):
    """More distinct scopes than one token may carry."""


@dataclass(frozen=True)
class ScopeRequest:
    type: str
    name: str
    actions: tuple[str, ...]


def parse_scopes(values: list[str]) -> list[ScopeRequest]:
    """``scope`` parameters (each may hold several, space-separated) → requests, merged by resource.

    The type ends at the first ':' and the actions start after the last one, so that a name may
    itself hold a ':' (Docker's grammar). Malformed scopes are dropped.
    """
    merged: dict[tuple[str, str], list[str]] = {}
    for value in values:
        for item in value.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if not kind or not name:
                continue
            wanted = merged.setdefault((kind, name), [])
            wanted.extend(a for a in actions.split(",") if a and a not in wanted)
            if len(merged) > MAX_SCOPES:
                raise TooManyScopes(f"at most {MAX_SCOPES} scopes per request")
    return [ScopeRequest(kind, name, tuple(actions)) for (kind, name), actions in merged.items()]


def has_registry_ability(credential: Credential) -> bool:
    """Whether the credential may use the container registry at all (GitLab: 403 when not)."""
    return any(scope_allows(credential, ability) for ability in REGISTRY_ABILITIES)


def valid_repository_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and REPOSITORY_NAME.fullmatch(name) is not None


def _projects_for(db: Session, names: list[str]) -> dict[str, Project]:
    """Repository name → its project (the longest prefix of at least two components that is one)."""
    prefixes: dict[str, list[str]] = {}
    for name in names:
        parts = name.split("/")
        prefixes[name] = ["/".join(parts[:n]) for n in range(len(parts), 1, -1)]
    wanted = {p for candidates in prefixes.values() for p in candidates}
    if not wanted:
        return {}
    routes = db.execute(
        select(Route.path_lower, Route.source_id).where(
            Route.source_type == SourceType.PROJECT.value, Route.path_lower.in_(wanted)
        )
    ).all()
    project_ids = {row.path_lower: row.source_id for row in routes}
    found: dict[str, Project] = {}
    for name, candidates in prefixes.items():
        for candidate in candidates:
            if candidate in project_ids:
                project = db.get(Project, project_ids[candidate])
                if project is not None:
                    found[name] = project
                break
    return found


def authorize(
    db: Session, credential: Credential, requests: list[ScopeRequest], today: dt.date
) -> list[AccessEntry]:
    """The ``access`` claim: per requested resource, the requested actions that are allowed."""
    repositories = [r.name for r in requests if r.type == "repository" and valid_repository_name(r.name)]
    projects = _projects_for(db, repositories)
    reads = SessionReads(db)
    access: list[AccessEntry] = []
    for request in requests:
        if request.type == "repository":
            granted: list[str] = []
            project = projects.get(request.name)
            if project is not None:
                decisions: dict[Ability, Decision] = {}
                for action in request.actions:
                    ability = ACTION_ABILITIES.get(action)
                    if ability is None:
                        continue
                    if ability not in decisions:
                        decisions[ability] = decide(reads, credential, project, ability, today)
                    if decisions[ability] is Decision.ALLOWED:
                        granted.append(action)
        elif request.type == "registry":
            # The catalog lists every repository: administrators only, as GitLab.
            admin = credential.user is not None and credential.user.admin
            catalog = request.name == "catalog" and request.actions == ("*",)
            granted = ["*"] if admin and catalog else []
        else:
            continue
        if list(request.actions) != granted:
            log.info(
                "registry access narrowed for %s: %s:%s requested %s, granted %s",
                credential.label,
                request.type,
                request.name,
                ",".join(request.actions),
                ",".join(granted) or "nothing",
            )
        access.append({"type": request.type, "name": request.name, "actions": granted})
    return access


@dataclass(frozen=True)
class RegistryToken:
    token: str
    expires_in: int
    issued_at: dt.datetime


def sign(
    private_key: Any,
    kid: str,
    *,
    issuer: str,
    audience: str,
    subject: str,
    access: list[AccessEntry],
    now: dt.datetime,
    lifetime: int,
) -> RegistryToken:
    """An RS256 JWT as docker-registry's token auth expects (``aud`` a plain string, ``kid`` set)."""
    issued = now.replace(microsecond=0)
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": int((issued + dt.timedelta(seconds=lifetime)).timestamp()),
        "nbf": int((issued - NBF_LEEWAY).timestamp()),
        "iat": int(issued.timestamp()),
        "jti": str(uuid.uuid4()),
        "access": access,
    }
    token = jwt.encode(claims, private_key, algorithm="RS256", headers={"kid": kid})
    return RegistryToken(token, lifetime, issued)
