"""The group flow python-gitlab's own functional tests walk (tests/functional/api/test_groups.py
upstream): subgroups, skip_groups, members, sharing with shared_with_groups read back, the
admin-only memberships with their type filter and Sudo refusal, and group transfers there and
back, driven the same way through the library against keycrew."""

from __future__ import annotations

import gitlab
import pytest

from tests.support.live import LiveServer, uid

OWNER, MAINTAINER, DEVELOPER, GUEST = (
    gitlab.const.AccessLevel.OWNER,
    gitlab.const.AccessLevel.MAINTAINER,
    gitlab.const.AccessLevel.DEVELOPER,
    gitlab.const.AccessLevel.GUEST,
)


def _user(gl: gitlab.Gitlab) -> gitlab.v4.objects.User:
    name = uid("u")
    return gl.users.create(
        {"email": f"{name}@test.example", "username": name, "name": name, "password": "a-long-password-1"}
    )


def test_groups_members_sharing_and_memberships(gl: gitlab.Gitlab) -> None:
    user, user2 = _user(gl), _user(gl)
    first, second, fourth = (gl.groups.create({"name": n, "path": n}) for n in (uid("g"), uid("g"), uid("g")))
    third = gl.groups.create({"name": uid("sub"), "path": uid("sub"), "parent_id": second.id})
    assert third.parent_id == second.id
    assert [g.id for g in second.subgroups.list()] == [third.id]
    assert [g.id for g in second.descendant_groups.list()] == [third.id]
    listed = {g.id for g in gl.groups.list(skip_groups=[third.id, fourth.id], get_all=True)}
    assert first.id in listed
    assert third.id not in listed
    assert fourth.id not in listed

    first.members.create({"access_level": OWNER, "user_id": user.id})
    first.members.create({"access_level": GUEST, "user_id": user2.id})
    second.members.create({"access_level": OWNER, "user_id": user2.id})

    fourth.share(first.id, DEVELOPER)
    fourth.share(second.id, MAINTAINER)
    fourth = gl.groups.get(fourth.id)
    assert {(s["group_id"], s["group_access_level"]) for s in fourth.shared_with_groups} == {
        (first.id, DEVELOPER),
        (second.id, MAINTAINER),
    }
    fourth.unshare(first.id)
    assert [s["group_id"] for s in gl.groups.get(fourth.id).shared_with_groups] == [second.id]

    # Direct memberships only (a share is not one), admins only.
    memberships = user.memberships.list()
    assert [(m.source_type, m.access_level) for m in memberships] == [("Namespace", OWNER)]
    assert len(user2.memberships.list()) == 2
    assert user.memberships.list(type="Project") == []
    assert len(user.memberships.list(type="Namespace")) == 1
    with pytest.raises(gitlab.GitlabListError) as bad:
        user.memberships.list(type="Invalid")
    assert "type does not have a valid value" in str(bad.value)
    with pytest.raises(gitlab.GitlabListError) as forbidden:
        user.memberships.list(sudo=user.username)
    assert "403 Forbidden" in str(forbidden.value)

    # The creator (root) is a member too.
    assert len(first.members.list()) == 3
    assert len(second.members.list()) == 2
    assert [m.id for m in first.members.list(user_ids=[user.id, 99999])] == [user.id]
    first.members.delete(user.id)
    assert user.id not in {m.id for m in first.members.list()}
    assert first.members_all.list()
    member = first.members.get(user2.id)
    member.access_level = OWNER
    member.save()
    assert first.members.get(user2.id).access_level == OWNER
    gl.auth()
    assert gl.user is not None
    second.members.delete(gl.user.id)  # user2 stays its Owner


def test_group_transfer_there_and_back(gl: gitlab.Gitlab, server: LiveServer) -> None:
    parent = gl.groups.create({"name": uid("g"), "path": uid("g")})
    moving = gl.groups.get(gl.groups.create({"name": uid("t"), "path": uid("t")}).id)
    assert moving.parent_id != parent.id
    moving.transfer(parent.id)
    moved = gl.groups.get(moving.id)
    assert moved.parent_id == parent.id
    assert moved.full_path == f"{parent.full_path}/{moving.path}"
    moving.transfer()
    back = gl.groups.get(moving.id)
    assert back.parent_id is None
    assert back.path == back.full_path


def test_project_groups_and_transfer_there_and_back(gl: gitlab.Gitlab) -> None:
    top = gl.groups.create({"name": uid("g"), "path": uid("g")})
    sub = gl.groups.create({"name": uid("s"), "path": uid("s"), "parent_id": top.id})
    inside = gl.projects.create({"name": uid("p"), "namespace_id": sub.id})
    assert {g.id for g in inside.groups.list()} == {top.id, sub.id}

    project = gl.projects.create({"name": uid("p")})
    assert project.namespace["path"] != top.full_path
    project.transfer(top.id)
    assert gl.projects.get(project.id).namespace["path"] == top.full_path
    gl.auth()
    assert gl.user is not None
    project.transfer(gl.user.username)  # a personal namespace named by its path
    assert gl.projects.get(project.id).namespace["path"] == gl.user.username
