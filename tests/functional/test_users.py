"""The users API through python-gitlab: create, get, list with GitLab's filters, update, errors."""

from __future__ import annotations

import datetime as dt
from typing import Any

import gitlab
import pytest
from sqlalchemy import update

from keycrew.identity.models import User
from tests.support.live import Factory, LiveServer, uid

PASSWORD = "E4596f8be406Bc3a14a4ccdb1df80587$3"


def new_user(gl: gitlab.Gitlab, **attrs: Any) -> Any:
    """Create a user the way python-gitlab's own fixtures do: keyword arguments (query string)."""
    name = uid("u")
    fields = {"email": f"{name}@example.com", "username": name, "name": name.title(), "password": PASSWORD}
    return gl.users.create(**(fields | attrs))


def set_user(server: LiveServer, user_id: int, **values: object) -> None:
    with server.runtime.sessions() as db, db.begin():
        db.execute(update(User).where(User.id == user_id).values(**values))


def test_create_with_kwargs_returns_admin_entity(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl, bio="hello", note="vip", projects_limit=7, can_create_group=False, external=True)
    assert user.id > 1
    assert user.state == "active"
    assert user.email.endswith("@example.com")
    assert user.is_admin is False
    assert user.bot is False
    assert user.bio == "hello"
    assert user.note == "vip"
    assert user.projects_limit == 7
    assert user.can_create_group is False
    assert user.external is True
    assert user.web_url == f"{server.url}/{user.username}"
    assert isinstance(user.namespace_id, int)
    # The same object by id, in a list filtered by username, and as the user sees themself.
    fetched = gl.users.get(user.id)
    assert fetched.username == user.username
    assert fetched.email == user.email
    listed = gl.users.list(username=user.username.upper())
    assert [u.id for u in listed] == [user.id]
    assert listed[0].email == user.email


def test_create_admin_user_and_password_works(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl, admin=True)
    assert user.is_admin is True
    response = server.root("GET", f"/users/{user.id}")
    assert response.json()["is_admin"] is True


def test_create_with_random_password(server: LiveServer) -> None:
    name = uid("u")
    body = {"username": name, "email": f"{name}@example.com", "name": "R", "force_random_password": True}
    response = server.root("POST", "/users", json=body)
    assert response.status_code == 201, response.text
    name = uid("u")
    body = {"username": name, "email": f"{name}@example.com", "name": "R", "reset_password": "true"}
    assert server.root("POST", "/users", json=body).status_code == 201


def test_create_missing_parameters(server: LiveServer) -> None:
    response = server.root("POST", "/users", json={})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "email is missing" in error
    assert "name is missing" in error
    assert "username is missing" in error
    assert "password, reset_password, force_random_password are missing" in error
    name = uid("u")
    response = server.root("POST", "/users", json={"username": name, "email": f"{name}@x.io", "name": "N"})
    assert response.status_code == 400
    assert "at least one parameter must be provided" in response.json()["error"]


def test_create_taken_username_or_email_is_409(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl)
    with pytest.raises(gitlab.GitlabCreateError) as taken:
        new_user(gl, username=user.username.upper())
    assert taken.value.response_code == 409
    assert taken.value.error_message == "Username has already been taken"
    with pytest.raises(gitlab.GitlabCreateError) as email:
        new_user(gl, email=user.email.upper())
    assert email.value.response_code == 409
    assert email.value.error_message == "Email has already been taken"


def test_create_invalid_fields_are_400_per_field(server: LiveServer, factory: Factory) -> None:
    response = server.root(
        "POST",
        "/users",
        json={"username": "-bad", "email": "not-an-email", "name": "N", "password": "short"},
    )
    assert response.status_code == 400
    message = response.json()["message"]
    assert set(message) == {"username", "email", "password"}
    assert message["email"] == ["is invalid"]
    assert message["password"] == ["is too short (minimum is 8 characters)"]
    # A group path is taken for usernames too (one namespace of paths).
    group = factory.group()
    body = {"username": group["path"], "email": f"{uid()}@example.com", "name": "N", "password": PASSWORD}
    response = server.root("POST", "/users", json=body)
    assert response.status_code == 400
    assert response.json() == {"message": {"username": ["has already been taken"]}}
    name = uid("u")
    response = server.root(
        "POST",
        "/users",
        json={
            "username": name,
            "email": f"{name}@x.io",
            "name": "N",
            "password": PASSWORD,
            "projects_limit": -1,
        },
    )
    assert response.status_code == 400
    assert response.json() == {"message": {"projects_limit": ["must be greater than or equal to 0"]}}


def test_non_admin_cannot_create_or_update(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token(["api"])
    gl = server.gl(token)
    with pytest.raises(gitlab.GitlabCreateError) as created:
        new_user(gl)
    assert created.value.response_code == 403
    response = server.request("PUT", f"/users/{user['id']}", token=token, json={"name": "Me"})
    assert response.status_code == 403
    response = server.request("DELETE", f"/users/{user['id']}", token=token)
    assert response.status_code == 403


def test_update_with_save_returns_full_object(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl)
    user.bio = "This is the user bio"
    user.name = "Renamed Person"
    user.external = True
    user.projects_limit = 3
    user.save()
    assert user.bio == "This is the user bio"
    assert user.name == "Renamed Person"
    assert user.external is True
    assert user.projects_limit == 3
    assert user.email  # the admin entity came back whole
    fresh = gl.users.get(user.id)
    assert (fresh.bio, fresh.name, fresh.external) == ("This is the user bio", "Renamed Person", True)


def test_update_password_lets_the_user_in_and_conflicts_are_409(
    server: LiveServer, gl: gitlab.Gitlab
) -> None:
    first, second = new_user(gl), new_user(gl)
    response = server.root("PUT", f"/users/{first.id}", json={"email": second.email.upper()})
    assert response.status_code == 409
    assert response.json() == {"message": "Email has already been taken"}
    response = server.root("PUT", f"/users/{first.id}", json={"username": second.username})
    assert response.status_code == 409
    assert response.json() == {"message": "Username has already been taken"}
    response = server.root("PUT", f"/users/{first.id}", json={"password": "short"})
    assert response.status_code == 400
    assert response.json() == {"message": {"password": ["is too short (minimum is 8 characters)"]}}
    response = server.root("PUT", f"/users/{first.id}", json={"admin": "true"})
    assert response.status_code == 200
    assert response.json()["is_admin"] is True
    # Changing one's own e-mail case is no conflict.
    response = server.root("PUT", f"/users/{first.id}", json={"email": first.email.upper()})
    assert response.status_code == 200, response.text
    assert response.json()["email"] == first.email


def test_rename_moves_personal_namespace_and_projects(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl)
    project = gl.projects.create({"name": uid("p"), "namespace_id": user.namespace_id})
    assert project.path_with_namespace.startswith(f"{user.username}/")
    new_name = uid("renamed")
    user.username = new_name
    user.save()
    assert user.username == new_name
    assert user.web_url.endswith(f"/{new_name}")
    moved = gl.projects.get(project.id)
    assert moved.path_with_namespace == f"{new_name}/{project.path}"
    assert gl.projects.get(f"{new_name}/{project.path}").id == project.id
    # The old path is free again.
    taken = server.root(
        "POST",
        "/users",
        json={
            "username": project.namespace["path"],
            "email": f"{uid()}@x.io",
            "name": "N",
            "password": PASSWORD,
        },
    )
    assert taken.status_code == 201, taken.text


def test_get_unknown_user_is_404(server: LiveServer, gl: gitlab.Gitlab) -> None:
    with pytest.raises(gitlab.GitlabGetError) as missing:
        gl.users.get(99999999)
    assert missing.value.response_code == 404
    assert server.root("GET", "/users/99999999").json() == {"message": "404 User Not Found"}
    response = server.root("PUT", "/users/99999999", json={"name": "x"})
    assert response.status_code == 404
    assert server.root("DELETE", "/users/99999999").status_code == 404
    assert server.root("POST", "/users/99999999/block").status_code == 404


def test_get_anonymous_is_403_and_non_admin_sees_public_entity(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["read_user"])
    other = factory.user()
    response = server.request("GET", f"/users/{other['id']}")
    assert response.status_code == 403
    response = server.request("GET", f"/users/{other['id']}", token=token)
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == other["username"]
    assert "email" not in body
    assert "is_admin" not in body
    assert body["bot"] is False


def test_list_for_non_admins_is_basic_hides_blocked_and_ignores_order(
    server: LiveServer, factory: Factory
) -> None:
    _user, token = factory.user_with_token(["read_api"])
    blocked = factory.user()
    assert server.root("POST", f"/users/{blocked['id']}/block").json() is True
    gl = server.gl(token)
    listed = gl.users.list(search=blocked["username"])
    assert listed == []
    admin_view = server.gl().users.list(search=blocked["username"])
    assert [u.id for u in admin_view] == [blocked["id"]]
    everyone = server.request("GET", "/users", token=token, params={"per_page": 100}).json()
    assert all("email" not in item for item in everyone)
    assert all(
        set(item) >= {"id", "username", "name", "state", "avatar_url", "web_url", "bot"} for item in everyone
    )
    # Non-admins get GitLab's default order whatever they ask (id descending).
    ids = [u["id"] for u in everyone]
    assert ids == sorted(ids, reverse=True)
    ids_asc = [
        u["id"]
        for u in server.request("GET", "/users", token=token, params={"order_by": "id", "sort": "asc"}).json()
    ]
    assert ids_asc == sorted(ids_asc, reverse=True)


def test_list_anonymous_needs_a_username(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    response = server.request("GET", "/users")
    assert response.status_code == 403
    assert response.json() == {"message": "403 Forbidden - Not authorized to access /api/v4/users"}
    response = server.request("GET", "/users", params={"username": user["username"]})
    assert response.status_code == 200
    assert [u["id"] for u in response.json()] == [user["id"]]
    assert "email" not in response.json()[0]


def test_list_state_and_kind_filters(server: LiveServer, gl: gitlab.Gitlab) -> None:
    tag = uid("f")
    active = new_user(gl, username=f"{tag}a", email=f"{tag}a@example.com")
    blocked = new_user(gl, username=f"{tag}b", email=f"{tag}b@example.com")
    external = new_user(gl, username=f"{tag}e", email=f"{tag}e@example.com", external=True)
    bot = new_user(gl, username=f"{tag}s", email=f"{tag}s@example.com")
    admin = new_user(gl, username=f"{tag}m", email=f"{tag}m@example.com", admin=True)
    set_user(server, bot.id, user_type=13)  # a service account: a bot, not internal
    assert blocked.block() is True

    def ids(**filters: Any) -> set[int]:
        return {u.id for u in gl.users.list(search=tag, get_all=True, **filters)}

    everyone = {active.id, blocked.id, external.id, bot.id, admin.id}
    assert ids() == everyone
    assert ids(blocked=True) == {blocked.id}
    assert ids(blocked=False) == everyone
    assert ids(active=True) == everyone - {blocked.id}
    assert ids(exclude_active=True) == {blocked.id}
    assert ids(external=True) == {external.id}
    assert ids(exclude_external=True) == everyone - {external.id}
    assert ids(humans=True) == everyone - {bot.id}
    assert ids(exclude_humans=True) == {bot.id}
    assert ids(admins=True) == {admin.id}
    assert ids(exclude_internal=True) == everyone
    assert ids(without_project_bots=True) == everyone
    assert ids(two_factor="disabled") == everyone
    assert ids(two_factor="enabled") == set()
    assert ids(public_email=active.email) == set()  # keycrew users have no public e-mail
    listed = {u.id: u for u in gl.users.list(search=tag, get_all=True)}
    assert listed[bot.id].bot is True
    assert listed[bot.id].user_type == "service_account"
    assert listed[active.id].bot is False


def test_without_project_bots_hides_project_and_group_bots(
    server: LiveServer, gl: gitlab.Gitlab, factory: Factory
) -> None:
    tag = uid("pb")
    human = new_user(gl, username=f"{tag}h", email=f"{tag}h@example.com")
    account = new_user(gl, username=f"{tag}s", email=f"{tag}s@example.com")
    set_user(server, account.id, user_type=13)  # a service account is a bot, not a project bot
    project = gl.projects.get(factory.project()["id"])
    project_bot = project.access_tokens.create({"name": f"{tag} project bot", "scopes": ["read_api"]}).user_id
    group = gl.groups.get(factory.group()["id"])
    group_bot = group.access_tokens.create({"name": f"{tag} group bot", "scopes": ["read_api"]}).user_id

    def ids(**filters: Any) -> set[int]:
        return {u.id for u in gl.users.list(search=tag, get_all=True, **filters)}

    everyone = {human.id, account.id, project_bot, group_bot}
    assert ids() == everyone
    assert ids(without_project_bots=True) == {human.id, account.id}
    assert ids(without_project_bots=False) == everyone
    # Project bots are bots but not internal users.
    assert ids(exclude_internal=True) == everyone
    assert ids(humans=True) == {human.id}
    assert ids(exclude_humans=True) == {account.id, project_bot, group_bot}
    assert ids(exclude_humans=True, without_project_bots=True) == {account.id}
    listed = {u.id: u for u in gl.users.list(search=tag, get_all=True)}
    assert (listed[project_bot].bot, listed[project_bot].user_type) == (True, "project_bot")
    assert (listed[group_bot].bot, listed[group_bot].user_type) == (True, "project_bot")
    # The CLI's spelling of the flag, through the raw API.
    raw = server.root("GET", "/users", params={"search": tag, "without_project_bots": "true"}).json()
    assert {u["id"] for u in raw} == {human.id, account.id}


def test_list_search_matches_username_name_and_exact_email(server: LiveServer, gl: gitlab.Gitlab) -> None:
    user = new_user(gl)
    second = gl.users.create(
        {
            "email": f"{user.email}.2",
            "username": f"{user.username}_2",
            "name": "Foo Bar",
            "password": PASSWORD,
        }
    )
    assert gl.users.list(search=second.username)[0].id == second.id
    assert {u.id for u in gl.users.list(search=user.username)} == {user.id, second.id}
    # The exact username match comes first.
    assert gl.users.list(search=user.username)[0].id == user.id
    assert [u.id for u in gl.users.list(search=f"@{user.username}_2")] == [second.id]
    assert not gl.users.list(search="asdf-no-such-user-qq")
    # Admins find users by exact e-mail address; part of an address finds nobody.
    assert [u.id for u in gl.users.list(search=user.email.upper())] == [user.id]
    assert not gl.users.list(search=user.email.split("@")[1] + "zz")
    # Short terms match names and usernames exactly only.
    assert not gl.users.list(search=user.username[:2])


def test_list_created_filters_and_ordering_for_admins(server: LiveServer, gl: gitlab.Gitlab) -> None:
    tag = uid("o")
    users = [
        new_user(gl, username=f"{tag}{c}", email=f"{tag}{c}@example.com", name=f"{n} {tag}")
        for c, n in (("x", "Charlie"), ("y", "Alice"), ("z", "Bob"))
    ]
    base = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    for offset, user in enumerate(users):
        set_user(server, user.id, created_at=base + dt.timedelta(days=offset))

    def listed(**kwargs: Any) -> list[int]:
        return [u.id for u in gl.users.list(search=tag, get_all=True, **kwargs)]

    x, y, z = (u.id for u in users)
    assert listed(order_by="name", sort="asc") == [y, z, x]
    assert listed(order_by="name", sort="desc") == [x, z, y]
    assert listed(order_by="username", sort="asc") == [x, y, z]
    assert listed(order_by="id", sort="asc") == [x, y, z]
    assert listed(order_by="created_at", sort="desc") == [z, y, x]
    assert listed(order_by="id") == [z, y, x]  # sort defaults to desc
    assert set(listed(created_after="2020-01-02T00:00:00Z")) == {y, z}
    assert set(listed(created_before="2020-01-02T00:00:00Z")) == {x, y}
    response = server.root("GET", "/users", params={"order_by": "email"})
    assert response.status_code == 400
    assert response.json() == {"error": "order_by does not have a valid value"}
    response = server.root("GET", "/users", params={"sort": "up"})
    assert response.json() == {"error": "sort does not have a valid value"}


def test_list_pagination_headers(server: LiveServer, gl: gitlab.Gitlab) -> None:
    tag = uid("pg")
    made = [new_user(gl, username=f"{tag}{i}", email=f"{tag}{i}@example.com") for i in range(3)]
    response = server.root("GET", "/users", params={"search": tag, "per_page": 2})
    assert response.headers["X-Total"] == "3"
    assert response.headers["X-Total-Pages"] == "2"
    assert response.headers["X-Next-Page"] == "2"
    assert 'rel="next"' in response.headers["Link"]
    last = server.root("GET", "/users", params={"search": tag, "per_page": 2, "page": 2})
    assert 'rel="next"' not in last.headers["Link"]
    everything = gl.users.list(search=tag, per_page=1, get_all=True)
    assert {u.id for u in everything} == {u.id for u in made}


def test_read_user_scope_reads_but_cannot_write(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["read_user"])
    assert server.request("GET", "/users", token=token).status_code == 200
    response = server.request("POST", "/users", token=token, json={})
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_internal_users_are_listed_with_their_type(server: LiveServer, factory: Factory) -> None:
    from keycrew.context import Actor
    from keycrew.identity.internal import ghost

    with server.runtime.sessions() as db, db.begin():
        ghost_id = ghost(server.runtime.ctx(db, Actor.system())).id
    gl = server.gl()
    found = {u.id: u for u in gl.users.list(search="ghost", get_all=True)}
    assert found[ghost_id].user_type == "ghost"
    assert found[ghost_id].bot is False  # Ghost is internal but not one of GitLab's bot types
    assert ghost_id not in {u.id for u in gl.users.list(search="ghost", exclude_internal=True, get_all=True)}
    assert ghost_id not in {u.id for u in gl.users.list(search="ghost", active=True, get_all=True)}
    assert ghost_id in {u.id for u in gl.users.list(search="ghost", exclude_humans=True, get_all=True)}


def test_concurrent_creates_of_one_username_never_fail_with_500(server: LiveServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    name = uid("race")

    def create(i: int) -> int:
        body = {"username": name, "email": f"{name}{i}@example.com", "name": "Racer", "password": PASSWORD}
        return server.root("POST", "/users", json=body).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = sorted(pool.map(create, range(6)))
    assert codes.count(201) == 1, codes
    assert set(codes) <= {201, 409}, codes


def test_update_username_rules(server: LiveServer, gl: gitlab.Gitlab, factory: Factory) -> None:
    user = new_user(gl)
    group = factory.group()
    response = server.root("PUT", f"/users/{user.id}", json={"username": group["path"]})
    assert response.status_code == 400
    assert response.json() == {"message": {"username": ["has already been taken"]}}
    response = server.root("PUT", f"/users/{user.id}", json={"username": "-bad"})
    assert response.status_code == 400
    assert "username" in response.json()["message"]
    # A change of case is the user's own path: allowed.
    response = server.root("PUT", f"/users/{user.id}", json={"username": user.username.upper()})
    assert response.status_code == 200, response.text
    assert response.json()["username"] == user.username.upper()
    assert response.json()["web_url"].endswith(f"/{user.username.upper()}")
    response = server.root("PUT", f"/users/{user.id}", json={"name": "   "})
    assert response.status_code == 400
    assert response.json() == {"message": {"name": ["can't be blank"]}}
    # Nothing is written when nothing was asked.
    response = server.root("PUT", f"/users/{user.id}", json={})
    assert response.status_code == 200
    assert response.json()["id"] == user.id
