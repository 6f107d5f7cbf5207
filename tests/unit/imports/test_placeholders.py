"""Rule: one placeholder user per source user per destination top-level group, named as GitLab
names them, never billable, within the plan's limit (the Import User beyond it), and the author
of an imported item chosen as GitLab does (keycrew/imports/placeholders.py)."""

from __future__ import annotations

import zlib

import pytest
from sqlalchemy import func, select

from keycrew.access.seats import billable_users_count, is_billable
from keycrew.audit.events import Event
from keycrew.errors import Invalid
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from keycrew.imports.models import ImportSourceUser, SourceUserStatus
from keycrew.imports.placeholders import (
    PLACEHOLDER_LIMITS,
    AuthorReason,
    SourceAuthor,
    author_for,
    find_or_create_source_user,
    import_user,
    limit_reached,
    normalized_hostname,
    placeholder_limit,
    placeholder_name,
    placeholder_username_base,
)
from keycrew.instance.settings import Plan, set_license
from keycrew.namespaces.models import Namespace
from tests.unit import factories
from tests.unit.conftest import HOST, World

SOURCE = "https://gitlab.example.com"


def _source_user(
    world: World, group: Namespace, identifier: str = "11", **kw: str | None
) -> ImportSourceUser:
    return find_or_create_source_user(
        world.as_root(),
        group,
        source_hostname=kw.pop("source_hostname", None) or SOURCE,
        source_user_identifier=identifier,
        source_name=kw.pop("source_name", "Bob Source"),
        source_username=kw.pop("source_username", "bob"),
    )


def _user(world: World, user_id: int | None) -> User:
    assert user_id is not None
    user = world.db.get(User, user_id)
    assert user is not None
    return user


def _crc36(text: str) -> str:
    value, digits, out = zlib.crc32(text.encode()), "0123456789abcdefghijklmnopqrstuvwxyz", ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if not value:
            return out


def test_a_placeholder_is_named_as_gitlab_names_it(world: World) -> None:
    group = factories.group(world.as_root(), path="acme")
    source_user = _source_user(world, group, "42", source_name="Bob Source", source_username="bob.smith-1")
    placeholder = _user(world, source_user.placeholder_user_id)
    assert placeholder.user_type == int(UserType.PLACEHOLDER)
    assert placeholder.name == "Placeholder Bob Source"
    assert placeholder.username == f"bobsmith1_placeholder_{_crc36('acme42')}"
    assert placeholder.email == f"{placeholder.username}@noreply.{HOST}"
    assert placeholder.password_digest is None
    assert source_user.status == SourceUserStatus.PENDING_REASSIGNMENT
    assert source_user.source_hostname == SOURCE
    assert source_user.import_type == "gitlab_migration"


def test_names_fall_back_to_the_import_type_and_take_a_counter_when_taken() -> None:
    assert placeholder_name(None) == "Placeholder gitlab_migration Source User"
    assert placeholder_name("x" * 300) == "Placeholder " + "x" * 127
    assert placeholder_username_base("g", "1", "äöü") == f"gitlab_migration_placeholder_{_crc36('g1')}"
    assert placeholder_username_base("g", "1", None).startswith("gitlab_migration_placeholder_")
    assert len(placeholder_username_base("g", "1", "a" * 400)) <= 255


def test_a_taken_username_gets_the_next_counter(world: World) -> None:
    group = factories.group(world.as_root(), path="taken")
    base = placeholder_username_base("taken", "7", "carol")
    factories.user(world.as_root(), username=base)
    source_user = _source_user(world, group, "7", source_username="carol", source_name="Carol")
    assert _user(world, source_user.placeholder_user_id).username == f"{base}1"


def test_one_placeholder_per_source_user_per_top_level_group(world: World) -> None:
    ctx = world.as_root()
    top = factories.group(ctx)
    sub = factories.group(ctx, parent=top)
    other = factories.group(ctx)
    first = _source_user(world, sub, "5")
    again = _source_user(world, top, "5", source_name="Renamed")
    assert again.id == first.id
    assert again.namespace_id == top.id
    assert _source_user(world, top, "5", source_hostname="HTTPS://GitLab.Example.com/").id == first.id
    elsewhere = _source_user(world, other, "5")
    other_host = _source_user(world, top, "5", source_hostname="https://other.example.com")
    ids = {first.placeholder_user_id, elsewhere.placeholder_user_id, other_host.placeholder_user_id}
    assert len(ids) == 3
    count = world.db.scalar(select(func.count(User.id)).where(User.user_type == int(UserType.PLACEHOLDER)))
    assert count == 3


def test_placeholders_are_created_under_migration_bot_and_never_billable(world: World) -> None:
    group = factories.group(world.as_root())
    before = billable_users_count(world.as_root())
    source_user = _source_user(world, group, "9")
    placeholder = _user(world, source_user.placeholder_user_id)
    assert billable_users_count(world.as_root()) == before
    assert not is_billable(world.as_root(), placeholder)
    (event,) = world.events(Event.PLACEHOLDER_USER_CREATED)
    bot = _user(world, event.author_id)
    assert bot.user_type == int(UserType.MIGRATION_BOT)
    assert event.target_id == placeholder.id
    assert event.entity_id == group.id
    assert event.details["source_user_identifier"] == "9"


def test_bad_source_input_is_refused(world: World) -> None:
    group = factories.group(world.as_root())
    with pytest.raises(Invalid):
        _source_user(world, group, "1", source_hostname="ftp://x")
    with pytest.raises(Invalid):
        _source_user(world, group, "  ")
    assert normalized_hostname("http://Host:8080/path/") == "http://host:8080"


@pytest.mark.parametrize(
    ("plan", "seats", "expected"),
    [
        (Plan.FREE, 10, 200),
        (Plan.FREE, 5000, 200),
        (Plan.PREMIUM, 100, 500),
        (Plan.PREMIUM, 101, 2000),
        (Plan.PREMIUM, 1000, 4000),
        (Plan.PREMIUM, 1001, 6000),
        (Plan.ULTIMATE, 50, 1000),
        (Plan.ULTIMATE, 500, 4000),
        (Plan.ULTIMATE, 501, 6000),
        (Plan.ULTIMATE, 2000, 8000),
    ],
)
def test_the_limit_follows_the_plan_and_the_seat_tier(
    world: World, plan: Plan, seats: int, expected: int
) -> None:
    set_license(world.as_root(), plan.value, seats)
    assert placeholder_limit(world.as_root()) == expected


def test_unlimited_seats_take_the_tier_of_the_billable_users(world: World) -> None:
    set_license(world.as_root(), Plan.PREMIUM.value, None)
    assert placeholder_limit(world.as_root()) == PLACEHOLDER_LIMITS[Plan.PREMIUM][0]


def test_beyond_the_limit_the_group_import_user_stands_in(world: World) -> None:
    set_license(world.as_root(), Plan.FREE.value, 10)
    group = factories.group(world.as_root(), path="full")
    limit = placeholder_limit(world.as_root())
    for n in range(limit):
        _source_user(world, group, str(n), source_username=f"user{n}")
    assert limit_reached(world.as_root(), group)
    over = _source_user(world, group, "over", source_username="late")
    stand_in = _user(world, over.placeholder_user_id)
    assert stand_in.user_type == int(UserType.IMPORT_USER)
    assert stand_in.name == "Import User"
    assert stand_in.username.startswith("import_user_full_")
    assert stand_in.email == f"{stand_in.username}@noreply.{HOST}".lower()
    assert _source_user(world, group, "over2").placeholder_user_id == stand_in.id
    assert import_user(world.as_root(), group).id == stand_in.id
    attribution = author_for(world.as_root(), group, SourceAuthor("over"), source_hostname=SOURCE)
    assert attribution.reason is AuthorReason.PLACEHOLDER_LIMIT
    assert attribution.user.id == stand_in.id
    # Another group has its own limit and its own Import User.
    other = factories.group(world.as_root())
    assert _user(world, _source_user(world, other, "over").placeholder_user_id).user_type == int(
        UserType.PLACEHOLDER
    )
    assert import_user(world.as_root(), other).id != stand_in.id
    assert len(world.events(Event.IMPORT_USER_CREATED)) == 2


def test_a_personal_namespace_gets_the_import_user(world: World) -> None:
    person = factories.user(world.as_root())
    personal = world.db.scalars(select(Namespace).where(Namespace.owner_id == person.id)).one()
    attribution = author_for(
        world.as_root(), personal, SourceAuthor("3", "Dan", "dan"), source_hostname=SOURCE
    )
    assert attribution.reason is AuthorReason.PERSONAL_NAMESPACE
    assert attribution.user.user_type == int(UserType.IMPORT_USER)


def test_unavailable_source_authors_go_to_migration_bot(world: World) -> None:
    group = factories.group(world.as_root())
    cases = [
        (None, AuthorReason.SOURCE_USER_DELETED),
        (SourceAuthor("1", "Ghost User", "ghost", user_type="ghost"), AuthorReason.SOURCE_GHOST_USER),
        (SourceAuthor("2", "Eve", "eve", state="blocked"), AuthorReason.SOURCE_USER_BLOCKED),
        (SourceAuthor("3", "Mal", "mal", state="banned"), AuthorReason.SOURCE_USER_BLOCKED),
    ]
    for source, reason in cases:
        attribution = author_for(world.as_root(), group, source, source_hostname=SOURCE)
        assert attribution.reason is reason
        assert attribution.user.user_type == int(UserType.MIGRATION_BOT)
        assert attribution.source_user is None
    assert world.db.scalar(select(func.count(ImportSourceUser.id))) == 0


def test_available_authors_get_their_placeholder_then_the_reassigned_user(world: World) -> None:
    group = factories.group(world.as_root())
    source = SourceAuthor("12", "Fay", "fay")
    first = author_for(world.as_root(), group, source, source_hostname=SOURCE)
    assert first.reason is AuthorReason.PLACEHOLDER
    assert first.user.user_type == int(UserType.PLACEHOLDER)
    assert first.source_user is not None
    assert author_for(world.as_root(), group, source, source_hostname=SOURCE).user.id == first.user.id
    real = factories.user(world.as_root())
    first.source_user.reassign_to_user_id = real.id
    first.source_user.status = SourceUserStatus.COMPLETED.value
    world.db.flush()
    done = author_for(world.as_root(), group, source, source_hostname=SOURCE)
    assert done.reason is AuthorReason.REASSIGNED
    assert done.user.id == real.id
