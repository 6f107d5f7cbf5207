"""The instance always keeps an administrator (identity/admins.py).

An admin cannot ban (nor block) themself, and the last active administrator can be neither
blocked, banned, deactivated, deleted nor demoted: not by the API, not by the system (the CLI's
and the web UI's use cases are the same functions), and not by two admins removing each other at
the same moment. These tests run servers of their own, where root starts as the only admin.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keycrew.actions.deletion import destroy_user
from keycrew.context import Actor
from keycrew.errors import Forbidden
from keycrew.identity import lifecycle
from keycrew.identity.models import User
from keycrew.identity.users import update_user
from tests.support.live import BACKENDS, Factory, LiveServer, start_server


@pytest.fixture(scope="module", params=BACKENDS)
def lone(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    nodes = start_server(request.param, tmp_path_factory.mktemp(f"admins-{request.param}"))
    yield next(nodes)
    nodes.close()


def _root_id(server: LiveServer) -> int:
    return int(server.root("GET", "/user").json()["id"])


def _forbidden(response: Any, reason: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {"message": f"403 Forbidden - {reason}"}


def _root_still_admin(server: LiveServer) -> None:
    me = server.root("GET", "/user")
    assert me.status_code == 200, me.text
    assert me.json()["state"] == "active"
    assert me.json()["is_admin"] is True


def test_an_admin_cannot_ban_or_block_themself(lone: LiveServer) -> None:
    root_id = _root_id(lone)
    _forbidden(
        lone.root("POST", f"/users/{root_id}/ban"), "The API initiating user cannot be banned by the API"
    )
    _forbidden(
        lone.root("POST", f"/users/{root_id}/block"), "The API initiating user cannot be blocked by the API"
    )
    _root_still_admin(lone)


def test_another_admin_cannot_ban_themself_either(lone: LiveServer) -> None:
    factory = Factory(lone)
    admin, token = factory.user_with_token(["api"], admin=True)
    response = lone.request("POST", f"/users/{admin['id']}/ban", token=token)
    _forbidden(response, "The API initiating user cannot be banned by the API")
    assert lone.root("GET", f"/users/{admin['id']}").json()["state"] == "active"
    # Root may ban them: root stays an admin.
    assert lone.root("POST", f"/users/{admin['id']}/ban").status_code == 201
    assert lone.request("GET", "/user", token=token).status_code in (401, 403)
    _root_still_admin(lone)


def test_the_last_admin_cannot_be_taken_away_through_the_api(lone: LiveServer) -> None:
    root_id = _root_id(lone)
    # The last-admin rule comes before the dormancy rule (root was active today).
    _forbidden(
        lone.root("POST", f"/users/{root_id}/deactivate"), "The last administrator cannot be deactivated"
    )
    _forbidden(lone.root("DELETE", f"/users/{root_id}"), "The last administrator cannot be deleted")
    _forbidden(
        lone.root("DELETE", f"/users/{root_id}", params={"hard_delete": "true"}),
        "The last administrator cannot be deleted",
    )
    _forbidden(
        lone.root("PUT", f"/users/{root_id}", json={"admin": False}),
        "The last administrator cannot be demoted",
    )
    _root_still_admin(lone)
    # Other changes of the last admin are fine, and so is "admin: true".
    response = lone.root("PUT", f"/users/{root_id}", json={"admin": True, "bio": "the last one"})
    assert response.status_code == 200, response.text


def test_the_last_admin_cannot_take_themself_away_in_the_domain(lone: LiveServer) -> None:
    """The web UI's admin pages call these use cases as the signed-in admin; the rule lives there."""
    root_id = _root_id(lone)
    for reason, change in (
        ("The API initiating user cannot be blocked by the API", lifecycle.block_user),
        ("The API initiating user cannot be banned by the API", lifecycle.ban_user),
        ("The last administrator cannot be deactivated", lifecycle.deactivate_user),
        ("The last administrator cannot be deleted", destroy_user),
        (
            "The last administrator cannot be demoted",
            lambda ctx, user: update_user(ctx, user, {"admin": False}),
        ),
    ):
        with lone.runtime.sessions() as db:
            root = db.get(User, root_id)
            assert root is not None
            ctx = lone.runtime.ctx(db, Actor.system(root))
            with pytest.raises(Forbidden) as refused:
                change(ctx, root)
            assert refused.value.args[0] == reason
            db.rollback()
    _root_still_admin(lone)


def test_admins_may_be_removed_while_another_remains(lone: LiveServer) -> None:
    factory = Factory(lone)
    for action in ("block", "deactivate"):
        admin = factory.user(admin=True)  # never active: dormant
        response = lone.root("POST", f"/users/{admin['id']}/{action}")
        assert response.status_code == 201, response.text
    admin = factory.user(admin=True)
    assert lone.root("PUT", f"/users/{admin['id']}", json={"admin": False}).status_code == 200
    admin = factory.user(admin=True)
    assert lone.root("DELETE", f"/users/{admin['id']}").status_code == 204
    _root_still_admin(lone)


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_admins_removing_each_other_leave_one(backend: str, tmp_path: Path) -> None:
    """Root is demoted, then the last two admins ban each other at once: exactly one wins."""
    nodes = start_server(backend, tmp_path)
    server = next(nodes)
    try:
        factory = Factory(server)
        first, first_token = factory.user_with_token(["api"], admin=True)
        second, second_token = factory.user_with_token(["api"], admin=True)
        root_id = _root_id(server)
        demoted = server.request("PUT", f"/users/{root_id}", token=first_token, json={"admin": False})
        assert demoted.status_code == 200, demoted.text
        tokens = {first["id"]: first_token, second["id"]: second_token}
        for attempt in range(5):
            pair = [first, second] if attempt % 2 == 0 else [second, first]
            barrier = threading.Barrier(2)
            answers: dict[int, int] = {}

            def ban(actor: int, target: int, barrier: threading.Barrier, answers: dict[int, int]) -> None:
                barrier.wait(timeout=10)
                response = server.request("POST", f"/users/{target}/ban", token=tokens[actor])
                answers[actor] = response.status_code

            threads = [
                threading.Thread(target=ban, args=(pair[0]["id"], pair[1]["id"], barrier, answers)),
                threading.Thread(target=ban, args=(pair[1]["id"], pair[0]["id"], barrier, answers)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            # The loser is refused as the last admin's remover, or as a banned user (401/403).
            outcome = sorted(answers.values())
            assert len(outcome) == 2, answers
            assert outcome[0] == 201, answers
            assert outcome[1] in (401, 403), answers
            states = {u["id"]: _state(server, tokens, u["id"]) for u in pair}
            assert sorted(states.values()) == ["active", "banned"], states
            # The winner unbans the loser for the next round.
            winner = next(uid_ for uid_, state in states.items() if state == "active")
            loser = next(uid_ for uid_, state in states.items() if state == "banned")
            assert server.request("POST", f"/users/{loser}/unban", token=tokens[winner]).status_code == 201
    finally:
        nodes.close()


def _state(server: LiveServer, tokens: dict[int, str], user_id: int) -> str:
    for token in tokens.values():
        response = server.request("GET", f"/users/{user_id}", token=token)
        if response.status_code == 200 and "state" in response.json():
            return str(response.json()["state"])
    raise AssertionError(f"no admin could read user {user_id}")
