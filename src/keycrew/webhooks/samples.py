"""What the test endpoints send (GitLab's TestHooks services): data built from the project where
keycrew has it (a push of the default branch's newest commits), else a sample of the event's shape.
"""

from __future__ import annotations

from typing import Any

from keycrew.context import Ctx
from keycrew.errors import Unprocessable
from keycrew.identity.models import User
from keycrew.namespaces.models import Namespace, Project
from keycrew.repos import storage
from keycrew.webhooks import payloads
from keycrew.webhooks.service import Parent

NO_COMMITS = "Ensure the project has at least one commit."
SAMPLE_COMMITS = 3


def _commits(project: Project, root: Any) -> tuple[str, str] | None:
    """(before, after) of a push of the default branch's newest commits, or None if empty."""
    if root is None:
        return None
    path = storage.repository_path(root, project.id)
    if not path.exists() or storage.is_empty(path):
        return None
    try:
        listed = storage.git(
            "rev-list", f"--max-count={SAMPLE_COMMITS + 1}", project.default_branch, "--", cwd=path
        ).split()
    except storage.GitFailed:
        return None
    if not listed:
        return None
    after = listed[0].decode()
    before = listed[SAMPLE_COMMITS].decode() if len(listed) > SAMPLE_COMMITS else payloads.ZERO_SHA
    return before, after


def _sample_project(ctx: Ctx, group: Namespace | None) -> dict[str, Any]:
    base = ctx.instance.external_url.rstrip("/")
    path = f"{group.full_path}/sample" if group is not None else "sample/sample"
    return {"id": 0, "name": "sample", "path_with_namespace": path, "web_url": f"{base}/{path}"}


def sample(ctx: Ctx, parent: Parent, trigger: str) -> dict[str, Any]:
    """The payload of a test of ``trigger`` (``push_events``...) for ``parent``'s hook."""
    user = ctx.actor.user
    project = parent.project
    if project is not None and trigger in ("push_events", "tag_push_events"):
        found = _commits(project, ctx.instance.repositories_dir)
        if found is None:
            raise Unprocessable(NO_COMMITS)
        before, after = found
        root = ctx.instance.repositories_dir
        repository = None if root is None else storage.repository_path(root, project.id)
        ref = f"refs/heads/{project.default_branch}" if trigger == "push_events" else "refs/tags/v1.0.0"
        return payloads.push_event(project, user, ref, before, after, ctx.instance.external_url, repository)
    if trigger == "resource_access_token_events":
        return _token_sample(ctx, parent, user)
    kind = trigger.removesuffix("_events")
    object_kind = {
        "push": "push",
        "tag_push": "tag_push",
        "issues": "issue",
        "confidential_issues": "issue",
        "note": "note",
        "merge_requests": "merge_request",
        "job": "build",
        "pipeline": "pipeline",
        "wiki_page": "wiki_page",
        "releases": "release",
        "milestone": "milestone",
        "emoji": "emoji",
        "resource_deploy_token": "deploy_token",
    }.get(kind, kind)
    data: dict[str, Any] = {"object_kind": object_kind, "event_type": object_kind}
    if user is not None:
        data["user"] = {"id": user.id, "name": user.name, "username": user.username, "email": user.email}
    if project is not None:
        data["project"] = payloads.project_hook_attrs(project, ctx.instance.external_url)
    else:
        data["project"] = _sample_project(ctx, parent.group)
    data["object_attributes"] = {"id": 0, "sample": True}
    return data


def _token_sample(ctx: Ctx, parent: Parent, user: User | None) -> dict[str, Any]:
    now = ctx.now()
    data: dict[str, Any] = {"object_kind": "access_token"}
    if parent.project is not None:
        data["project"] = payloads.project_hook_attrs(parent.project, ctx.instance.external_url)
    elif parent.group is not None:
        group = parent.group
        data["group"] = {
            "group_name": group.name,
            "group_path": group.path,
            "group_id": group.id,
            "full_path": group.full_path,
        }
    data["object_attributes"] = {
        "user_id": None if user is None else user.id,
        "created_at": payloads.utc_text(now),
        "id": 0,
        "name": "sample token",
        "expires_at": (now.date()).isoformat(),
    }
    data["event_name"] = "expiring_access_token"
    return data
