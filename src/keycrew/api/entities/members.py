"""Member entities: GitLab's Entities::Member (the member's ``id`` is the user's id)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keycrew.access.billing import BillableMember, BillableMembership
from keycrew.access.levels import AccessLevel
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
    using_seat: bool | None = None,
) -> dict[str, Any]:
    """GitLab's member entity; ``using_seat`` (given only when the request asked for
    ``show_seat_info``, as GitLab's) is whether the user takes a seat (``access.seats``)."""
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
        }
    )
    if using_seat is not None:
        data["is_using_seat"] = using_seat
    if show_email:
        data["email"] = user.email
    if with_source:
        # Which group or project the listed (highest) membership comes from.
        data["source_type"] = "Project" if found.source_type == SourceType.PROJECT.value else "Group"
        data["source_id"] = found.source_id
    return data


def billable_member(
    found: BillableMember, base: str, *, show_email: bool, last_owner_id: int | None
) -> dict[str, Any]:
    """GitLab's BillableMember: the user, how they belong to the group's hierarchy, their activity.
    ``email`` is the address for admins; keycrew has no public e-mail addresses, so null otherwise."""
    user = found.user
    data = _user_basic(user, base)
    data.update(
        {
            "email": user.email if show_email else None,
            "last_activity_on": day(user.last_activity_on),
            "membership_type": found.membership_type,
            "removable": found.removable,
            "created_at": iso(user.created_at),
            "is_last_owner": user.id == last_owner_id,
            "last_login_at": iso(user.current_sign_in_at),
        }
    )
    return data


def billable_membership(found: BillableMembership, base: str) -> dict[str, Any]:
    """GitLab's BillableMembership: one direct membership of a billable member."""
    group = found.source_type == SourceType.NAMESPACE.value
    members_url = (
        f"{base}/groups/{found.full_path}/-/group_members"
        if group
        else f"{base}/{found.full_path}/-/project_members"
    )
    return {
        "id": found.id,
        "source_id": found.source_id,
        "source_full_name": found.full_name,
        "source_members_url": members_url,
        "created_at": iso(found.created_at),
        "expires_at": day(found.expires_at),
        "access_level": {
            "string_value": AccessLevel(found.access_level).label,
            "integer_value": found.access_level,
        },
    }
