"""Group, project and namespace entities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from keycrew.access.shares import SharedWith
from keycrew.api.entities import iso
from keycrew.identity.models import User
from keycrew.identity.views import UserBrief, UserView
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.views import NamespaceLike, ProjectLike
from keycrew.repos import storage as repos

_VISIBILITY_NAMES = {v.level: v.value for v in Visibility}


def _namespace_web_url(ns: NamespaceLike, base: str) -> str:
    return f"{base}/{ns.full_path}" if ns.kind == "user" else f"{base}/groups/{ns.full_path}"


def namespace_basic(ns: NamespaceLike, base: str) -> dict[str, Any]:
    return {
        "id": ns.id,
        "name": ns.name,
        "path": ns.path,
        "kind": ns.kind,
        "full_path": ns.full_path,
        "parent_id": ns.parent_id,
        "avatar_url": None,
        "web_url": _namespace_web_url(ns, base),
    }


def namespace(ns: NamespaceLike, base: str, *, projects_count: int | None = None) -> dict[str, Any]:
    """GET /namespaces items (GitLab's Entities::Namespace)."""
    data = namespace_basic(ns, base)
    data.update(
        {
            "billable_members_count": None,
            "plan": "ultimate",
            "end_date": None,
            "trial_ends_on": None,
            "trial": False,
            "root_repository_size": 0,
            "projects_count": projects_count or 0,
        }
    )
    return data


def group(ns: NamespaceLike, base: str) -> dict[str, Any]:
    return {
        "id": ns.id,
        "web_url": f"{base}/groups/{ns.full_path}",
        "name": ns.name,
        "path": ns.path,
        "description": ns.description or "",
        "visibility": Visibility.from_level(ns.visibility_level).value,
        "share_with_group_lock": False,
        "require_two_factor_authentication": False,
        "two_factor_grace_period": 48,
        "project_creation_level": "developer",
        "auto_devops_enabled": None,
        "subgroup_creation_level": "maintainer",
        "emails_disabled": False,
        "emails_enabled": True,
        "mentions_disabled": None,
        "lfs_enabled": True,
        "default_branch": None,
        "default_branch_protection": 2,
        "avatar_url": None,
        "request_access_enabled": True,
        "full_name": ns.full_name,
        "full_path": ns.full_path,
        "created_at": iso(ns.created_at),
        "parent_id": ns.parent_id,
        "organization_id": 1,
        "shared_runners_setting": "enabled",
        "ldap_cn": None,
        "ldap_access": None,
        "marked_for_deletion_on": None,
        "archived": False,
    }


def shared_with_groups(links: Sequence[SharedWith]) -> list[dict[str, Any]]:
    """GitLab's SharedGroupWithGroup / SharedGroupWithProject items."""
    return [
        {
            "group_id": link.group_id,
            "group_name": link.group_name,
            "group_full_path": link.group_full_path,
            "group_access_level": link.group_access,
            "expires_at": None if link.expires_at is None else link.expires_at.isoformat(),
        }
        for link in links
    ]


def group_detail(
    ns: NamespaceLike,
    base: str,
    projects: Sequence[ProjectLike] | None,
    *,
    repositories: Path | None = None,
    shared_with: Sequence[SharedWith] = (),
    compliance_frameworks: Mapping[int, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """GET /groups/:id (GitLab's GroupDetail): the group with its projects unless with_projects=false
    (``compliance_frameworks``: each project's framework names, by project id)."""
    data = group(ns, base)
    data["resource_access_token_creation_allowed"] = ns.resource_access_token_creation_allowed
    data["shared_with_groups"] = shared_with_groups(shared_with)
    data["runners_token"] = None
    if projects is not None:
        with_branch = repos.with_branches(repositories, [p.id for p in projects])
        frameworks = compliance_frameworks or {}
        data["projects"] = [
            project(
                p, base, empty_repo=p.id not in with_branch, compliance_frameworks=frameworks.get(p.id, ())
            )
            for p in projects
        ]
        data["shared_projects"] = []
    return data


def project_simple(p: ProjectLike, base: str) -> dict[str, Any]:
    """GitLab's BasicProjectDetails (``simple=true`` listings)."""
    ns = p.namespace
    web_url = f"{base}/{p.full_path}"
    return {
        "id": p.id,
        "description": p.description or "",
        "name": p.name,
        "name_with_namespace": f"{ns.full_name} / {p.name}",
        "path": p.path,
        "path_with_namespace": p.full_path,
        "created_at": iso(p.created_at),
        "default_branch": p.default_branch,
        "tag_list": [],
        "topics": [],
        "ssh_url_to_repo": None,
        "http_url_to_repo": f"{web_url}.git",
        "web_url": web_url,
        "readme_url": None,
        "forks_count": 0,
        "avatar_url": None,
        "star_count": 0,
        "last_activity_at": iso(p.last_activity_at),
        "namespace": namespace_basic(ns, base),
    }


def project(
    p: ProjectLike,
    base: str,
    *,
    owner: User | UserView | UserBrief | None = None,
    permissions: tuple[int | None, int | None] | None = None,
    repositories: Path | None = None,
    empty_repo: bool | None = None,
    shared_with: Sequence[SharedWith] | None = None,
    compliance_frameworks: Sequence[str] = (),
    service_desk: tuple[bool, str | None] = (False, None),
) -> dict[str, Any]:
    """GitLab's ProjectDetails (``service_desk``: whether Service Desk is on, and its address for
    those who may see it); ``empty_repo`` as given (a listing asks ``repos.with_branches``
    once for its page), else read from the repository under ``repositories``; ``shared_with``:
    the project's live links (``shared_with_groups``), when read; ``compliance_frameworks``: the
    names of its compliance frameworks (``access.compliance.framework_names``)."""
    api = f"{base}/api/v4/projects/{p.id}"
    if empty_repo is None:
        empty_repo = repositories is None or not repos.has_branch(repositories, p.id)
    data = project_simple(p, base)
    data.update(
        {
            "visibility": _VISIBILITY_NAMES[p.visibility_level],
            "archived": p.archived,
            "creator_id": p.creator_id,
            "issues_enabled": True,
            "open_issues_count": None,
            "empty_repo": empty_repo,
            "container_registry_enabled": True,
            "request_access_enabled": True,
            "updated_at": iso(p.updated_at),
            "marked_for_deletion_on": None,
            "marked_for_deletion_at": None,
            "compliance_frameworks": list(compliance_frameworks),
            "service_desk_enabled": service_desk[0],
            "service_desk_address": service_desk[1],
            "_links": {
                "self": api,
                "issues": f"{api}/issues",
                "members": f"{api}/members",
                "events": f"{api}/events",
            },
        }
    )
    if p.namespace.kind == "user" and owner is not None:
        data["owner"] = {
            "id": owner.id,
            "username": owner.username,
            "name": owner.name,
            "state": owner.state,
            "locked": owner.locked_at is not None,
            "avatar_url": None,
            "web_url": f"{base}/{owner.username}",
        }
    if shared_with is not None:
        data["shared_with_groups"] = shared_with_groups(shared_with)
    if permissions is not None:
        direct, inherited = permissions
        data["permissions"] = {
            "project_access": None if direct is None else {"access_level": direct, "notification_level": 3},
            "group_access": None
            if inherited is None
            else {"access_level": inherited, "notification_level": 3},
        }
    return data
