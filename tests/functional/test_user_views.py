"""Users read as column values (keycrew.identity.views), on both databases: a UserView renders
exactly what its ORM row renders, a listing of columns finds the users the ORM listing finds with
every filter and order, admins' listings carry the namespace and seat of each user as GET /users/:id
does, and the settings read without the ORM are what the ORM row holds (its defaults before the
row exists, without writing it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from keycrew.api.entities.users import user_detail, user_listed, user_public
from keycrew.context import Actor, Ctx
from keycrew.db.engine import make_engine
from keycrew.db.listings import Listing
from keycrew.db.reads import PoolReads, Reader, SessionReads
from keycrew.identity.models import User
from keycrew.identity.queries import UserFilters, user_listing, users_query
from keycrew.identity.views import UserView, read_user, user_view, user_views
from keycrew.instance.models import InstanceSettings
from keycrew.instance.settings import SettingsView, instance_settings, settings_view
from tests.support.backends import BACKENDS
from tests.support.live import Factory, LiveServer, PgDatabase, uid

BASE = "http://keycrew.example"
GUEST, DEVELOPER = 10, 30


@pytest.fixture
def db(server: LiveServer) -> Iterator[Session]:
    """A session whose reads all see one snapshot, repeatable on PostgreSQL too: the live server
    keeps touching some users (the token-usage writer sets last_activity_on), and a test compares
    what two ways of reading give."""
    with server.runtime.sessions() as session:
        if server.backend == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        yield session


def _all_rows(reads: Reader, found: Listing) -> list[Any]:
    """Every row of a listing, in its order (a page as large as the tests' users)."""
    return reads.rows(found.page, {**found.values, "limit": 10_000, "offset": 0})


def _ctx(server: LiveServer, db: Session, user: User | None) -> Ctx:
    return server.runtime.ctx(db, Actor(user=user))


@pytest.fixture
def reads(server: LiveServer) -> Iterator[PoolReads]:
    found = PoolReads(server.runtime.engine)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def people(server: LiveServer, factory: Factory) -> dict[str, int]:
    """Users of every kind and state a listing tells apart (plus root, the bots and internal users
    already there)."""
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    made = {
        "human": factory.user(),
        "external": factory.user(external=True),
        "admin": factory.user(admin=True),
        "blocked": factory.user(),
        "guest": factory.user(),
        "developer": factory.user(),
    }
    assert server.root("POST", f"/users/{made['blocked']['id']}/block").status_code == 201
    factory.member("groups", group["id"], made["guest"]["id"], GUEST)
    factory.member("groups", group["id"], made["developer"]["id"], DEVELOPER)
    bot = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "viewbot", "scopes": ["api"]}
    )
    assert bot.status_code == 201, bot.text
    account = server.root("POST", "/service_accounts", json={"name": "viewsa"})
    assert account.status_code == 201, account.text
    ids = {name: user["id"] for name, user in made.items()}
    ids["bot"] = bot.json()["user_id"]
    ids["service_account"] = account.json()["id"]
    with server.runtime.sessions() as db, db.begin():
        db.execute(
            update(User)
            .where(User.id == ids["human"])
            .values(locked_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), note="a note", bio="a bio")
        )
    return ids


def test_a_user_view_holds_and_renders_what_its_row_does(
    db: Session, reads: PoolReads, people: dict[str, int]
) -> None:
    ids = sorted(db.scalars(select(User.id)))  # every user: people, bots, internal users, root
    views = user_views(SessionReads(db), ids)
    assert sorted(views) == ids
    # A read request's own connection sees the same users (the test's own are left alone).
    assert {i: user_views(reads, list(people.values()))[i] for i in people.values()} == {
        i: views[i] for i in people.values()
    }
    for user_id in ids:
        row = db.get(User, user_id)
        assert row is not None
        view = views[user_id]
        assert view == read_user(SessionReads(db), user_id)
        assert view == tuple(getattr(row, name) for name in UserView._fields), user_id
        assert (view.type, view.is_bot, view.is_internal) == (row.type, row.is_bot, row.is_internal)
        assert user_public(view, BASE) == user_public(row, BASE)
        assert user_listed(view, BASE) == user_listed(row, BASE)
        for admin_view in (True, False):
            shown = user_detail(view, BASE, admin_view=admin_view, namespace_id=7, using_license_seat=True)
            assert shown == user_detail(
                row, BASE, admin_view=admin_view, namespace_id=7, using_license_seat=True
            )
            assert list(shown) == list(user_detail(row, BASE, admin_view=admin_view))  # same key order


FILTERS = [
    UserFilters(),
    UserFilters(active=True),
    UserFilters(blocked=True),
    UserFilters(external=True),
    UserFilters(exclude_external=True, exclude_internal=True),
    UserFilters(humans=True),
    UserFilters(exclude_humans=True, without_project_bots=True),
    UserFilters(exclude_active=True),
    UserFilters(admins=True),
    UserFilters(search="u"),  # short: exact matches only
    UserFilters(search="viewbot"),
    UserFilters(search="@example.com"),
    UserFilters(search="   "),
    UserFilters(order_by="name", sort="asc"),
    UserFilters(order_by="created_at", sort="desc", search="user"),
    UserFilters(created_after=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
    UserFilters(created_before=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)),
    UserFilters(kind="bots"),
    UserFilters(kind="internal"),
    UserFilters(two_factor="enabled"),
]


@pytest.mark.parametrize("who", ["admin", "human", "anonymous"])
def test_a_listing_of_columns_finds_what_the_orm_listing_finds(
    server: LiveServer, db: Session, reads: PoolReads, people: dict[str, int], who: str
) -> None:
    actor = {"admin": db.get(User, 1), "human": db.get(User, people["human"]), "anonymous": None}[who]
    ctx = _ctx(server, db, actor)
    root = db.get(User, 1)
    assert root is not None
    filters = FILTERS if actor is not None else [UserFilters(username=root.username.upper())]
    for filters_ in filters:
        expected = [u.id for u in db.scalars(users_query(ctx, filters_))]
        listed = [user_view(row) for row in _all_rows(SessionReads(db), user_listing(ctx, filters_))]
        assert [u.id for u in listed] == expected, filters_
        assert [row.id for row in _all_rows(reads, user_listing(ctx, filters_))] == expected, filters_
        for view in listed:
            row = db.get(User, view.id)
            assert row is not None
            assert view == tuple(getattr(row, name) for name in UserView._fields)


def test_an_admin_listing_shows_each_users_namespace_and_seat_as_their_page_does(
    server: LiveServer, people: dict[str, int]
) -> None:
    with server.runtime.sessions() as db:
        original = instance_settings(_ctx(server, db, None)).plan
        db.commit()
    try:
        for plan in ("ultimate", "premium"):
            with server.runtime.sessions() as db, db.begin():
                db.execute(update(InstanceSettings).where(InstanceSettings.id == 1).values(plan=plan))
            listed = server.root("GET", "/users", params={"per_page": 100})
            assert listed.status_code == 200, listed.text
            shown = {user["id"]: user for user in listed.json()}
            assert set(people.values()) <= set(shown)
            for user_id in people.values():
                single = server.root("GET", f"/users/{user_id}").json()
                assert shown[user_id] == single, (plan, user_id)
            seats = {name for name in people if shown[people[name]]["using_license_seat"]}
            # Active people take a seat; on Ultimate only with a role above Guest.
            people_seats = {"human", "external", "admin", "guest", "developer"}
            assert seats == (people_seats if plan == "premium" else {"developer"}), plan
            assert all(isinstance(shown[people[name]]["namespace_id"], int) for name in people_seats)
    finally:
        with server.runtime.sessions() as db, db.begin():
            db.execute(update(InstanceSettings).where(InstanceSettings.id == 1).values(plan=original))


def test_a_non_admin_sees_the_public_entity_and_a_basic_listing(
    server: LiveServer, factory: Factory, people: dict[str, int]
) -> None:
    _, token = factory.user_with_token()
    with server.runtime.sessions() as db:
        row = db.get(User, people["human"])
        assert row is not None
        base = server.url
        single = server.request("GET", f"/users/{row.id}", token=token)
        assert single.json() == user_public(row, base)
        listed = server.request("GET", "/users", token=token, params={"username": row.username})
        assert listed.json() == [user_listed(row, base)]
        searched = server.request(
            "GET", "/search", token=token, params={"scope": "users", "search": row.username}
        )
        assert searched.json() == [user_listed(row, base)]
    assert server.request("GET", f"/users/{people['blocked']}", token=token).status_code == 200
    assert server.request("GET", f"/users/{people['human']}").status_code == 403
    assert server.request("GET", "/users/999999999", token=token).status_code == 404


@pytest.fixture(params=BACKENDS)
def bare(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    """A session on a database with only the settings table, and no settings row yet."""
    database = PgDatabase.create() if request.param == "postgresql" else None
    url = database.url if database is not None else f"sqlite:///{tmp_path / f'{uid()}.sqlite3'}"
    engine = make_engine(url, pool_size=2)
    InstanceSettings.metadata.tables["instance_settings"].create(engine)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()
        if database is not None:
            database.drop()


def test_settings_read_without_the_orm_are_the_rows_and_its_defaults_before_it_exists(bare: Session) -> None:
    ctx = Ctx(bare, Actor.system())
    before = settings_view(ctx)
    assert bare.scalar(select(func.count()).select_from(InstanceSettings)) == 0  # nothing written
    row = instance_settings(ctx)  # created with the model's defaults
    as_row = SettingsView(*(getattr(row, name) for name in SettingsView._fields))
    assert before._replace(updated_at=row.updated_at) == as_row
    assert settings_view(ctx) == as_row
    row.plan, row.seats, row.max_login_attempts = "premium", 12, 3
    bare.commit()
    changed: Any = settings_view(Ctx(bare, Actor.system()))
    assert (changed.plan, changed.seats, changed.max_login_attempts) == ("premium", 12, 3)
    assert set(SettingsView._fields) == set(InstanceSettings.__table__.columns.keys())
