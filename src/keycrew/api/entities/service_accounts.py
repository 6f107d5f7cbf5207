"""The ServiceAccount entity of GitLab's service-account APIs."""

from __future__ import annotations

from typing import Any

from keycrew.identity.models import User


def service_account(user: User) -> dict[str, Any]:
    """``id, username, name, email`` (+ ``public_email`` and ``external``, as GitLab shows them).

    No ``group_id``/``project_id``: python-gitlab builds token paths from those when present.
    """
    return {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "public_email": None,
        "external": user.external,
    }
