"""Races on one live server: concurrent requests that change the same rows (issue 10, items 1-3).

Real threads, started together on a barrier, against the live server on SQLite and PostgreSQL.
Each test asserts invariants (exactly one winner, the others refused in GitLab's words, never a
500, nothing left inconsistent), never timings; loops are bounded.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import requests

from tests.support.live import Factory, LiveServer

OWNER, DEVELOPER = 50, 30
TRIES = 8


def together(*calls: Callable[[], requests.Response]) -> list[requests.Response]:
    """Run ``calls`` in threads of their own, released at once; their responses, in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> requests.Response:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=90) for future in futures]


def _two_owners(server: LiveServer, factory: Factory) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """A group created by one user, with a second Owner: root is not a member."""
    first, first_token = factory.user_with_token()
    second, second_token = factory.user_with_token()
    group = factory.group(token=first_token)
    factory.member("groups", group["id"], second["id"], OWNER, token=first_token)
    return group, [(first["id"], first_token), (second["id"], second_token)]


def _owners(server: LiveServer, group_id: int) -> list[int]:
    response = server.root("GET", f"/groups/{group_id}/members", params={"per_page": 100})
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json() if m["access_level"] == OWNER]


def _change(
    server: LiveServer, change: str, group_id: int, user_id: int, token: str
) -> Callable[[], requests.Response]:
    path = f"/groups/{group_id}/members/{user_id}"
    if change == "remove":
        return partial(server.request, "DELETE", path, token=token)
    return partial(server.request, "PUT", path, token=token, json={"access_level": DEVELOPER})


def _last_owner_race(server: LiveServer, factory: Factory, change: str) -> None:
    for _ in range(TRIES):
        group, ((a, a_token), (b, b_token)) = _two_owners(server, factory)

        answers = together(
            _change(server, change, group["id"], b, a_token), _change(server, change, group["id"], a, b_token)
        )
        statuses = sorted(r.status_code for r in answers)
        assert statuses[-1] < 500, [r.text for r in answers]
        won = 204 if change == "remove" else 200
        # The second sees the first's change: it would remove the last Owner (403), or, removed
        # already, it no longer sees the private group at all (404).
        assert statuses[0] == won, [(r.status_code, r.text) for r in answers]
        assert statuses[1] in (403, 404), [(r.status_code, r.text) for r in answers]
        refused = answers[0] if answers[0].status_code != won else answers[1]
        assert refused.json() in ({"message": "403 Forbidden"}, {"message": "404 Group Not Found"})
        assert len(_owners(server, group["id"])) == 1


def test_owners_removing_each_other_leave_one_owner(server: LiveServer, factory: Factory) -> None:
    _last_owner_race(server, factory, "remove")


def test_owners_demoting_each_other_leave_one_owner(server: LiveServer, factory: Factory) -> None:
    _last_owner_race(server, factory, "demote")


def test_owner_demoting_while_the_other_leaves(server: LiveServer, factory: Factory) -> None:
    for _ in range(TRIES):
        group, ((a, a_token), (b, b_token)) = _two_owners(server, factory)
        answers = together(
            partial(
                server.request,
                "PUT",
                f"/groups/{group['id']}/members/{b}",
                token=a_token,
                json={"access_level": DEVELOPER},
            ),
            partial(server.request, "DELETE", f"/groups/{group['id']}/members/{b}", token=b_token),
            partial(server.request, "DELETE", f"/groups/{group['id']}/members/{a}", token=a_token),
        )
        assert all(r.status_code < 500 for r in answers), [r.text for r in answers]
        assert len(_owners(server, group["id"])) >= 1


def test_two_owners_deleted_at_once_leave_the_group_an_owner(server: LiveServer, factory: Factory) -> None:
    for _ in range(TRIES):
        group, ((a, _a_token), (b, _b_token)) = _two_owners(server, factory)
        answers = together(
            partial(server.root, "DELETE", f"/users/{a}"), partial(server.root, "DELETE", f"/users/{b}")
        )
        statuses = sorted(r.status_code for r in answers)
        # The second deletion finds the group solely owned by its user: GitLab's 409.
        assert statuses == [204, 409], [(r.status_code, r.text) for r in answers]
        assert len(_owners(server, group["id"])) == 1


# -- rotation ----------------------------------------------------------------------------------

BURST = 50


def test_concurrent_self_rotation_has_one_winner(server: LiveServer, factory: Factory) -> None:
    for _ in range(3):
        _user, token = factory.user_with_token(scopes=["api"])
        answers = together(
            *[partial(server.request, "POST", "/personal_access_tokens/self/rotate", token=token)] * BURST
        )
        statuses = [r.status_code for r in answers]
        winners = [r for r in answers if r.status_code == 200]
        assert len(winners) == 1, sorted(statuses)
        assert set(statuses) <= {200, 400, 401}, sorted(statuses)
        new_value = winners[0].json()["token"]
        # The winner's new token works: no loser's reuse detection revoked it.
        mine = server.request("GET", "/personal_access_tokens/self", token=new_value)
        assert mine.status_code == 200, mine.text
        assert mine.json()["revoked"] is False
        assert server.request("GET", "/user", token=new_value).status_code == 200


def test_concurrent_rotation_by_id_has_one_winner(server: LiveServer, factory: Factory) -> None:
    for _ in range(3):
        user, token = factory.user_with_token(scopes=["api"])
        target = server.root(
            "POST",
            f"/users/{user['id']}/personal_access_tokens",
            json={"name": "target", "scopes": ["read_api"]},
        ).json()
        answers = together(
            *[
                partial(server.request, "POST", f"/personal_access_tokens/{target['id']}/rotate", token=token)
                for _ in range(20)
            ]
        )
        statuses = [r.status_code for r in answers]
        assert statuses.count(200) == 1, sorted(statuses)
        assert set(statuses) <= {200, 400}, sorted(statuses)
        assert server.request("GET", "/user", token=token).status_code == 200


# -- updates racing deletions ------------------------------------------------------------------


def test_project_update_racing_its_deletion(server: LiveServer, factory: Factory) -> None:
    for attempt in range(TRIES):
        group = factory.group()
        project = factory.project(namespace_id=group["id"])
        pid = project["id"]
        answers = together(
            partial(
                server.root,
                "PUT",
                f"/projects/{pid}",
                json={"name": f"renamed-{attempt}", "path": f"r{attempt}"},
            ),
            partial(server.root, "DELETE", f"/projects/{pid}"),
        )
        update, deletion = answers
        assert deletion.status_code == 202, deletion.text
        assert update.status_code in (200, 404), update.text
        if update.status_code == 404:
            assert update.json() == {"message": "404 Project Not Found"}
        assert server.root("GET", f"/projects/{pid}").status_code == 404


def test_project_update_racing_its_groups_deletion(server: LiveServer, factory: Factory) -> None:
    for attempt in range(TRIES):
        group = factory.group()
        project = factory.project(namespace_id=group["id"])
        member, _ = factory.user_with_token()
        factory.member("projects", project["id"], member["id"], DEVELOPER)
        pid = project["id"]
        answers = together(
            partial(
                server.root,
                "PUT",
                f"/projects/{pid}",
                json={"name": f"renamed-{attempt}", "path": f"r{attempt}"},
            ),
            partial(server.root, "DELETE", f"/groups/{group['id']}"),
            partial(server.root, "PUT", f"/projects/{pid}/members/{member['id']}", json={"access_level": 40}),
        )
        update, deletion, member_change = answers
        assert deletion.status_code == 202, deletion.text
        assert update.status_code in (200, 404), update.text
        assert member_change.status_code in (200, 404), member_change.text
        assert server.root("GET", f"/projects/{pid}").status_code == 404
        assert server.root("GET", f"/groups/{group['id']}").status_code == 404


def test_deleting_one_project_twice_at_once(server: LiveServer, factory: Factory) -> None:
    for _ in range(TRIES):
        project = factory.project()
        pid = project["id"]
        answers = together(*[partial(server.root, "DELETE", f"/projects/{pid}")] * 3)
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [202, 404, 404], [r.text for r in answers]


def test_rotated_token_presented_again_after_the_grace_window_revokes_the_family(
    server: LiveServer, factory: Factory
) -> None:
    _user, first = factory.user_with_token(scopes=["api"])
    second = server.request("POST", "/personal_access_tokens/self/rotate", token=first).json()["token"]
    # Right after the rotation, the old value at the rotate endpoint is a loser of the race: refused.
    late = server.request("POST", "/personal_access_tokens/self/rotate", token=first)
    assert late.status_code in (400, 401), late.text
    assert server.request("GET", "/personal_access_tokens/self", token=second).json()["revoked"] is False
    # A minute later the same value is a replay: its family is revoked.
    server.clock.travel_to(server.clock.now() + dt.timedelta(minutes=1))
    replay = server.request("POST", "/personal_access_tokens/self/rotate", token=first)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_token"
    assert server.request("GET", "/user", token=second).status_code == 401


def test_creating_inside_a_group_racing_its_deletion(server: LiveServer, factory: Factory) -> None:
    for attempt in range(TRIES):
        group = factory.group()
        gid = group["id"]
        project, subgroup, deletion = together(
            partial(server.root, "POST", "/projects", json={"name": f"late-{attempt}", "namespace_id": gid}),
            partial(server.root, "POST", "/groups", json={"name": "sub", "path": "sub", "parent_id": gid}),
            partial(server.root, "DELETE", f"/groups/{gid}"),
        )
        assert deletion.status_code == 202, deletion.text
        assert project.status_code in (201, 404), project.text
        assert subgroup.status_code in (201, 404), subgroup.text
        # Whatever was created went with its group: nothing is left pointing at it.
        if project.status_code == 201:
            assert server.root("GET", f"/projects/{project.json()['id']}").status_code == 404
        if subgroup.status_code == 201:
            assert server.root("GET", f"/groups/{subgroup.json()['id']}").status_code == 404


def test_group_update_racing_its_deletion(server: LiveServer, factory: Factory) -> None:
    for attempt in range(TRIES):
        group = factory.group()
        gid = group["id"]
        update, deletion = together(
            partial(server.root, "PUT", f"/groups/{gid}", json={"description": "x", "path": f"moved-{gid}"}),
            partial(server.root, "DELETE", f"/groups/{gid}"),
        )
        assert deletion.status_code == 202, deletion.text
        assert update.status_code in (200, 404), update.text
        assert server.root("GET", f"/groups/{gid}").status_code == 404, attempt


def test_group_rename_racing_a_project_update_inside(server: LiveServer, factory: Factory) -> None:
    for attempt in range(TRIES):
        group = factory.group()
        project = factory.project(namespace_id=group["id"])
        new_path = f"renamed-{group['id']}"
        rename, update = together(
            partial(server.root, "PUT", f"/groups/{group['id']}", json={"path": new_path}),
            partial(server.root, "PUT", f"/projects/{project['id']}", json={"path": f"p{attempt}"}),
        )
        assert rename.status_code == 200, rename.text
        assert update.status_code == 200, update.text
        shown = server.root("GET", f"/projects/{project['id']}").json()
        assert shown["path_with_namespace"] == f"{new_path}/p{attempt}"


def test_resource_token_creation_racing_its_projects_deletion(server: LiveServer, factory: Factory) -> None:
    for attempt in range(TRIES):
        project = factory.project()
        pid = project["id"]
        created, deletion = together(
            partial(
                server.root,
                "POST",
                f"/projects/{pid}/access_tokens",
                json={"name": f"bot-{attempt}", "scopes": ["api"], "access_level": 30},
            ),
            partial(server.root, "DELETE", f"/projects/{pid}"),
        )
        assert deletion.status_code == 202, deletion.text
        assert created.status_code in (201, 404), created.text
        if created.status_code == 201:
            # Made before the deletion, so deleted with the project: no bot is left behind.
            assert server.root("GET", f"/users/{created.json()['user_id']}").status_code == 404


def test_concurrent_self_rotation_of_a_project_token_has_one_winner(
    server: LiveServer, factory: Factory
) -> None:
    for _ in range(2):
        project = factory.project()
        created = server.root(
            "POST",
            f"/projects/{project['id']}/access_tokens",
            json={"name": "bot", "scopes": ["api"], "access_level": 40},
        )
        assert created.status_code == 201, created.text
        token = created.json()["token"]
        answers = together(
            *[
                partial(
                    server.request,
                    "POST",
                    f"/projects/{project['id']}/access_tokens/self/rotate",
                    token=token,
                )
            ]
            * 20
        )
        statuses = [r.status_code for r in answers]
        winners = [r for r in answers if r.status_code == 200]
        assert len(winners) == 1, sorted(statuses)
        assert set(statuses) <= {200, 400, 401}, sorted(statuses)
        assert (
            server.request("GET", f"/projects/{project['id']}", token=winners[0].json()["token"]).status_code
            == 200
        )
