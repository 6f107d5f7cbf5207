"""Placeholder users through a live server: they cannot sign in or get a token, take no seat,
show in the admin area with their badge, and two importers asking for one source user at once
get one placeholder. Migration Bot never authenticates either. (The importer is not built yet:
the tests make source users with the domain's use case on the server's own database.)"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import func, select

from keycrew.context import Actor
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.imports.models import ImportSourceUser
from keycrew.imports.placeholders import find_or_create_source_user, migration_bot
from keycrew.namespaces.models import Namespace
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid
from tests.support.web import sign_in, signed_in

SOURCE = "https://source.example.com"


def _placeholder(
    server: LiveServer, group_id: int, identifier: str, name: str = "Bob Source"
) -> dict[str, Any]:
    """A source user of the group, made as the importer will make it; the placeholder as root sees it."""
    runtime = server.runtime
    with runtime.sessions() as db, db.begin():
        group = db.get(Namespace, group_id)
        assert group is not None
        source_user = find_or_create_source_user(
            runtime.ctx(db, Actor.system()),
            group,
            source_hostname=SOURCE,
            source_user_identifier=identifier,
            source_name=name,
            source_username=f"src{identifier}",
        )
        placeholder_id = source_user.placeholder_user_id
    got = server.root("GET", f"/users/{placeholder_id}")
    assert got.status_code == 200, got.text
    return dict(got.json())


def test_a_placeholder_is_shown_as_gitlab_shows_it_and_cannot_sign_in(
    server: LiveServer, factory: Factory
) -> None:
    group = factory.group()
    placeholder = _placeholder(server, group["id"], uid("id"))
    assert placeholder["user_type"] == "placeholder"
    assert placeholder["bot"] is False
    assert placeholder["name"] == "Placeholder Bob Source"
    assert "_placeholder_" in placeholder["username"]
    assert placeholder["email"].endswith(f"@noreply.{server.runtime.instance.host}")
    assert placeholder["using_license_seat"] is False
    # No password: the sign-in form refuses it whatever is typed.
    for password in ("", "anything-at-all-1", ROOT_PASSWORD):
        _, status = sign_in(server.url, placeholder["username"], password)
        assert status != 303
    # Listed like any user to admins (GitLab's UsersFinder keeps placeholders in /users).
    listed = server.root("GET", "/users", params={"username": placeholder["username"]}).json()
    assert [u["id"] for u in listed] == [placeholder["id"]]


def test_no_token_and_no_impersonation_for_placeholders_or_migration_bot(
    server: LiveServer, factory: Factory
) -> None:
    group = factory.group()
    placeholder = _placeholder(server, group["id"], uid("id"))
    with server.runtime.sessions() as db, db.begin():
        bot_username = migration_bot(server.runtime.ctx(db, Actor.system())).username
    bot = server.root("GET", "/users", params={"username": bot_username}).json()[0]
    assert bot["bot"] is True
    body = {"name": "nope", "scopes": ["api"]}
    for user in (placeholder, bot):
        for kind in ("personal_access_tokens", "impersonation_tokens"):
            refused = server.root("POST", f"/users/{user['id']}/{kind}", json=body)
            assert refused.status_code == 403, (user["username"], kind, refused.text)
        sudo = server.root("GET", "/user", headers={"Sudo": user["username"]})
        assert sudo.status_code == 403, sudo.text


def test_placeholders_take_no_seat(server: LiveServer, factory: Factory) -> None:
    group = factory.group()  # first: its Owner (root) may take a seat by it, on some plans
    before = server.root("GET", "/license").json()["active_users"]
    for n in range(3):
        _placeholder(server, group["id"], uid(f"seat{n}"))
    assert server.root("GET", "/license").json()["active_users"] == before


def test_the_admin_users_page_shows_the_placeholder_badge(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    placeholder = _placeholder(server, group["id"], uid("id"), name=uid("Shown"))
    http, _ = signed_in(server.url, "root", ROOT_PASSWORD)
    page = http.get(
        f"{server.url}/admin/users", params={"tab": "internal", "search": placeholder["username"]}, timeout=30
    )
    assert page.status_code == 200
    link = f'href="/admin/users/{placeholder["username"]}"'
    assert link in page.text
    assert '<span class="badge badge-internal">Placeholder</span>' in page.text
    humans = http.get(
        f"{server.url}/admin/users", params={"search": placeholder["username"], "tab": "humans"}, timeout=30
    )
    assert humans.status_code == 200
    assert link not in humans.text


def test_two_importers_asking_at_once_get_one_placeholder(server: LiveServer, factory: Factory) -> None:
    group = factory.group()
    identifier = uid("race")
    threads_n = 6
    barrier = threading.Barrier(threads_n)
    found: list[tuple[int, int | None]] = []
    errors: list[BaseException] = []
    runtime = server.runtime

    def race() -> None:
        try:
            barrier.wait(timeout=60)
            with runtime.sessions() as db, db.begin():
                namespace = db.get(Namespace, group["id"])
                assert namespace is not None
                source_user = find_or_create_source_user(
                    runtime.ctx(db, Actor.system()),
                    namespace,
                    source_hostname=SOURCE,
                    source_user_identifier=identifier,
                    source_name="Racer",
                    source_username="racer",
                )
                found.append((source_user.id, source_user.placeholder_user_id))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=race) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(found) == threads_n
    assert len(set(found)) == 1, found
    with runtime.sessions() as db:
        rows = db.scalar(
            select(func.count(ImportSourceUser.id)).where(
                ImportSourceUser.source_user_identifier == identifier
            )
        )
        placeholders = db.scalar(
            select(func.count(User.id)).where(
                User.user_type == int(UserType.PLACEHOLDER), User.username.like("racer_placeholder_%")
            )
        )
    assert rows == 1
    assert placeholders == 1
