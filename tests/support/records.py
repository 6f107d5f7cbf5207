"""Members with tokens, issues and notes made over HTTP, for the records and audit tests."""

from __future__ import annotations

import subprocess
from typing import Any

from keycrew.identity.models import User
from tests.support.live import Factory, LiveServer, uid

GUEST, PLANNER, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 15, 20, 30, 40, 50


def add_member(server: LiveServer, kind: str, source_id: int, user_id: int, level: int) -> None:
    """Add a membership through the members API, as root."""
    response = server.root(
        "POST", f"/{kind}/{source_id}/members", json={"user_id": user_id, "access_level": level}
    )
    assert response.status_code == 201, response.text


def set_user_attrs(server: LiveServer, user_id: int, **attrs: Any) -> None:
    """Set user columns directly (admin flags the users API may not expose yet)."""

    with server.runtime.sessions() as db, db.begin():
        user = db.get(User, user_id)
        assert user is not None
        for key, value in attrs.items():
            setattr(user, key, value)


def member_with_token(
    server: LiveServer, factory: Factory, project_id: int, level: int, **attrs: Any
) -> tuple[dict[str, Any], str]:
    user, token = factory.user_with_token(["api"], **attrs)
    add_member(server, "projects", project_id, user["id"], level)
    return user, token


def new_issue(server: LiveServer, project_id: int, token: str | None = None, **body: Any) -> dict[str, Any]:
    payload = {"title": uid("issue ")} | body
    response = server.request(
        "POST", f"/projects/{project_id}/issues", token=token or server.root_token, json=payload
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def run_cli(server: LiveServer, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return server.gitlab_cli(*args, token=token)


def new_note(server: LiveServer, pid: int, iid: int, token: str | None = None, **body: Any) -> dict[str, Any]:
    payload = {"body": "a comment"} | body
    response = server.request(
        "POST", f"/projects/{pid}/issues/{iid}/notes", token=token or server.root_token, json=payload
    )
    assert response.status_code == 201, response.text
    return dict(response.json())
