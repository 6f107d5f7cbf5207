"""Personal access tokens: list, get, self, rotate, revoke, reuse detection, usage, self-service."""

from __future__ import annotations

import datetime as dt
import threading

import gitlab
import pytest
import requests

from tests.support.live import Factory, LiveServer


def test_list_own_tokens_and_admin_filters(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    factory.token(user["id"], ["read_api"], name="second")
    other, other_token = factory.user_with_token(["api"])
    mine = server.gl(token).personal_access_tokens.list(get_all=True)
    assert {t.user_id for t in mine} == {user["id"]}
    assert len(mine) == 2
    # A non-admin asking for another user's tokens gets 401, as GitLab.
    with pytest.raises(gitlab.GitlabAuthenticationError):
        server.gl(token).personal_access_tokens.list(user_id=other["id"])
    as_admin = server.gl().personal_access_tokens.list(user_id=other["id"], get_all=True)
    assert [t.user_id for t in as_admin] == [other["id"]]
    by_name = server.gl().personal_access_tokens.list(user_id=user["id"], search="secon", get_all=True)
    assert [t.name for t in by_name] == ["second"]
    assert other_token


def test_get_self_and_by_id(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["read_repository"])
    # /personal_access_tokens/self works whatever the token's scope.
    me = server.gl(token).personal_access_tokens.get("self")
    assert me.user_id == user["id"]
    assert me.scopes == ["read_repository"]
    assert me.active is True
    assert "token" not in me.attributes
    other, _ = factory.user_with_token(["api"])
    other_token_id = server.gl().personal_access_tokens.list(user_id=other["id"])[0].id
    _u, api_token = factory.user_with_token(["api"])
    with pytest.raises(gitlab.GitlabAuthenticationError):
        server.gl(api_token).personal_access_tokens.get(other_token_id)
    assert server.gl().personal_access_tokens.get(other_token_id).user_id == other["id"]
    missing = server.root("GET", "/personal_access_tokens/999999999")
    assert missing.status_code == 404


def test_rotate_by_id_defaults_to_a_week(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(
        ["api"],
    )
    gl = server.gl(token)
    current = gl.personal_access_tokens.get("self")
    rotated = gl.personal_access_tokens.rotate(current.id)
    assert rotated["id"] != current.id
    assert rotated["name"] == current.name
    assert rotated["scopes"] == current.scopes
    assert rotated["expires_at"] == (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=7)).isoformat()
    new_token = rotated["token"]
    assert new_token.startswith("glpat-")
    # The old value died at once; the new one works.
    assert server.request("GET", "/user", token=token).status_code == 401
    assert server.request("GET", "/user", token=new_token).status_code == 200
    # Rotating a revoked token is refused.
    response = server.request("POST", f"/personal_access_tokens/{current.id}/rotate", token=new_token)
    assert response.status_code == 400
    assert "Token already revoked" in response.json()["message"]


def test_rotate_with_expiry_and_object_rotate(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["api"])
    gl = server.gl(token)
    obj = gl.personal_access_tokens.get("self")
    old_id = obj.id
    expires = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)).isoformat()
    obj.rotate(expires_at=expires)
    assert obj.id != old_id
    assert obj.expires_at == expires
    too_late = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=400)).isoformat()
    response = server.request(
        "POST", "/personal_access_tokens/self/rotate", token=obj.token, json={"expires_at": too_late}
    )
    assert response.status_code == 400


def test_self_rotate_scope_rotates_only_itself(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["self_rotate"])
    assert server.request("GET", "/user", token=token).status_code == 403
    me = server.request("GET", "/personal_access_tokens/self", token=token).json()
    assert (
        server.request("POST", f"/personal_access_tokens/{me['id']}/rotate", token=token).status_code == 403
    )
    response = server.request("POST", "/personal_access_tokens/self/rotate", token=token)
    assert response.status_code == 200, response.text
    assert response.json()["scopes"] == ["self_rotate"]


def test_reuse_of_a_rotated_token_revokes_the_family(server: LiveServer, factory: Factory) -> None:
    _user, first = factory.user_with_token(["api"])
    second = server.request("POST", "/personal_access_tokens/self/rotate", token=first).json()["token"]
    third = server.request("POST", "/personal_access_tokens/self/rotate", token=second).json()["token"]
    assert server.request("GET", "/user", token=third).status_code == 200
    # Someone replays the first (revoked) value at a rotate endpoint: 401, and the live descendant dies.
    replay = server.request("POST", "/personal_access_tokens/self/rotate", token=first)
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_token"
    assert server.request("GET", "/user", token=third).status_code == 401
    events = server.root("GET", "/audit_events", params={"per_page": 100}).json()
    reuse = [
        e for e in events if e.get("event_name") == "token.revoked" and "reused" in str(e.get("details", {}))
    ]
    assert reuse, "the family revocation is audited"
    assert reuse[0]["details"].get("ip_address") == "127.0.0.1"


def test_concurrent_rotations_exactly_one_wins(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["api"])
    token_id = server.request("GET", "/personal_access_tokens/self", token=token).json()["id"]
    results: list[int] = []
    barrier = threading.Barrier(6)

    def rotate() -> None:
        barrier.wait()
        response = requests.post(
            server.api(f"/personal_access_tokens/{token_id}/rotate"),
            headers={"PRIVATE-TOKEN": server.root_token},
            timeout=30,
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=rotate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] + [400] * 5
    children = [
        t
        for t in server.gl().personal_access_tokens.list(user_id=_user["id"], get_all=True)
        if t.id != token_id
    ]
    assert len(children) == 1


def test_revoke_by_id_and_self(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    extra = factory.token(user["id"], ["read_api"])
    extra_id = server.request("GET", "/personal_access_tokens/self", token=extra).json()["id"]
    server.gl(token).personal_access_tokens.delete(extra_id)
    assert server.request("GET", "/user", token=extra).status_code == 401
    again = server.request("DELETE", f"/personal_access_tokens/{extra_id}", token=token)
    assert again.status_code == 400
    server.gl(token).personal_access_tokens.delete("self")
    assert server.request("GET", "/user", token=token).status_code == 401


def test_revocation_is_immediate_despite_the_cache(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    for _ in range(3):  # warm the cache
        assert server.request("GET", "/personal_access_tokens/self", token=token).status_code == 200
    token_id = server.request("GET", "/personal_access_tokens/self", token=token).json()["id"]
    assert server.root("DELETE", f"/personal_access_tokens/{token_id}").status_code == 204
    assert server.request("GET", "/personal_access_tokens/self", token=token).status_code == 401
    # Blocking the owner is immediate too.
    token2 = factory.token(user["id"], ["api"])
    assert server.request("GET", "/personal_access_tokens/self", token=token2).status_code == 200
    assert server.root("POST", f"/users/{user['id']}/block").status_code == 201
    assert server.request("GET", "/personal_access_tokens/self", token=token2).status_code == 403


def test_last_used_is_recorded_off_the_request_path(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["api"])
    assert server.request("GET", "/user", token=token).status_code == 200
    assert server.runtime.usage is not None
    server.runtime.usage.flush()
    me = server.request("GET", "/personal_access_tokens", token=token).json()[0]
    assert me["last_used_at"] is not None
    with server.runtime.sessions() as db:
        from keycrew.tokens.models import PersonalAccessToken

        row = db.get(PersonalAccessToken, me["id"])
        assert row is not None
        assert row.last_used_ips == ["127.0.0.1"]


def test_self_service_tokens_have_limited_scopes(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["api"])
    ok = server.request(
        "POST", "/user/personal_access_tokens", token=token, json={"name": "k8s", "scopes": ["k8s_proxy"]}
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["token"].startswith("glpat-")
    refused = server.request(
        "POST", "/user/personal_access_tokens", token=token, json={"name": "wide", "scopes": ["api"]}
    )
    assert refused.status_code == 400


def test_impersonation_tokens(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    gl = server.gl()
    target = gl.users.get(user["id"], lazy=True)
    created = target.impersonationtokens.create({"name": "imp", "scopes": ["api"]})
    assert created.impersonation is True
    as_user = server.request("GET", "/user", token=created.token)
    assert as_user.json()["id"] == user["id"]
    assert [t.id for t in target.impersonationtokens.list(state="active")] == [created.id]
    # Impersonation tokens are not in the user's own list.
    own = server.request("GET", "/personal_access_tokens", token=created.token).json()
    assert created.id not in [t["id"] for t in own]
    target.impersonationtokens.delete(created.id)
    assert server.request("GET", "/user", token=created.token).status_code == 401


def test_instance_service_account_tokens_may_live_forever_when_allowed(server: LiveServer) -> None:
    account = server.root("POST", "/service_accounts", json={}).json()
    enforced = server.root(
        "POST", f"/users/{account['id']}/personal_access_tokens", json={"name": "ci", "scopes": ["api"]}
    ).json()
    assert enforced["expires_at"] is not None
    try:
        assert (
            server.root(
                "PUT", "/application/settings", json={"service_access_tokens_expiration_enforced": False}
            ).status_code
            == 200
        )
        forever = server.root(
            "POST", f"/users/{account['id']}/personal_access_tokens", json={"name": "ci", "scopes": ["api"]}
        ).json()
        assert forever["expires_at"] is None
        human = server.root(
            "POST",
            "/users",
            json={
                "username": f"h{account['id']}x",
                "email": f"h{account['id']}x@example.com",
                "name": "H",
                "password": "a-long-password-1",
            },
        ).json()
        still = server.root(
            "POST", f"/users/{human['id']}/personal_access_tokens", json={"name": "t", "scopes": ["api"]}
        ).json()
        assert still["expires_at"] is not None
    finally:
        server.root("PUT", "/application/settings", json={"service_access_tokens_expiration_enforced": True})


# -- list filters and sort --------------------------------------------------------------------------


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_list_filters_and_sort(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    now = dt.datetime.now(dt.UTC)
    today = now.date()

    def create(name: str, days_ago: int, expires_in: int) -> dict[str, object]:
        server.clock.travel_to(now - dt.timedelta(days=days_ago))
        response = server.root(
            "POST",
            f"/users/{user['id']}/personal_access_tokens",
            json={
                "name": name,
                "scopes": ["api"],
                "expires_at": (today + dt.timedelta(days=expires_in)).isoformat(),
            },
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def use(token: dict[str, object], days_ago: int) -> None:
        server.clock.travel_to(now - dt.timedelta(days=days_ago))
        assert server.request("GET", "/user", token=str(token["token"])).status_code == 200
        assert server.runtime.usage is not None
        server.runtime.usage.flush()

    old = create("old", days_ago=10, expires_in=30)
    mid = create("mid", days_ago=5, expires_in=10)
    new = create("new", days_ago=0, expires_in=20)
    use(old, days_ago=3)
    use(mid, days_ago=1)
    server.clock.reset()
    gl = server.gl()

    def names(**filters: object) -> list[str]:
        return [t.name for t in gl.personal_access_tokens.list(user_id=user["id"], get_all=True, **filters)]

    week_ago, two_days_ago = _stamp(now - dt.timedelta(days=7)), _stamp(now - dt.timedelta(days=2))
    assert sorted(names(created_after=week_ago)) == ["mid", "new"]
    assert names(created_before=week_ago) == ["old"]
    assert names(last_used_after=two_days_ago) == ["mid"]
    assert names(last_used_before=two_days_ago) == ["old"]
    # Unused tokens match neither last-used bound.
    assert "new" not in names(last_used_after=_stamp(now - dt.timedelta(days=30)))
    fortnight = (today + dt.timedelta(days=15)).isoformat()
    assert sorted(names(expires_after=fortnight)) == ["new", "old"]
    assert names(expires_before=fortnight) == ["mid"]
    # Both bounds at once narrow further.
    assert names(created_after=week_ago, expires_after=fortnight) == ["new"]

    assert names(sort="created_asc") == ["old", "mid", "new"]
    assert names(sort="created_desc") == ["new", "mid", "old"]
    assert names(sort="expires_asc") == ["mid", "new", "old"]
    assert names(sort="expires_desc") == ["old", "new", "mid"]
    assert names(sort="name_asc") == ["mid", "new", "old"]
    assert names(sort="name_desc") == ["old", "new", "mid"]
    assert names(sort="last_used_desc", last_used_after=_stamp(now - dt.timedelta(days=30))) == ["mid", "old"]
    assert names(sort="last_used_asc", last_used_after=_stamp(now - dt.timedelta(days=30))) == ["old", "mid"]

    assert server.root("DELETE", f"/personal_access_tokens/{new['id']}").status_code == 204
    assert names(revoked=True) == ["new"]
    assert sorted(names(revoked=False)) == ["mid", "old"]
    # The CLI's spelling of booleans too.
    listed = server.root("GET", "/personal_access_tokens", params={"user_id": user["id"], "revoked": "true"})
    assert [t["name"] for t in listed.json()] == ["new"]
    assert sorted(names(state="active")) == ["mid", "old"]
    assert names(state="inactive") == ["new"]

    for bad, error in (
        ({"sort": "sideways"}, "sort does not have a valid value"),
        ({"created_after": "last week"}, "created_after is invalid"),
        ({"expires_before": "soon"}, "expires_before is invalid"),
    ):
        response = server.root("GET", "/personal_access_tokens", params=bad)
        assert (response.status_code, response.json()) == (400, {"error": error}), bad


# -- expiry at creation, description through rotation -----------------------------------------------


def test_past_expiry_refused_on_creation(server: LiveServer, factory: Factory) -> None:
    # Today is accepted, as on GitLab (tests/functional/test_token_expiry_today.py).
    user, token = factory.user_with_token(["api"])
    expires = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    message = "can't be before today"
    for path, caller in (
        (f"/users/{user['id']}/personal_access_tokens", server.root_token),
        (f"/users/{user['id']}/impersonation_tokens", server.root_token),
        ("/user/personal_access_tokens", token),
    ):
        scopes = ["k8s_proxy"] if path.startswith("/user/") else ["api"]
        response = server.request(
            "POST", path, token=caller, json={"name": "late", "scopes": scopes, "expires_at": expires}
        )
        assert response.status_code == 400, (path, response.text)
        assert response.json() == {"message": {"expires_at": [message]}}, path
    names = [t.name for t in server.gl().personal_access_tokens.list(user_id=user["id"], get_all=True)]
    assert "late" not in names
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    fine = server.root(
        "POST",
        f"/users/{user['id']}/personal_access_tokens",
        json={"name": "soon", "scopes": ["api"], "expires_at": tomorrow},
    )
    assert (fine.status_code, fine.json()["expires_at"]) == (201, tomorrow)


def test_rotation_keeps_the_description(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    created = server.root(
        "POST",
        f"/users/{user['id']}/personal_access_tokens",
        json={"name": "described", "scopes": ["api", "read_user"], "description": "deploys the docs"},
    ).json()
    assert created["description"] == "deploys the docs"
    gl = server.gl(created["token"])
    rotated = gl.personal_access_tokens.rotate(created["id"])
    assert (rotated["name"], rotated["description"], rotated["scopes"]) == (
        "described",
        "deploys the docs",
        ["api", "read_user"],
    )
    again = server.request("POST", "/personal_access_tokens/self/rotate", token=rotated["token"]).json()
    assert again["description"] == "deploys the docs"
    assert server.gl().personal_access_tokens.get(again["id"]).description == "deploys the docs"
