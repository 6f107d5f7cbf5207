"""GitLab's webhook payloads (``lib/gitlab/hook_data/*``, ``lib/gitlab/data_builder/*``).

Every function returns plain JSON values. System-hook timestamps are xmlschema
(``2021-04-02T10:00:26Z``); the resource access token hook's ``created_at`` is
``"2024-01-24 16:27:40 UTC"``, as GitLab's.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from keycrew.access.levels import AccessLevel
from keycrew.identity.models import User
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace, Project
from keycrew.repos import storage
from keycrew.tokens.models import PersonalAccessToken

ZERO_SHA = "0" * 40
# GitLab lists at most this many commits in a push payload (total_commits_count counts them all).
PUSH_COMMITS_LIMIT = 20


def xmlschema(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def level_name(level: int) -> str:
    try:
        return AccessLevel(level).label
    except ValueError:
        return str(level)


def visibility(level: int) -> str:
    try:
        return Visibility.from_level(level).value
    except KeyError:
        return Visibility.PRIVATE.value


def _host(external_url: str) -> str:
    return external_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]


def project_hook_attrs(project: Project, external_url: str) -> dict[str, Any]:
    """GitLab's ``Project#hook_attrs``."""
    base = external_url.rstrip("/")
    web_url = f"{base}/{project.full_path}"
    ssh = f"git@{_host(external_url)}:{project.full_path}.git"
    http = f"{web_url}.git"
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description or None,
        "web_url": web_url,
        "avatar_url": None,
        "git_ssh_url": ssh,
        "git_http_url": http,
        "namespace": project.namespace.name,
        "visibility_level": project.visibility_level,
        "path_with_namespace": project.full_path,
        "default_branch": project.default_branch,
        "ci_config_path": None,
        "homepage": web_url,
        "url": ssh,
        "ssh_url": ssh,
        "http_url": http,
    }


def _owners(owner: User | None) -> tuple[str | None, str | None, list[dict[str, str]]]:
    if owner is None:
        return None, None, []
    return owner.name, owner.email, [{"name": owner.name, "email": owner.email}]


# -- system hooks ---------------------------------------------------------------------------
def user_event(event_name: str, user: User) -> dict[str, Any]:
    """``user_create`` / ``user_destroy``."""
    return {
        "created_at": xmlschema(user.created_at),
        "updated_at": xmlschema(user.updated_at),
        "event_name": event_name,
        "name": user.name,
        "email": user.email,
        "user_id": user.id,
        "username": user.username,
    }


def project_event(
    event_name: str,
    project: Project,
    owner: User | None,
    *,
    old_path_with_namespace: str | None = None,
    for_group_hook: bool = False,
) -> dict[str, Any]:
    """``project_create|destroy|rename|transfer|update`` (system hooks; ``Project Hook`` of group
    hooks, which add ``project_namespace_id``)."""
    owner_name, owner_email, owners = _owners(owner)
    data: dict[str, Any] = {
        "event_name": event_name,
        "created_at": xmlschema(project.created_at),
        "updated_at": xmlschema(project.updated_at),
        "name": project.name,
        "path": project.path,
        "path_with_namespace": project.full_path,
        "project_id": project.id,
        "owner_name": owner_name,
        "owner_email": owner_email,
        "owners": owners,
        "project_visibility": visibility(project.visibility_level),
    }
    if old_path_with_namespace is not None:
        data["old_path_with_namespace"] = old_path_with_namespace
    if for_group_hook:
        data["project_namespace_id"] = project.namespace_id
    return data


def group_event(event_name: str, group: Namespace) -> dict[str, Any]:
    """``group_create`` / ``group_destroy``."""
    return {
        "created_at": xmlschema(group.created_at),
        "updated_at": xmlschema(group.updated_at),
        "event_name": event_name,
        "name": group.name,
        "path": group.path,
        "full_path": group.full_path,
        "group_id": group.id,
    }


def subgroup_event(event_name: str, group: Namespace, parent: Namespace) -> dict[str, Any]:
    """``subgroup_create`` / ``subgroup_destroy`` (``Subgroup Hook`` of the parent's group hooks)."""
    return group_event(event_name, group) | {
        "parent_group_id": parent.id,
        "parent_name": parent.name,
        "parent_path": parent.path,
        "parent_full_path": parent.full_path,
    }


def team_member_event(
    event_name: str, project: Project, user: User, access_level: int, at: dt.datetime
) -> dict[str, Any]:
    """``user_add_to_team`` / ``user_remove_from_team`` / ``user_update_for_team``."""
    return {
        "created_at": xmlschema(at),
        "updated_at": xmlschema(at),
        "event_name": event_name,
        "access_level": level_name(access_level),
        "project_id": project.id,
        "project_name": project.name,
        "project_path": project.path,
        "project_path_with_namespace": project.full_path,
        "user_email": user.email,
        "user_name": user.name,
        "user_username": user.username,
        "user_id": user.id,
        "project_visibility": visibility(project.visibility_level),
    }


def group_member_event(
    event_name: str,
    group: Namespace,
    user: User,
    access_level: int,
    at: dt.datetime,
    *,
    expires_at: dt.date | None = None,
    member_hook: bool = False,
) -> dict[str, Any]:
    """``user_add_to_group`` / ``user_remove_from_group`` / ``user_update_for_group`` (system
    hooks); ``member_hook`` adds the group ``Member Hook``'s ``group_plan`` and ``expires_at``."""
    data: dict[str, Any] = {
        "created_at": xmlschema(at),
        "updated_at": xmlschema(at),
        "group_name": group.name,
        "group_path": group.path,
        "group_id": group.id,
        "user_username": user.username,
        "user_name": user.name,
        "user_email": user.email,
        "user_id": user.id,
        "group_access": level_name(access_level),
    }
    if member_hook:
        data["group_plan"] = None
        data["expires_at"] = (
            None if expires_at is None else xmlschema(dt.datetime.combine(expires_at, dt.time(), dt.UTC))
        )
    data["event_name"] = event_name
    return data


# -- push ------------------------------------------------------------------------------------
def _commits(repository: Path | None, before: str, after: str, web_url: str) -> tuple[list[Any], int]:
    if repository is None or after == ZERO_SHA or not repository.exists():
        return [], 0
    revisions = [after] if before == ZERO_SHA else [f"{before}..{after}"]
    try:
        listed = storage.git("rev-list", *revisions, "--", cwd=repository).decode().split()
        shown = storage.git(
            "log",
            f"-{PUSH_COMMITS_LIMIT}",
            "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%s%x1f%B%x1e",
            *revisions,
            "--",
            cwd=repository,
        ).decode(errors="replace")
    except storage.GitFailed:
        return [], 0
    commits = []
    for record in shown.split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) < 6:
            continue
        sha, name, email, when, title, message = fields[:6]
        commits.append(
            {
                "id": sha,
                "message": message.rstrip("\n") + "\n",
                "title": title,
                "timestamp": when,
                "url": f"{web_url}/-/commit/{sha}",
                "author": {"name": name, "email": email},
                "added": [],
                "modified": [],
                "removed": [],
            }
        )
    # GitLab lists the oldest first.
    return list(reversed(commits)), len(listed)


def push_event(
    project: Project,
    user: User | None,
    ref: str,
    before: str,
    after: str,
    external_url: str,
    repository: Path | None,
) -> dict[str, Any]:
    """A ``Push Hook`` (branches) or ``Tag Push Hook`` (tags) payload for one ref."""
    tag = ref.startswith("refs/tags/")
    attrs = project_hook_attrs(project, external_url)
    commits, total = _commits(repository, before, after, attrs["web_url"])
    kind = "tag_push" if tag else "push"
    return {
        "object_kind": kind,
        "event_name": kind,
        "before": before,
        "after": after,
        "ref": ref,
        "ref_protected": False,
        "checkout_sha": None if after == ZERO_SHA else after,
        "message": None,
        "user_id": None if user is None else user.id,
        "user_name": None if user is None else user.name,
        "user_username": None if user is None else user.username,
        "user_email": None if user is None else user.email,
        "user_avatar": None,
        "project_id": project.id,
        "project": attrs,
        "commits": commits,
        "total_commits_count": total,
        "push_options": {},
        "repository": {
            "name": project.name,
            "url": attrs["url"],
            "description": attrs["description"],
            "homepage": attrs["homepage"],
            "git_http_url": attrs["git_http_url"],
            "git_ssh_url": attrs["git_ssh_url"],
            "visibility_level": project.visibility_level,
        },
    }


def repository_update_event(
    project: Project, user: User | None, changes: list[dict[str, str]], external_url: str
) -> dict[str, Any]:
    """The system hooks' ``repository_update``."""
    return {
        "event_name": "repository_update",
        "user_id": None if user is None else user.id,
        "user_name": None if user is None else user.name,
        "user_email": None if user is None else user.email,
        "user_avatar": None,
        "project_id": project.id,
        "project": project_hook_attrs(project, external_url),
        "changes": [{"before": c["before"], "after": c["after"], "ref": c["ref"]} for c in changes],
        "refs": [c["ref"] for c in changes],
    }


# -- resource access tokens ------------------------------------------------------------------
def access_token_event(
    token: PersonalAccessToken,
    resource: Project | Namespace,
    external_url: str,
    event_name: str = "expiring_access_token",
) -> dict[str, Any]:
    """The ``Resource Access Token Hook`` (``object_kind: access_token``)."""
    data: dict[str, Any] = {"object_kind": "access_token"}
    if isinstance(resource, Project):
        data["project"] = project_hook_attrs(resource, external_url)
    else:
        data["group"] = {
            "group_name": resource.name,
            "group_path": resource.path,
            "group_id": resource.id,
            "full_path": resource.full_path,
        }
    data["object_attributes"] = {
        "user_id": token.user_id,
        "created_at": utc_text(token.created_at),
        "id": token.id,
        "name": token.name,
        "expires_at": None if token.expires_at is None else token.expires_at.isoformat(),
        "last_used_at": None if token.last_used_at is None else utc_text(token.last_used_at),
    }
    data["event_name"] = event_name
    return data


# -- samples for the test endpoints ----------------------------------------------------------
SYSTEM_HOOK_SAMPLE: dict[str, Any] = {
    "event_name": "project_create",
    "name": "Ruby",
    "path": "ruby",
    "project_id": 1,
    "owner_name": "Someone",
    "owner_email": "example@gitlabhq.com",
}
