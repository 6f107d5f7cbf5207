"""GET/DELETE /groups/:id/billable_members (GitLab EE): who in a top-level group's hierarchy takes
a seat, their memberships there, and removing them; ``is_using_seat`` of the member entities and
GET /license agree with them on every plan."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import gitlab
import pytest
from sqlalchemy import select, update

from keycrew.audit.models import AuditEvent
from keycrew.identity.models import User
from tests.functional.test_seats import license_as
from tests.support.live import Factory, LiveServer, uid
from tests.support.statements import statements_of

MINIMAL, GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 5, 10, 20, 30, 40, 50
BAD_REQUEST = {"message": "400 Bad request"}


def billable(server: LiveServer, group_id: int, token: str | None = None, **params: Any) -> Any:
    return server.request(
        "GET", f"/groups/{group_id}/billable_members", token=token or server.root_token, params=params
    )


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()]


@pytest.fixture
def world(server: LiveServer, factory: Factory) -> dict[str, Any]:
    """A top-level group owned by a user, with a subgroup and a project in it, and members of
    every kind: billable ones, a Guest, a Minimal Access member, a blocked one, a service account
    and a project bot; and an outsider member of another group."""
    owner, owner_token = factory.user_with_token(name=uid("Owner"))
    top = factory.group(token=owner_token)
    sub = factory.group(token=owner_token, parent_id=top["id"], name="Sub Name", path=uid("sub"))
    project = factory.project(token=owner_token, namespace_id=sub["id"], name="My Project")
    people = {
        name: factory.user(name=f"{name.title()} {uid('n')}")
        for name in ("developer", "reporter", "guest", "minimal", "blocked", "outsider")
    }
    factory.member("groups", top["id"], people["developer"]["id"], DEVELOPER)
    factory.member("projects", project["id"], people["reporter"]["id"], REPORTER)
    factory.member("groups", sub["id"], people["guest"]["id"], GUEST)
    factory.member("groups", top["id"], people["minimal"]["id"], MINIMAL)
    factory.member("groups", sub["id"], people["blocked"]["id"], DEVELOPER)
    assert server.root("POST", f"/users/{people['blocked']['id']}/block").status_code == 201
    factory.member("groups", factory.group()["id"], people["outsider"]["id"], DEVELOPER)
    account = server.root("POST", "/service_accounts", json={})
    assert account.status_code == 201, account.text
    factory.member("groups", top["id"], account.json()["id"], DEVELOPER)
    bot = server.request(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        token=owner_token,
        json={"name": "bot", "scopes": ["api"], "access_level": DEVELOPER},
    )
    assert bot.status_code == 201, bot.text
    return {
        "owner": owner,
        "owner_token": owner_token,
        "top": top,
        "sub": sub,
        "project": project,
        "account": account.json(),
        "bot_id": bot.json()["user_id"],
        **people,
    }


@pytest.fixture
def premium(server: LiveServer) -> Iterator[None]:
    with license_as(server, "premium", 100):
        yield


def test_lists_the_billable_members_of_the_hierarchy(
    server: LiveServer, world: dict[str, Any], premium: None
) -> None:
    # On Premium Guests take a seat; Minimal Access, blocked users, service accounts, bots and
    # members of other groups do not. By id, as GitLab without a sort.
    expected = sorted(world[name]["id"] for name in ("owner", "developer", "reporter", "guest"))
    response = billable(server, world["top"]["id"], token=world["owner_token"])
    assert ids(response) == expected
    assert response.headers["X-Total"] == "4"
    by_id = {item["id"]: item for item in response.json()}
    reporter = by_id[world["reporter"]["id"]]
    assert set(reporter) == {
        "id", "username", "name", "state", "locked", "avatar_url", "web_url", "email",
        "last_activity_on", "membership_type", "removable", "created_at", "is_last_owner",
        "last_login_at",
    }  # fmt: skip
    assert reporter["membership_type"] == "project_member"
    assert reporter["removable"] is True
    assert reporter["email"] is None  # not shown to a group Owner (keycrew keeps no public e-mail)
    assert reporter["web_url"] == f"{server.url}/{world['reporter']['username']}"
    assert by_id[world["guest"]["id"]]["membership_type"] == "group_member"
    assert by_id[world["owner"]["id"]]["is_last_owner"] is True
    assert by_id[world["developer"]["id"]]["is_last_owner"] is False
    # Admins see e-mail addresses.
    as_admin = {item["id"]: item for item in billable(server, world["top"]["id"]).json()}
    assert as_admin[world["reporter"]["id"]]["email"] == world["reporter"]["email"]


def test_ultimate_leaves_guests_out(server: LiveServer, world: dict[str, Any]) -> None:
    assert server.root("GET", "/license").json()["plan"] == "ultimate"
    expected = sorted(world[name]["id"] for name in ("owner", "developer", "reporter"))
    assert ids(billable(server, world["top"]["id"], token=world["owner_token"])) == expected


def test_search_sort_and_pagination(
    server: LiveServer, gl: gitlab.Gitlab, world: dict[str, Any], premium: None
) -> None:
    top = world["top"]["id"]
    developer = world["developer"]
    assert ids(billable(server, top, search=developer["name"][3:].lower())) == [developer["id"]]
    assert ids(billable(server, top, search=developer["username"])) == [developer["id"]]
    names = sorted((world[n]["name"], world[n]["id"]) for n in ("owner", "developer", "reporter", "guest"))
    assert ids(billable(server, top, sort="name_asc")) == [i for _, i in names]
    assert ids(billable(server, top, sort="name_desc")) == [i for _, i in reversed(names)]
    # Highest role in the hierarchy: Owner, Developer, Reporter, Guest.
    by_level = [world[n]["id"] for n in ("owner", "developer", "reporter", "guest")]
    assert ids(billable(server, top, sort="access_level_desc")) == by_level
    assert ids(billable(server, top, sort="access_level_asc")) == by_level[::-1]
    joined = [world[n]["id"] for n in ("owner", "developer", "reporter", "guest")]
    assert ids(billable(server, top, sort="oldest_joined")) == joined
    assert ids(billable(server, top, sort="last_joined")) == joined[::-1]
    for sort in ("oldest_sign_in", "recent_sign_in", "last_activity_on_asc", "last_activity_on_desc"):
        assert sorted(ids(billable(server, top, sort=sort))) == sorted(joined), sort
    bad = billable(server, top, sort="fake_sorting")
    assert (bad.status_code, bad.json()) == (400, {"error": "sort does not have a valid value"})

    page = billable(server, top, per_page=1, page=2)
    assert ids(page) == [sorted(joined)[1]]
    assert (page.headers["X-Total"], page.headers["X-Total-Pages"]) == ("4", "4")
    listed = gl.groups.get(top, lazy=True).billable_members.list(iterator=True, per_page=1)
    assert [m.id for m in listed] == sorted(joined)


def test_activity_sorts(server: LiveServer, factory: Factory) -> None:
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    users = [factory.user() for _ in range(3)]
    for user in users:
        factory.member("groups", group["id"], user["id"], DEVELOPER)
    now = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    assert server.runtime.usage is not None
    server.runtime.usage.flush()  # the owner's token use is written now, not after the update below
    with server.runtime.sessions() as db, db.begin():
        db.execute(
            update(User)
            .where(User.id == owner["id"])
            .values(current_sign_in_at=None, last_activity_on=dt.date(2025, 1, 1))
        )
        for days, user in enumerate(users, start=1):
            db.execute(
                update(User)
                .where(User.id == user["id"])
                .values(current_sign_in_at=now - dt.timedelta(days=days), last_activity_on=now.date())
            )
    # The owner never signed in (last both ways) and was active long ago.
    in_order = [u["id"] for u in users]
    assert ids(billable(server, group["id"], sort="recent_sign_in")) == [*in_order, owner["id"]]
    assert ids(billable(server, group["id"], sort="oldest_sign_in")) == [*in_order[::-1], owner["id"]]
    assert ids(billable(server, group["id"], sort="last_activity_on_desc")) == [*in_order, owner["id"]]
    first = billable(server, group["id"], sort="recent_sign_in").json()[0]
    assert first["last_login_at"].startswith("2026-01-09T00:00:00")
    assert first["last_activity_on"] == "2026-01-10"


def test_only_owners_of_top_level_groups(server: LiveServer, factory: Factory, world: dict[str, Any]) -> None:
    top, sub = world["top"]["id"], world["sub"]["id"]
    maintainer, maintainer_token = factory.user_with_token()
    factory.member("groups", top, maintainer["id"], MAINTAINER)
    _, stranger_token = factory.user_with_token()
    for token in (maintainer_token, stranger_token):
        for path in (
            f"/groups/{top}/billable_members",
            f"/groups/{top}/billable_members/{world['developer']['id']}/memberships",
        ):
            response = server.request("GET", path, token=token)
            # A private group is not even visible to a stranger.
            assert response.status_code in (400, 404), (path, response.text)
            if token == maintainer_token:
                assert (response.status_code, response.json()) == (400, BAD_REQUEST)
    # A subgroup: 400 even for its Owner and for admins.
    for token in (world["owner_token"], server.root_token):
        response = billable(server, sub, token=token)
        assert (response.status_code, response.json()) == (400, BAD_REQUEST)
    missing = billable(server, 999999999)
    assert (missing.status_code, missing.json()) == (404, {"message": "404 Group Not Found"})
    assert server.request("GET", f"/groups/{top}/billable_members").status_code == 401


def test_memberships_of_a_billable_member(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory, world: dict[str, Any], premium: None
) -> None:
    top, sub, project = world["top"], world["sub"], world["project"]
    developer = world["developer"]
    expires = (server.clock.now().date() + dt.timedelta(days=30)).isoformat()
    added = server.root(
        "POST",
        f"/projects/{project['id']}/members",
        json={"user_id": developer["id"], "access_level": MAINTAINER, "expires_at": expires},
    )
    assert added.status_code == 201, added.text
    factory.member("groups", factory.group()["id"], developer["id"], OWNER)  # outside the hierarchy
    path = f"/groups/{top['id']}/billable_members/{developer['id']}/memberships"
    response = server.request("GET", path, token=world["owner_token"])
    assert response.status_code == 200, response.text
    found = response.json()
    assert [(m["source_id"], m["access_level"]) for m in found] == [
        (top["id"], {"string_value": "Developer", "integer_value": DEVELOPER}),
        (project["id"], {"string_value": "Maintainer", "integer_value": MAINTAINER}),
    ]
    group_item, project_item = found
    assert set(group_item) == {
        "id", "source_id", "source_full_name", "source_members_url", "created_at", "expires_at",
        "access_level",
    }  # fmt: skip
    assert group_item["source_full_name"] == top["full_name"]
    assert group_item["source_members_url"] == f"{server.url}/groups/{top['full_path']}/-/group_members"
    assert group_item["expires_at"] is None
    assert project_item["source_full_name"] == f"{top['full_name']} / Sub Name / My Project"
    assert (
        project_item["source_members_url"]
        == f"{server.url}/{project['path_with_namespace']}/-/project_members"
    )
    assert project_item["expires_at"] == expires
    # The subgroup membership of another member, and pagination.
    guest_path = f"/groups/{top['id']}/billable_members/{world['guest']['id']}/memberships"
    assert [m["source_id"] for m in server.root("GET", guest_path).json()] == [sub["id"]]
    second = server.root("GET", path, params={"per_page": 1, "page": 2})
    assert [m["source_id"] for m in second.json()] == [project["id"]]
    assert second.headers["X-Total"] == "2"
    members = gl.groups.get(top["id"], lazy=True).billable_members.list(get_all=True)
    listed = next(m for m in members if m.id == developer["id"])
    assert [m.source_id for m in listed.memberships.list(get_all=True)] == [top["id"], project["id"]]

    # Users who take no seat here, or do not exist: 404.
    for name in ("minimal", "blocked", "outsider"):
        response = server.root("GET", f"/groups/{top['id']}/billable_members/{world[name]['id']}/memberships")
        assert (response.status_code, response.json()) == (404, {"message": "404 User Not Found"}), name
    unknown = server.root("GET", f"/groups/{top['id']}/billable_members/999999999/memberships")
    assert unknown.status_code == 404
    bad = server.root("GET", f"/groups/{top['id']}/billable_members/abc/memberships")
    assert bad.status_code == 400


def _events(server: LiveServer, user_id: int) -> list[AuditEvent]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent).where(
                    AuditEvent.event_name == "member.removed", AuditEvent.target_id == user_id
                )
            ).all()
        )


def test_delete_removes_every_membership_in_the_hierarchy(
    server: LiveServer, factory: Factory, world: dict[str, Any], premium: None
) -> None:
    top, sub, project = world["top"], world["sub"], world["project"]
    user = factory.user()
    factory.member("groups", top["id"], user["id"], DEVELOPER)
    factory.member("groups", sub["id"], user["id"], MAINTAINER)
    factory.member("projects", project["id"], user["id"], MAINTAINER)
    elsewhere = factory.group()
    factory.member("groups", elsewhere["id"], user["id"], DEVELOPER)
    response = server.request(
        "DELETE", f"/groups/{top['id']}/billable_members/{user['id']}", token=world["owner_token"]
    )
    assert response.status_code == 204, response.text
    assert user["id"] not in ids(billable(server, top["id"]))
    memberships = server.root("GET", f"/users/{user['id']}/memberships").json()
    assert [m["source_id"] for m in memberships] == [elsewhere["id"]]
    events = _events(server, user["id"])
    assert sorted((e.entity_type, e.entity_id) for e in events) == sorted(
        [("Group", top["id"]), ("Group", sub["id"]), ("Project", project["id"])]
    )
    assert {e.author_id for e in events} == {world["owner"]["id"]}


def test_python_gitlab_deletes_a_project_only_member(
    server: LiveServer, gl: gitlab.Gitlab, world: dict[str, Any], premium: None
) -> None:
    group = server.gl(world["owner_token"]).groups.get(world["top"]["id"], lazy=True)
    group.billable_members.delete(world["reporter"]["id"])
    assert world["reporter"]["id"] not in ids(billable(server, world["top"]["id"]))
    assert (
        server.root(
            "GET", f"/projects/{world['project']['id']}/members/{world['reporter']['id']}"
        ).status_code
        == 404
    )


def test_delete_refusals(server: LiveServer, factory: Factory, world: dict[str, Any]) -> None:
    top, sub = world["top"]["id"], world["sub"]["id"]
    maintainer, maintainer_token = factory.user_with_token()
    factory.member("groups", top, maintainer["id"], MAINTAINER)

    def delete(group_id: int, user_id: int, token: str | None = None) -> Any:
        return server.request(
            "DELETE", f"/groups/{group_id}/billable_members/{user_id}", token=token or world["owner_token"]
        )

    def refused(response: Any, message: str) -> None:
        assert (response.status_code, response.json()) == (400, {"message": f"400 Bad request - {message}"})

    refused(delete(top, world["developer"]["id"], maintainer_token), "User unauthorized to remove member")
    refused(delete(sub, world["guest"]["id"]), "Invalid group provided, must be top-level")
    refused(delete(top, world["outsider"]["id"]), "No member found for the given user_id")
    refused(delete(top, 999999999), "No member found for the given user_id")
    assert delete(top, world["bot_id"]).status_code == 400
    # The last Owner stays, and nothing of theirs is removed (all or nothing).
    factory.member("projects", world["project"]["id"], world["owner"]["id"], OWNER)
    last = delete(top, world["owner"]["id"])
    assert last.status_code == 400
    assert "last owner" in last.json()["message"]
    assert world["owner"]["id"] in ids(billable(server, top))
    assert (
        server.root("GET", f"/projects/{world['project']['id']}/members/{world['owner']['id']}").status_code
        == 200
    )
    # Once another Owner exists, the first may go (by an admin here).
    assert (
        server.root(
            "PUT", f"/groups/{top}/members/{world['developer']['id']}", json={"access_level": OWNER}
        ).status_code
        == 200
    )
    assert delete(top, world["owner"]["id"], server.root_token).status_code == 204
    owners = server.root("GET", f"/groups/{top}/members", params={"per_page": 100}).json()
    assert [m["id"] for m in owners if m["access_level"] == OWNER] == [world["developer"]["id"]]
    # A subgroup Owner whose group has Owners above may go too; nothing is left half done.
    assert delete(top, world["guest"]["id"], server.root_token).status_code == 204


def test_gitlab_cli_lists_billable_members(server: LiveServer, world: dict[str, Any]) -> None:
    result = server.gitlab_cli(
        "-o", "json", "group-billable-member", "list", "--group-id", str(world["top"]["id"])
    )
    assert result.returncode == 0, result.stderr
    assert world["developer"]["username"] in result.stdout
    assert world["minimal"]["username"] not in result.stdout


PLANS = ("free", "premium", "ultimate")


@pytest.mark.parametrize("plan", PLANS)
def test_seat_entity_license_and_billable_members_agree(
    server: LiveServer, factory: Factory, plan: str
) -> None:
    """For each plan, the same users take a seat whichever place tells it: billable members of the
    group, ``is_using_seat`` of its members (show_seat_info) and the growth of /license's count."""
    with license_as(server, plan, None):
        before = server.root("GET", "/license").json()["active_users"]
    # Service accounts cannot be made on Free: the world is made under Ultimate.
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    project = factory.project(token=token, namespace_id=group["id"])
    levels = {"guest": GUEST, "minimal": MINIMAL, "developer": DEVELOPER, "planner": 15, "blocked": DEVELOPER}
    made = {name: factory.user() for name in levels}
    for name, level in levels.items():
        factory.member("groups", group["id"], made[name]["id"], level)
    assert server.root("POST", f"/users/{made['blocked']['id']}/deactivate").status_code == 201
    project_guest = factory.user()
    factory.member("projects", project["id"], project_guest["id"], GUEST)
    account = server.root("POST", "/service_accounts", json={}).json()
    factory.member("projects", project["id"], account["id"], DEVELOPER)
    everyone = {owner["id"], project_guest["id"], account["id"], *(u["id"] for u in made.values())}
    with license_as(server, plan, None):
        billed = set(ids(billable(server, group["id"], per_page=100)))
        listed = server.root(
            "GET",
            f"/projects/{project['id']}/members/all",
            params={"show_seat_info": "true", "per_page": 100},
        ).json()
        seats = {m["id"] for m in listed if m["is_using_seat"]}
        assert {m["id"] for m in listed} >= everyone - {made["blocked"]["id"]}
        one = server.root(
            "GET", f"/groups/{group['id']}/members/{made['developer']['id']}", params={"show_seat_info": True}
        )
        assert one.json()["is_using_seat"] is True
        admin_view = {
            uid_: server.root("GET", f"/users/{uid_}").json()["using_license_seat"] for uid_ in everyone
        }
        after = server.root("GET", "/license").json()["active_users"]
    expected = {owner["id"], made["developer"]["id"], made["planner"]["id"]}
    if plan != "ultimate":
        expected |= {made["guest"]["id"], project_guest["id"]}
    assert billed == expected
    assert seats & everyone == expected
    assert {u for u, seat in admin_view.items() if seat} == expected
    assert after - before == len(expected)
    # Without show_seat_info, GitLab's member entity has no is_using_seat.
    plain = server.root("GET", f"/groups/{group['id']}/members").json()
    assert all("is_using_seat" not in m for m in plain)


def test_statements_do_not_grow_with_the_page(server: LiveServer, factory: Factory) -> None:
    """A page of 20 billable members (or of their memberships) costs what a page of 5 does."""
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    project = factory.project(token=token, namespace_id=group["id"])
    for n in range(24):
        user = factory.user()
        factory.member(
            "groups" if n % 2 else "projects", group["id"] if n % 2 else project["id"], user["id"], 30
        )
    factory.member("projects", project["id"], owner["id"], OWNER)
    for _ in range(3):  # their creator is their Owner
        factory.group(token=token, parent_id=group["id"])
    for template in (
        f"/groups/{group['id']}/billable_members?per_page={{n}}",
        f"/groups/{group['id']}/billable_members?per_page={{n}}&sort=access_level_desc&search=u",
        f"/groups/{group['id']}/billable_members/{owner['id']}/memberships?per_page={{n}}",
    ):
        small = statements_of(server, template.format(n=2))
        large = statements_of(server, template.format(n=20))
        assert small - 1 <= large <= small, (template, small, large)
        assert small <= 5, (template, small)


def test_members_of_invited_groups_take_seats_in_the_hierarchy(
    server: LiveServer, factory: Factory, world: dict[str, Any]
) -> None:
    # A group invited to the subgroup (its member and the member of the group above it), and one
    # invited to the project: their members are billable here at the share's capped level, as
    # invites, and not removable from this hierarchy.
    team_parent = factory.group()
    team = factory.group(parent_id=team_parent["id"])
    on_project = factory.group()
    inherited, direct, on_proj = (factory.user() for _ in range(3))
    factory.member("groups", team_parent["id"], inherited["id"], DEVELOPER)
    factory.member("groups", team["id"], direct["id"], MAINTAINER)
    factory.member("groups", on_project["id"], on_proj["id"], DEVELOPER)
    for path, group_id, level in (
        (f"/groups/{world['sub']['id']}/share", team["id"], DEVELOPER),
        (f"/projects/{world['project']['id']}/share", on_project["id"], REPORTER),
    ):
        shared = server.root("POST", path, json={"group_id": group_id, "group_access": level})
        assert shared.status_code == 201, shared.text
    response = billable(server, world["top"]["id"], token=world["owner_token"])
    by_id = {item["id"]: item for item in response.json()}
    assert by_id[inherited["id"]]["membership_type"] == "group_invite"
    assert by_id[direct["id"]]["membership_type"] == "group_invite"
    assert by_id[on_proj["id"]]["membership_type"] == "project_invite"
    assert not any(by_id[user["id"]]["removable"] for user in (inherited, direct, on_proj))
    # Sorted by level, the capped Reporter share comes before the Developer ones.
    levels = [item["id"] for item in billable(server, world["top"]["id"], sort="access_level_asc").json()]
    assert levels.index(on_proj["id"]) < levels.index(direct["id"])
    # Removing an invited member from the hierarchy finds no membership of theirs there.
    removed = server.root("DELETE", f"/groups/{world['top']['id']}/billable_members/{direct['id']}")
    assert removed.status_code == 400, removed.text
    assert removed.json() == {"message": "400 Bad request - No member found for the given user_id"}
