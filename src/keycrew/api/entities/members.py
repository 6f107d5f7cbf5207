"""Member entities: GitLab's Entities::Member (the member's ``id`` is the user's id)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keycrew.access.members import Membership, MembershipView
from keycrew.api.entities import day, iso
from keycrew.identity.models import User
from keycrew.identity.views import UserBrief, UserView
from keycrew.namespaces.kinds import SourceType


def _user_basic(user: User | UserView | UserBrief, base: str) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "state": user.state,
        "locked": user.locked_at is not None,
        "avatar_url": None,
        "web_url": f"{base}/{user.username}",
    }


def member(
    found: Membership | MembershipView,
    base: str,
    *,
    creators: Mapping[int, User | UserView | UserBrief] | None = None,
    show_email: bool = False,
    with_source: bool = False,
) -> dict[str, Any]:
    row, user = found.member, found.user
    data = _user_basic(user, base)
    creator = (creators or {}).get(row.created_by_id) if row.created_by_id is not None else None
    data.update(
        {
            "bot": user.is_bot,
            "access_level": row.access_level,
            "created_at": iso(row.created_at),
            "created_by": None if creator is None else _user_basic(creator, base),
            "expires_at": day(row.expires_at),
            "group_saml_identity": None,
            "membership_state": "active",
            "is_using_seat": user.is_human and user.is_active,
        }
    )
    if show_email:
        data["email"] = user.email
    if with_source:
        # Which group or project the listed (highest) membership comes from.
        data["source_type"] = "Project" if found.source_type == SourceType.PROJECT.value else "Group"
        data["source_id"] = found.source_id
    return data
