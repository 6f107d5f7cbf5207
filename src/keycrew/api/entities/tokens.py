"""Token entities: personal, impersonation and resource (project/group) access tokens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

from keycrew.api.entities import day, iso
from keycrew.api.entities.namespaces import namespace_basic
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.views import NamespaceLike, ProjectLike


class TokenLike(Protocol):
    """A token row or its cached snapshot: both render the same."""

    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def revoked(self) -> bool: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def description(self) -> str | None: ...
    @property
    def user_id(self) -> int: ...
    @property
    def last_used_at(self) -> dt.datetime | None: ...
    @property
    def expires_at(self) -> dt.date | None: ...
    @property
    def impersonation(self) -> bool: ...
    @property
    def scopes(self) -> Sequence[str]: ...
    @property
    def last_used_ips(self) -> Sequence[str] | None: ...

    def is_active(self, today: dt.date) -> bool: ...


def personal_access_token(
    token: TokenLike, today: dt.date, *, token_value: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": token.id,
        "name": token.name,
        "revoked": token.revoked,
        "created_at": iso(token.created_at),
        "description": token.description,
        "scopes": list(token.scopes),
        "user_id": token.user_id,
        "last_used_at": iso(token.last_used_at),
        # The newest client IPs, at most 5 (GitLab's PersonalAccessTokenWithLastUsedIps).
        "last_used_ips": list(token.last_used_ips or ()),
        "active": token.is_active(today),
        "expires_at": day(token.expires_at),
    }
    if token_value is not None:
        data["token"] = token_value
    return data


def impersonation_token(
    token: TokenLike, today: dt.date, *, token_value: str | None = None
) -> dict[str, Any]:
    data = personal_access_token(token, today, token_value=token_value)
    data["impersonation"] = token.impersonation
    return data


def resource_access_token(
    token: TokenLike, today: dt.date, access_level: int, *, token_value: str | None = None
) -> dict[str, Any]:
    """A project or group access token: a personal token of the bot, plus the bot's level."""
    data = personal_access_token(token, today, token_value=token_value)
    data["access_level"] = access_level
    return data


def group_association(group: NamespaceLike, base: str, level: int | None) -> dict[str, Any]:
    """A group a token reaches (GitLab's GroupAssociationDetails): ``access_levels`` is the user's
    highest level there (own or inherited), or null."""
    return {
        "id": group.id,
        "web_url": f"{base}/groups/{group.full_path}",
        "name": group.name,
        "parent_id": group.parent_id,
        "organization_id": 1,
        "access_levels": level,
        "visibility": Visibility.from_level(group.visibility_level).value,
    }


def project_association(
    project: ProjectLike, base: str, levels: tuple[int | None, int | None]
) -> dict[str, Any]:
    """A project a token reaches (GitLab's ProjectAssociationDetails)."""
    ns = project.namespace
    return {
        "id": project.id,
        "description": project.description,
        "name": project.name,
        "name_with_namespace": f"{ns.full_name} / {project.name}",
        "path": project.path,
        "path_with_namespace": project.full_path,
        "created_at": iso(project.created_at),
        "access_levels": {"project_access_level": levels[0], "group_access_level": levels[1]},
        "visibility": Visibility.from_level(project.visibility_level).value,
        "web_url": f"{base}/{project.full_path}",
        "namespace": namespace_basic(ns, base),
    }
