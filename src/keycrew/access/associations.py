"""What a personal access token reaches: the groups and projects its user may see, with the user's
levels there (GitLab's ``GET /personal_access_tokens/self/associations``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Date, Integer, and_, bindparam, select

from keycrew.access.groups import groups_query
from keycrew.access.levels import AccessLevel
from keycrew.access.models import Member
from keycrew.access.policy import live
from keycrew.access.projects import projects_listing
from keycrew.context import Ctx
from keycrew.db.listings import Listing
from keycrew.db.reads import prepared
from keycrew.errors import Invalid
from keycrew.namespaces.kinds import SourceType
from keycrew.namespaces.models import Namespace
from keycrew.namespaces.views import NamespaceLike, ProjectLike

NOT_A_PERSONAL_TOKEN = "This endpoint requires token type to be a personal access token"

_M = Member.__table__.c
_N = Namespace.__table__.c

# The user's live group memberships with the groups' paths: a group's level is the highest of the
# memberships on it and on the groups above it (GitLab's ``highest_group_member``).
_GROUP_MEMBERSHIPS = prepared(
    select(_N.full_path, _M.access_level)
    .select_from(Member.__table__)
    .join(
        Namespace.__table__,
        and_(_M.source_type == SourceType.NAMESPACE.value, _N.id == _M.source_id),
    )
    .where(_M.user_id == bindparam("user_id", type_=Integer()), live(bindparam("today", type_=Date())))
)
_PROJECT_MEMBERSHIPS = prepared(
    select(_M.source_id, _M.access_level).where(
        _M.user_id == bindparam("user_id", type_=Integer()),
        _M.source_type == SourceType.PROJECT.value,
        _M.source_id.in_(bindparam("ids", expanding=True)),
        live(bindparam("today", type_=Date())),
    )
)


def check_personal_token(ctx: Ctx) -> None:
    """Only a personal access token (a person's, a service account's, or a project or group bot's:
    all personal access tokens) may ask what it reaches; any other credential is GitLab's 400."""
    if ctx.actor.token_id is None:
        raise Invalid(NOT_A_PERSONAL_TOKEN)


def associated_groups(ctx: Ctx, min_access_level: int | None) -> Any:
    """The groups the actor may see (GitLab's GroupsFinder with its defaults: public and internal
    groups too), or with ``min_access_level`` those where the actor's level is at least that; by
    name. A select of ``Namespace``."""
    check_personal_token(ctx)
    return groups_query(ctx, all_available=True, min_access_level=min_access_level)


def associated_projects(ctx: Ctx, min_access_level: int | None) -> Listing:
    """The projects the actor may see (GitLab's ProjectsFinder: newest id first), or with
    ``min_access_level`` those where the actor's level is at least that."""
    check_personal_token(ctx)
    return projects_listing(ctx, min_access_level=min_access_level, order_by="id", sort="desc")


class Levels:
    """The actor's levels on listed groups and projects, read in two statements for a page."""

    def __init__(self, ctx: Ctx, projects: Sequence[ProjectLike]) -> None:
        user = ctx.actor.facts
        self._user_id = None if user is None else user.id
        self._groups: list[tuple[str, int]] = []
        self._projects: dict[int, int] = {}
        if user is None:
            return
        today = ctx.today()
        self._groups = [
            (str(path), int(level))
            for path, level in ctx.reads.rows(_GROUP_MEMBERSHIPS, {"user_id": user.id, "today": today})
        ]
        if projects:
            rows = ctx.reads.rows(
                _PROJECT_MEMBERSHIPS, {"user_id": user.id, "ids": [p.id for p in projects], "today": today}
            )
            self._projects = {int(source_id): int(level) for source_id, level in rows}

    def group(self, group: NamespaceLike) -> int | None:
        """The highest level of a live membership on ``group`` or a group above it, or None."""
        path = group.full_path
        levels = [level for at, level in self._groups if path == at or path.startswith(at + "/")]
        return max(levels) if levels else None

    def project(self, project: ProjectLike) -> tuple[int | None, int | None]:
        """(the project membership's level, the level from its group), each None without one. The
        holder of a personal namespace is an Owner of its projects."""
        ns = project.namespace
        direct = self._projects.get(project.id)
        if direct is None and ns.kind == "user" and ns.owner_id == self._user_id:
            direct = int(AccessLevel.OWNER)
        return direct, (self.group(ns) if ns.is_group else None)
