"""Rule: a project or a group as one Resource: its membership source type, its kind as GitLab
words messages, its audit entity, the level that administers it (project Maintainer, group
Owner), the actor's level there and where members inherit from (keycrew/access/resources.py)."""

from __future__ import annotations

import pytest

from keycrew.access.levels import AccessLevel
from keycrew.access.resources import Resource
from keycrew.audit.service import Entity
from keycrew.namespaces.kinds import SourceType
from tests.unit import factories
from tests.unit.conftest import World


def test_a_project(world: World) -> None:
    project = factories.project(world.as_root())
    resource = Resource.of(project)
    assert resource.is_project
    assert (resource.project, resource.group) == (project, None)
    assert (resource.source_type, resource.source_type.value) == (SourceType.PROJECT, "Project")
    assert resource.kind == "project"
    assert resource.entity == Entity("Project", project.id, project.full_path)
    assert resource.admin_level == AccessLevel.MAINTAINER
    assert (resource.id, resource.full_path) == (project.id, project.full_path)


def test_a_group(world: World) -> None:
    group = factories.group(world.as_root())
    resource = Resource.of(group)
    assert not resource.is_project
    assert (resource.project, resource.group) == (None, group)
    assert (resource.source_type, resource.source_type.value) == (SourceType.NAMESPACE, "Namespace")
    assert resource.kind == "group"
    assert resource.entity == Entity("Group", group.id, group.full_path)
    assert resource.admin_level == AccessLevel.OWNER


def test_either_takes_exactly_one(world: World) -> None:
    project, group = factories.project(world.as_root()), factories.group(world.as_root())
    assert Resource.either(project, None).obj is project
    assert Resource.either(None, group).obj is group
    for both_or_none in ((project, group), (None, None)):
        with pytest.raises(ValueError, match="exactly one"):
            Resource.either(*both_or_none)


def test_the_actors_level(world: World) -> None:
    group = factories.group(world.as_root())
    project = factories.project(world.as_root(), group=group)
    member, stranger = factories.user(world.as_root()), factories.user(world.as_root())
    factories.membership(world.as_root(), group, member, AccessLevel.REPORTER)
    factories.membership(world.as_root(), project, member, AccessLevel.DEVELOPER)
    assert Resource(group).level_of(world.ctx(member)) == AccessLevel.REPORTER
    assert Resource(project).level_of(world.ctx(member)) == AccessLevel.DEVELOPER
    assert Resource(project).level_of(world.ctx(stranger)) == AccessLevel.NO_ACCESS
    assert Resource(project).level_of(world.ctx(None)) == AccessLevel.NO_ACCESS
    admin = factories.user(world.as_root(), admin=True)
    assert Resource(project).level_of(world.ctx(admin)) == AccessLevel.OWNER


def test_a_group_level_reaches_projects_and_subgroups_below(world: World) -> None:
    group = factories.group(world.as_root())
    subgroup = factories.group(world.as_root(), parent=group)
    project = factories.project(world.as_root(), group=subgroup)
    member = factories.user(world.as_root())
    factories.membership(world.as_root(), group, member, AccessLevel.MAINTAINER)
    assert Resource(subgroup).level_of(world.ctx(member)) == AccessLevel.MAINTAINER
    assert Resource(project).level_of(world.ctx(member)) == AccessLevel.MAINTAINER


def test_where_members_inherit_from(world: World) -> None:
    group = factories.group(world.as_root())
    subgroup = factories.group(world.as_root(), parent=group)
    in_subgroup = factories.project(world.as_root(), group=subgroup)
    personal = factories.project(world.as_root())
    assert [g.id for g in Resource(in_subgroup).inherited_from()] == [subgroup.id, group.id]
    assert [g.id for g in Resource(subgroup).inherited_from()] == [group.id]
    assert Resource(group).inherited_from() == []
    assert Resource(personal).inherited_from() == []
