"""Namespaces: every user has a personal one at the path of their username; groups are the others."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import BindParameter, Select, and_, bindparam, func, or_, select

from keycrew.access import queries
from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import read_namespace
from keycrew.access.policy import group_level
from keycrew.context import Ctx
from keycrew.db.base import MAX_ID
from keycrew.db.reads import prepared
from keycrew.db.text import contains
from keycrew.errors import NotFound
from keycrew.identity.models import User
from keycrew.namespaces.models import Namespace
from keycrew.namespaces.views import NAMESPACE_COLUMNS, NamespaceView

_N = Namespace.__table__.c
_U = User.__table__.c
_PERSONAL = select(*NAMESPACE_COLUMNS).select_from(
    Namespace.__table__.join(User.__table__, and_(_N.owner_id == _U.id, _N.kind == "user"))
)
_PERSONAL_BY_USER_ID = prepared(_PERSONAL.where(_U.id == bindparam("id")))
_PERSONAL_BY_USERNAME = prepared(_PERSONAL.where(_U.username_lower == bindparam("username")))


def namespaces_query(ctx: Ctx, *, search: str | None = None, owned_only: bool = False) -> Select[Any]:
    """GET /namespaces: admins see every namespace; others their own and the groups they belong to
    (with the subgroups those reach), or with ``owned_only`` the groups they own."""
    query = select(Namespace)
    user = ctx.actor.facts
    if user is None:
        query = query.where(Namespace.id < 0)
    elif not ctx.actor.is_admin:
        level = AccessLevel.OWNER if owned_only else AccessLevel.MINIMAL_ACCESS
        query = query.where(
            or_(
                and_(Namespace.kind == "user", Namespace.owner_id == user.id),
                queries.groups_reached(ctx.reads, user.id, ctx.today(), level),
            )
        )
    if search:
        query = query.where(contains(Namespace.name, search) | contains(Namespace.path, search))
    return query.order_by(Namespace.id)


def find_namespace(ctx: Ctx, ref: str | int) -> NamespaceView:
    """A namespace the actor holds or belongs to (admins: any); NotFound("Namespace") otherwise."""
    ns = read_namespace(ctx, ref)
    if ns is None:
        raise NotFound("Namespace")
    if ctx.actor.is_admin:
        return ns
    if group_level(ctx.reads, ctx.actor.facts, ns, ctx.today()) < AccessLevel.MINIMAL_ACCESS:
        raise NotFound("Namespace")
    return ns


def user_namespace(ctx: Ctx, ref: str) -> NamespaceView:
    """The personal namespace of the user named by ``ref``, an id or a username (any case), as
    GitLab's ``find_user`` reads ``:user_id``: one statement. Raises NotFound("User")."""
    if ref.isascii() and ref.isdigit():
        user_id = int(ref) if len(ref) <= 20 else 0
        row = ctx.reads.first(_PERSONAL_BY_USER_ID, {"id": user_id if user_id <= MAX_ID else 0})
    else:
        row = ctx.reads.first(_PERSONAL_BY_USERNAME, {"username": ref.lower()}) if len(ref) <= 255 else None
    if row is None:
        raise NotFound("User")
    return NamespaceView(*row)


# Suggestions try numbered variants this many at a time, in at most this many batches.
_SUGGESTION_BATCH = 100
_SUGGESTION_BATCHES = 10
_SLUG_INVALID = re.compile(r"[^a-zA-Z0-9_.-]+")
_SLUG_RUNS = re.compile(r"([_.-])[_.-]+")


def _slug(path: str) -> str:
    """``path`` made a valid path, as GitLab's ``Gitlab::Slug::Path``: other characters become
    "-", runs of separators one, none at either end, no ".git"/".atom" ending."""
    slug = _SLUG_RUNS.sub(r"\1", _SLUG_INVALID.sub("-", path)).strip("_.-")
    for suffix in (".git", ".atom"):
        if slug.lower().endswith(suffix):
            slug = slug[: -len(suffix)].rstrip("_.-")
    return slug or "blank"


def _under(top_level: bool) -> tuple[Any, Any]:
    """The statements of ``path_exists`` for namespaces at the top level, or under ``:parent_id``."""
    siblings = Namespace.parent_id.is_(None) if top_level else Namespace.parent_id == bindparam("parent_id")
    path, name = func.lower(Namespace.path), func.lower(Namespace.name)
    taken = select(Namespace.id).where(siblings, path == bindparam("path")).limit(1)
    candidates: BindParameter[list[str]] = bindparam("candidates", expanding=True)
    used = select(path, name).where(siblings, or_(path.in_(candidates), name.in_(candidates)))
    return prepared(taken), prepared(used)


_PATH_TAKEN = {top_level: _under(top_level) for top_level in (True, False)}


def path_exists(ctx: Ctx, path: str, parent_id: int | None) -> tuple[bool, list[str]]:
    """GET /namespaces/:path/exists, as GitLab: whether a namespace directly under ``parent_id``
    (None: a top-level one, personal namespaces included) has this path, in any case; if so the
    path to suggest instead, ``path1``, ``path2``... the first that no such namespace has as its
    path or name (none after a thousand). Projects are not namespaces there, and are not looked at."""
    taken, used = _PATH_TAKEN[parent_id is None]
    values: dict[str, Any] = {"path": path.lower()}
    if parent_id is not None:
        values["parent_id"] = parent_id if 0 < parent_id <= MAX_ID else 0
    if ctx.reads.first(taken, values) is None:
        return False, []
    slug = _slug(path)
    for batch in range(_SUGGESTION_BATCHES):
        numbers = range(batch * _SUGGESTION_BATCH, (batch + 1) * _SUGGESTION_BATCH)
        candidates = [slug if n == 0 else f"{slug}{n}" for n in numbers]
        rows = ctx.reads.rows(used, {**values, "candidates": [c.lower() for c in candidates]})
        names = {value for row in rows for value in row}
        free = next((c for c in candidates if c.lower() not in names), None)
        if free is not None:
            return True, [free]
    return True, []
