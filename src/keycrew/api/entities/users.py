"""User entities: basic, public, and the detailed view for the user themself and admins.

Each renders a ``User`` row or a ``UserView`` (its column values, read without the ORM) alike."""

from __future__ import annotations

from typing import Any

from keycrew.access.seats import License
from keycrew.api.entities import day, iso
from keycrew.context import Actor
from keycrew.identity.types import UserType
from keycrew.identity.views import AnyUser, UserBrief

_TYPE_NAMES = {t: t.name.lower() for t in UserType}


def user_basic(user: AnyUser | UserBrief, base: str) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "public_email": None,
        "name": user.name,
        "state": user.state,
        "locked": user.locked_at is not None,
        "avatar_url": None,
        "web_url": f"{base}/{user.username}",
    }


def user_public(user: AnyUser, base: str) -> dict[str, Any]:
    return _public(user, base, user.is_bot)


def _public(user: AnyUser, base: str, bot: bool) -> dict[str, Any]:
    data = user_basic(user, base)
    data.update(
        {
            "created_at": iso(user.created_at),
            "bio": user.bio or "",
            "location": "",
            "linkedin": "",
            "twitter": "",
            "discord": "",
            "github": "",
            "website_url": "",
            "organization": "",
            "job_title": "",
            "pronouns": None,
            "bot": bot,
            "work_information": None,
            "followers": 0,
            "following": 0,
            "is_followed": False,
            "local_time": None,
        }
    )
    return data


def user_listed(user: AnyUser, base: str) -> dict[str, Any]:
    """A user in a list seen by a non-admin (GitLab's UserBasic), with the bot badge."""
    data = user_basic(user, base)
    data["bot"] = user.is_bot
    return data


def user_detail(
    user: AnyUser,
    base: str,
    *,
    admin_view: bool,
    namespace_id: int | None = None,
    using_license_seat: bool = False,
) -> dict[str, Any]:
    """What /user returns, and what admins see for any user."""
    user_type = user.type
    data = _public(user, base, user_type.is_bot)
    data.update(
        {
            "last_sign_in_at": iso(user.last_sign_in_at),
            "confirmed_at": iso(user.confirmed_at),
            "last_activity_on": day(user.last_activity_on),
            "email": user.email,
            "theme_id": 3,
            "color_scheme_id": 1,
            "projects_limit": user.projects_limit,
            "current_sign_in_at": iso(user.current_sign_in_at),
            "identities": [],
            "can_create_group": user.can_create_group,
            "can_create_project": user.projects_limit > 0,
            "two_factor_enabled": False,
            "external": user.external,
            "private_profile": user.private_profile,
            "commit_email": user.email,
            "user_type": _TYPE_NAMES[user_type],
        }
    )
    if admin_view:
        data.update(
            {
                "is_admin": user.admin,
                "note": user.note,
                "namespace_id": namespace_id,
                "created_by": None,
                "current_sign_in_ip": None,
                "last_sign_in_ip": None,
                "sign_in_count": user.sign_in_count,
                "is_auditor": False,
                "using_license_seat": using_license_seat,
                "email_reset_offered_at": None,
            }
        )
    else:
        data["is_admin"] = user.admin
    return data


def user_for(viewer: Actor, user: AnyUser, base: str) -> dict[str, Any]:
    """The richest view ``viewer`` may see of ``user``."""
    if viewer.is_admin:
        return user_detail(user, base, admin_view=True)
    if viewer.user_id == user.id:
        return user_detail(user, base, admin_view=False)
    return user_public(user, base)


def license_entity(lic: License) -> dict[str, Any]:
    """GitLab's GitlabLicense entity (GET /license)."""
    return {
        "id": lic.id,
        "plan": lic.plan,
        "created_at": iso(lic.created_at),
        "starts_at": day(lic.starts_at),
        "expires_at": day(lic.expires_at),
        "historical_max": lic.historical_max,
        "maximum_user_count": lic.maximum_user_count,
        "licensee": dict(lic.licensee),
        "add_ons": dict(lic.add_ons),
        "expired": lic.expired,
        "overage": lic.overage,
        "user_limit": lic.user_limit,
        "active_users": lic.active_users,
    }
