"""GET /personal_access_tokens/self/associations (the groups and projects a token reaches, with
the user's levels) and ``last_used_ips`` in every access token entity."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from keycrew.access.associations import associated_groups
from keycrew.context import Actor
from keycrew.errors import Invalid
from keycrew.identity.models import User
from keycrew.tokens.models import PersonalAccessToken
from tests.support.live import Factory, LiveServer, uid

GUEST, REPORTER, DEVELOPER, MAINTAINER, OWNER = 10, 20, 30, 40, 50
PATH = "/personal_access_tokens/self/associations"


def associations(server: LiveServer, token: str, **params: Any) -> dict[str, Any]:
    response = server.request("GET", PATH, token=token, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture
def reach(server: LiveServer, factory: Factory) -> dict[str, Any]:
    """A user who is a Developer of a private group (and so of its subgroup and project), a
    Reporter of a project elsewhere, and holds a personal project; and things they cannot see."""
    user, token = factory.user_with_token(["read_user"])
    group = factory.group(visibility="private")
    sub = factory.group(parent_id=group["id"], visibility="private")
    group_project = factory.project(namespace_id=sub["id"], visibility="private")
    factory.member("groups", group["id"], user["id"], DEVELOPER)
    factory.member("projects", group_project["id"], user["id"], MAINTAINER)
    other = factory.project(visibility="private")
    factory.member("projects", other["id"], user["id"], REPORTER)
    personal = server.request(
        "POST",
        "/projects",
        token=factory.token(user["id"], ["api"]),
        json={"name": uid("mine"), "visibility": "private"},
    ).json()
    hidden_group = factory.group(visibility="private")
    hidden_project = factory.project(visibility="private")
    return {
        "user": user,
        "token": token,
        "group": group,
        "sub": sub,
        "group_project": group_project,
        "other": other,
        "personal": personal,
        "hidden": (hidden_group["id"], hidden_project["id"]),
    }


def test_lists_what_the_token_reaches(server: LiveServer, reach: dict[str, Any]) -> None:
    # Any scope will do (read_user here).
    found = associations(server, reach["token"], per_page=100)
    assert set(found) == {"groups", "projects"}
    groups = {g["id"]: g for g in found["groups"]}
    projects = {p["id"]: p for p in found["projects"]}
    assert {reach["group"]["id"], reach["sub"]["id"]} <= set(groups)
    assert {reach["group_project"]["id"], reach["other"]["id"], reach["personal"]["id"]} <= set(projects)
    assert reach["hidden"][0] not in groups
    assert reach["hidden"][1] not in projects

    group = groups[reach["sub"]["id"]]
    assert group == {
        "id": reach["sub"]["id"],
        "web_url": f"{server.url}/groups/{reach['sub']['full_path']}",
        "name": reach["sub"]["name"],
        "parent_id": reach["group"]["id"],
        "organization_id": 1,
        "access_levels": DEVELOPER,  # inherited from the group above
        "visibility": "private",
    }
    project = projects[reach["group_project"]["id"]]
    assert set(project) == {
        "id", "description", "name", "name_with_namespace", "path", "path_with_namespace", "created_at",
        "access_levels", "visibility", "web_url", "namespace",
    }  # fmt: skip
    assert project["access_levels"] == {"project_access_level": MAINTAINER, "group_access_level": DEVELOPER}
    assert project["namespace"]["id"] == reach["sub"]["id"]
    assert project["path_with_namespace"] == reach["group_project"]["path_with_namespace"]
    assert projects[reach["other"]["id"]]["access_levels"] == {
        "project_access_level": REPORTER,
        "group_access_level": None,
    }
    assert projects[reach["personal"]["id"]]["access_levels"]["project_access_level"] == OWNER
    # Public groups the user is not in are listed, with no level.
    public = server.root(
        "POST", "/groups", json={"name": uid("pub"), "path": uid("pub"), "visibility": "public"}
    )
    listed = {g["id"]: g for g in associations(server, reach["token"], per_page=100)["groups"]}
    assert listed[public.json()["id"]]["access_levels"] is None


def test_min_access_level_and_pagination(server: LiveServer, reach: dict[str, Any]) -> None:
    maintainers = associations(server, reach["token"], min_access_level=MAINTAINER, per_page=100)
    assert maintainers["groups"] == []
    assert {p["id"] for p in maintainers["projects"]} == {
        reach["group_project"]["id"],
        reach["personal"]["id"],
    }
    developers = associations(server, reach["token"], min_access_level=DEVELOPER, per_page=100)
    assert {g["id"] for g in developers["groups"]} == {reach["group"]["id"], reach["sub"]["id"]}
    # page and per_page apply to each list on its own; projects newest first.
    first = associations(server, reach["token"], min_access_level=REPORTER, per_page=1)
    second = associations(server, reach["token"], min_access_level=REPORTER, per_page=1, page=2)
    assert len(first["groups"]) == len(first["projects"]) == 1
    assert first["projects"][0]["id"] > second["projects"][0]["id"]
    assert first["groups"][0]["id"] != second["groups"][0]["id"]
    bad = server.request("GET", PATH, token=reach["token"], params={"min_access_level": 11})
    assert (bad.status_code, bad.json()) == (400, {"error": "min_access_level does not have a valid value"})


def test_resource_tokens_are_personal_access_tokens(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    issued = server.root(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        json={"name": "bot", "scopes": ["read_api"], "access_level": DEVELOPER},
    )
    assert issued.status_code == 201, issued.text
    found = associations(server, issued.json()["token"], per_page=100)
    assert [p["id"] for p in found["projects"] if p["id"] == project["id"]] == [project["id"]]
    mine = next(p for p in found["projects"] if p["id"] == project["id"])
    assert mine["access_levels"]["project_access_level"] == DEVELOPER


def test_other_credentials(server: LiveServer, factory: Factory) -> None:
    assert server.request("GET", PATH).status_code == 401
    project = factory.project()
    deploy = server.root(
        "POST", f"/projects/{project['id']}/deploy_tokens", json={"name": "d", "scopes": ["read_repository"]}
    )
    assert deploy.status_code == 201, deploy.text
    assert server.request("GET", PATH, token=deploy.json()["token"]).status_code == 401
    # A credential that is not a personal access token (a session, the CLI's system actor) is
    # GitLab's 400; the API takes no other credential today, so the rule is checked in process.
    with server.runtime.sessions() as db:
        root = db.get(User, 1)
        ctx = server.runtime.ctx(db, Actor(user=root))
        with pytest.raises(Invalid) as refused:
            associated_groups(ctx, None)
        assert refused.value.message == "This endpoint requires token type to be a personal access token"


# -- last_used_ips -----------------------------------------------------------------------------------


def _set_ips(server: LiveServer, token_id: int, ips: list[str]) -> None:
    with server.runtime.sessions() as db, db.begin():
        token = db.get(PersonalAccessToken, token_id)
        assert token is not None
        token.last_used_ips = ips


def _token_id(server: LiveServer, token: str) -> int:
    return int(server.request("GET", "/personal_access_tokens/self", token=token).json()["id"])


def test_a_use_records_the_client_ip(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    token_id = _token_id(server, token)
    assert server.runtime.usage is not None
    server.runtime.usage.flush()
    shown = server.root("GET", f"/personal_access_tokens/{token_id}").json()
    assert shown["last_used_ips"] == ["127.0.0.1"]
    assert server.request("GET", "/personal_access_tokens/self", token=token).json()["last_used_ips"] == [
        "127.0.0.1"
    ]
    assert user["id"] == shown["user_id"]


def test_every_token_entity_shows_the_newest_ips(server: LiveServer, factory: Factory) -> None:
    ips = [f"10.1.0.{n}" for n in range(1, 6)]
    user, token = factory.user_with_token()
    personal_id = _token_id(server, token)
    impersonation = server.root(
        "POST", f"/users/{user['id']}/impersonation_tokens", json={"name": "imp", "scopes": ["api"]}
    ).json()
    project = factory.project()
    resource = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "bot", "scopes": ["api"]}
    ).json()
    group = factory.group()
    group_token = server.root(
        "POST", f"/groups/{group['id']}/access_tokens", json={"name": "gbot", "scopes": ["api"]}
    ).json()
    account = server.root("POST", f"/groups/{group['id']}/service_accounts", json={}).json()
    sa = f"/groups/{group['id']}/service_accounts/{account['id']}/personal_access_tokens"
    account_token = server.root("POST", sa, json={"name": "sa", "scopes": ["api"]})
    assert account_token.status_code == 201, account_token.text
    ids = [personal_id, impersonation["id"], resource["id"], group_token["id"], account_token.json()["id"]]
    # The personal token's use above is written by the usage writer: before the IPs are set, not
    # after (it would add this client's address).
    assert server.runtime.usage is not None
    server.runtime.usage.flush()
    for token_id in ids:
        _set_ips(server, token_id, ips)
    with server.runtime.sessions() as db:
        assert set(db.scalars(select(PersonalAccessToken.id).where(PersonalAccessToken.id.in_(ids)))) == set(
            ids
        )

    def shown(path: str, **params: Any) -> Any:
        response = server.root("GET", path, params=params)
        assert response.status_code == 200, (path, response.text)
        return response.json()

    def one_of(items: list[dict[str, Any]], token_id: int) -> dict[str, Any]:
        return next(item for item in items if item["id"] == token_id)

    assert shown(f"/personal_access_tokens/{personal_id}")["last_used_ips"] == ips
    assert one_of(shown("/personal_access_tokens", user_id=user["id"]), personal_id)["last_used_ips"] == ips
    assert server.request("GET", "/personal_access_tokens/self", token=token).json()["last_used_ips"] == ips
    imp = f"/users/{user['id']}/impersonation_tokens"
    assert shown(f"{imp}/{impersonation['id']}")["last_used_ips"] == ips
    assert one_of(shown(imp), impersonation["id"])["last_used_ips"] == ips
    at = f"/projects/{project['id']}/access_tokens"
    assert shown(f"{at}/{resource['id']}")["last_used_ips"] == ips
    assert one_of(shown(at), resource["id"])["last_used_ips"] == ips
    gt = f"/groups/{group['id']}/access_tokens"
    assert shown(f"{gt}/{group_token['id']}")["last_used_ips"] == ips
    assert one_of(shown(gt), group_token["id"])["last_used_ips"] == ips
    assert one_of(shown(sa), account_token.json()["id"])["last_used_ips"] == ips
    # A token never used has none.
    fresh = server.root(
        "POST", f"/users/{user['id']}/personal_access_tokens", json={"name": "n", "scopes": ["api"]}
    )
    assert fresh.json()["last_used_ips"] == []
