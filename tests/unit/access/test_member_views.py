"""Rule: reads of groups and memberships as column values give what the ORM gives: a Resource
holding a read view follows the same rules, a member listing (direct or inherited, filtered, paged,
counted) lists what ``all_members`` lists, renders the same JSON, and ``read_group`` hides what
``find_group`` hides (keycrew/access/members.py, resources.py, lookup.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from keycrew.access.levels import AccessLevel
from keycrew.access.lookup import find_group, read_group
from keycrew.access.members import (
    MemberListing,
    all_members,
    get_member,
    member_listing,
    membership_view,
    read_any_member,
    read_member,
)
from keycrew.access.models import Member
from keycrew.access.resources import Resource
from keycrew.api.entities.members import member as member_entity
from keycrew.api.entities.namespaces import group_detail
from keycrew.context import Ctx
from keycrew.errors import NotFound
from keycrew.identity.views import user_views
from keycrew.namespaces import views
from keycrew.namespaces.kinds import Visibility
from keycrew.namespaces.models import Namespace, Project
from tests.unit import factories
from tests.unit.conftest import World

L = AccessLevel
BASE = "https://keycrew.example.com"


def _view(ctx: Ctx, obj: Project | Namespace) -> Resource:
    if isinstance(obj, Project):
        project = views.read_project(ctx.reads, obj.id)
        assert project is not None
        return Resource(project)
    group = views.read_namespace(ctx.reads, obj.id)
    assert group is not None
    return Resource(group)


def _tree(world: World) -> tuple[Namespace, Namespace, Project]:
    """A group, a subgroup and a project in it, with memberships at every level."""
    root = world.as_root()
    top = factories.group(root)
    sub = factories.group(root, parent=top)
    project = factories.project(root, group=sub)
    for level_top, level_sub, level_project in (
        (L.DEVELOPER, None, L.MAINTAINER),  # higher below
        (L.MAINTAINER, L.REPORTER, None),  # higher above
        (L.REPORTER, L.REPORTER, L.REPORTER),  # a tie: the nearest source
        (None, L.GUEST, None),
        (L.DEVELOPER, None, None),
    ):
        user = factories.user(root)
        for source, level in ((top, level_top), (sub, level_sub), (project, level_project)):
            if level is not None:
                factories.membership(root, source, user, level)
    expired = factories.user(root)
    factories.membership(root, project, expired, L.DEVELOPER, expires_at=world.days(1))
    world.clock.advance(days=2)
    return top, sub, project


def _page(ctx: Ctx, listing: MemberListing, limit: int, offset: int) -> list[tuple[int, str, int, int]]:
    rows = ctx.reads.rows(listing.page, {**listing.values, "limit": limit, "offset": offset})
    found = [membership_view(r) for r in rows]
    return [(m.user.id, m.source_type, m.source_id, m.member.access_level) for m in found]


def _count(ctx: Ctx, listing: MemberListing) -> int:
    return int(ctx.reads.scalar(listing.count, {**listing.values, "count_limit": 10_001}))


def test_a_resource_holding_a_view_follows_the_same_rules(world: World) -> None:
    top, sub, project = _tree(world)
    personal = factories.project(world.as_root())
    member = factories.user(world.as_root())
    factories.membership(world.as_root(), top, member, L.REPORTER)
    ctx = world.ctx(member)
    for obj in (top, sub, project, personal):
        orm, view = Resource(obj), _view(ctx, obj)
        assert view.is_view
        assert not orm.is_view
        same = ("is_project", "source_type", "id", "full_path", "kind", "entity", "admin_level")
        assert [getattr(view, name) for name in same] == [getattr(orm, name) for name in same]
        assert view.level_of(ctx) == orm.level_of(ctx)
        assert view.inherited_ids(ctx.reads) == [g.id for g in orm.inherited_from()]
        assert orm.inherited_ids(ctx.reads) == [g.id for g in orm.inherited_from()]
        with pytest.raises(TypeError):
            _ = view.project
        with pytest.raises(TypeError):
            _ = view.group


@pytest.mark.parametrize("inherited", [False, True])
def test_a_listing_lists_what_the_orm_lists_filtered_and_paged(world: World, inherited: bool) -> None:
    top, sub, project = _tree(world)
    ctx = world.as_root()
    for obj in (top, sub, project):
        orm, view = Resource(obj), _view(ctx, obj)
        if inherited:
            expected = [
                (m.user.id, m.source_type, m.source_id, m.member.access_level) for m in all_members(ctx, orm)
            ]
        else:
            rows = ctx.db.scalars(
                select(Member)
                .where(Member.source_type == orm.source_type.value, Member.source_id == orm.id)
                .order_by(Member.id)
            ).all()
            direct = [get_member(ctx, orm, m.user_id) for m in rows if m.expires_at is None]
            expected = [(m.user.id, m.source_type, m.source_id, m.member.access_level) for m in direct]
        listing = member_listing(ctx, view, inherited=inherited)
        assert _page(ctx, listing, 100, 0) == expected
        assert _count(ctx, listing) == len(expected)
        assert _page(ctx, listing, 2, 1) == expected[1:3]
        some = [row[0] for row in expected[::2]] + [10**6]
        picked = member_listing(ctx, view, inherited=inherited, user_ids=some)
        assert _page(ctx, picked, 100, 0) == [row for row in expected if row[0] in some]
        assert _count(ctx, member_listing(ctx, view, inherited=inherited, user_ids=[])) == 0
        if expected:
            user = user_views(ctx.reads, [expected[-1][0]])[expected[-1][0]]
            for search in (user.username[2:8].upper(), user.email.upper()):
                searched = member_listing(ctx, view, inherited=inherited, search=search)
                assert [row[0] for row in _page(ctx, searched, 100, 0)] == [user.id]
        assert _page(ctx, member_listing(ctx, view, inherited=inherited, search="%"), 100, 0) == []


def test_single_members_and_their_json(world: World) -> None:
    top, _sub, project = _tree(world)
    ctx = world.as_root()
    orm, view = Resource(project), _view(ctx, project)
    for found in all_members(ctx, orm):
        read = read_any_member(ctx, view, found.user.id)
        creators = user_views(ctx.reads, [world.root.id])
        for with_source in (False, True):
            assert member_entity(read, BASE, creators=creators, show_email=True, with_source=with_source) == (
                member_entity(
                    found,
                    BASE,
                    creators={world.root.id: world.root},
                    show_email=True,
                    with_source=with_source,
                )
            )
        if found.source_type == "Project":
            direct = read_member(ctx, view, found.user.id)
            assert member_entity(direct, BASE) == member_entity(get_member(ctx, orm, found.user.id), BASE)
        else:
            with pytest.raises(NotFound):
                read_member(ctx, view, found.user.id)
    with pytest.raises(NotFound):
        read_any_member(ctx, _view(ctx, top), world.root.id + 10**6)


def test_read_group_hides_what_find_group_hides(world: World) -> None:
    root = world.as_root()
    private = factories.group(root, visibility=Visibility.PRIVATE)
    inner = factories.project(root, group=private, visibility=Visibility.PRIVATE)
    public = factories.group(root, visibility=Visibility.PUBLIC)
    stranger, member = factories.user(root), factories.user(root)
    factories.membership(root, inner, member, L.GUEST)
    personal = factories.project(world.ctx(stranger))
    for actor in (None, stranger, member, world.root):
        ctx = world.ctx(actor)
        refs: list[str | int] = [private.id, private.full_path, public.id, public.full_path.upper()]
        refs += [personal.namespace_id, "0", "404404404404", "no/such", str(private.id)]
        for ref in refs:
            try:
                expected = find_group(ctx, ref).id
            except NotFound:
                with pytest.raises(NotFound):
                    read_group(ctx, ref)
            else:
                assert read_group(ctx, ref).id == expected


def test_a_group_view_renders_as_the_group(world: World) -> None:
    top, sub, _project = _tree(world)
    ctx = world.as_root()
    for group in (top, sub):
        view = read_group(ctx, group.id)
        assert group_detail(view, BASE, []) == group_detail(group, BASE, [])
        assert group_detail(view, BASE, None) == group_detail(group, BASE, None)


def test_the_highest_level_wins_and_the_nearest_source_on_a_tie(world: World) -> None:
    top, sub, project = _tree(world)
    ctx = world.as_root()
    listing = member_listing(ctx, _view(ctx, project), inherited=True)
    found = {user_id: (kind, source, level) for user_id, kind, source, level in _page(ctx, listing, 100, 0)}
    users = sorted(found)
    assert users[0] == world.root.id  # Owner of both groups (their creator): the subgroup is nearer
    g, s, p = ("Namespace", top.id), ("Namespace", sub.id), ("Project", project.id)
    assert [found[u] for u in users] == [
        (*s, L.OWNER),
        (*p, L.MAINTAINER),
        (*g, L.MAINTAINER),
        (*p, L.REPORTER),
        (*s, L.GUEST),
        (*g, L.DEVELOPER),
    ]  # and the expired membership is not listed
