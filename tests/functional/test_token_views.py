"""Tokens read as column values (keycrew.tokens.views) on both databases: a view renders exactly
what the ORM row renders, a listing with any of GitLab's filters and sorts selects the same tokens
in the same order, a bot's token is found only through its own project or group, and the token
listings run a fixed number of statements whatever their page size."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from keycrew.api.entities.tokens import impersonation_token, personal_access_token
from keycrew.db.reads import PoolReads
from keycrew.namespaces.kinds import SourceType
from keycrew.tokens.lifecycle import SORTS, TokenFilters, filtered
from keycrew.tokens.models import PersonalAccessToken
from keycrew.tokens.views import PersonalAccessTokenView, read_bot_token, read_token, token_rows, token_view
from tests.support.live import Factory, LiveServer
from tests.support.statements import statements_of


@pytest.fixture
def reads(server: LiveServer) -> Iterator[PoolReads]:
    found = PoolReads(server.runtime.engine)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture(scope="module")
def owner(server: LiveServer) -> dict[str, Any]:
    """A user with tokens of every kind of state: active, revoked, never expiring, used, with a
    description, with several scopes, and an impersonation token."""
    factory = Factory(server)
    user = factory.user()
    today = dt.datetime.now(dt.UTC).date()
    bodies: list[dict[str, Any]] = [
        {"name": "plain", "scopes": ["api"]},
        {"name": "described", "scopes": ["read_api", "read_user"], "description": "for CI"},
        {
            "name": "soon",
            "scopes": ["read_repository"],
            "expires_at": (today + dt.timedelta(days=2)).isoformat(),
        },
        {"name": "later_50%_", "scopes": ["api"], "expires_at": (today + dt.timedelta(days=90)).isoformat()},
        {"name": "revoked", "scopes": ["api"]},
    ]
    made = []
    for body in bodies:
        response = server.root("POST", f"/users/{user['id']}/personal_access_tokens", json=body)
        assert response.status_code == 201, response.text
        made.append(response.json())
    assert server.root("DELETE", f"/personal_access_tokens/{made[-1]['id']}").status_code == 204
    assert server.request("GET", "/user", token=made[0]["token"]).status_code == 200
    assert server.runtime.usage is not None
    server.runtime.usage.flush()
    impersonation = server.root(
        "POST", f"/users/{user['id']}/impersonation_tokens", json={"name": "as them", "scopes": ["api"]}
    )
    assert impersonation.status_code == 201, impersonation.text
    return user


def _orm_tokens(server: LiveServer, user_id: int) -> dict[int, PersonalAccessToken]:
    with Session(server.runtime.engine) as db:
        found = db.scalars(select(PersonalAccessToken).where(PersonalAccessToken.user_id == user_id)).all()
        db.expunge_all()
    return {t.id: t for t in found}


def test_a_view_renders_what_its_row_renders(
    server: LiveServer, owner: dict[str, Any], reads: PoolReads
) -> None:
    tokens = _orm_tokens(server, owner["id"])
    assert len(tokens) == 6
    today = dt.datetime.now(dt.UTC).date()
    for token_id, token in tokens.items():
        view = read_token(reads, token_id)
        assert isinstance(view, PersonalAccessTokenView)
        for day in (today, today + dt.timedelta(days=3), today + dt.timedelta(days=400)):
            assert personal_access_token(view, day) == personal_access_token(token, day)
            assert impersonation_token(view, day) == impersonation_token(token, day)
            assert (view.is_active(day), view.is_expired(day)) == (
                token.is_active(day),
                token.is_expired(day),
            )
        for field in PersonalAccessTokenView._fields:
            assert getattr(view, field) == getattr(token, field), field
    assert any(t.last_used_at is not None for t in tokens.values())
    assert read_token(reads, 999_999_999) is None


def test_a_view_never_holds_the_digest() -> None:
    assert "token_digest" not in PersonalAccessTokenView._fields
    assert not hasattr(PersonalAccessTokenView(*range(len(PersonalAccessTokenView._fields))), "token_digest")


FILTERS = [
    TokenFilters(),
    TokenFilters(state="active"),
    TokenFilters(state="inactive"),
    TokenFilters(revoked=True),
    TokenFilters(revoked=False),
    TokenFilters(search="50%_"),
    TokenFilters(search="E"),
    TokenFilters(expires_after=dt.datetime.now(dt.UTC).date() + dt.timedelta(days=10)),
    TokenFilters(expires_before=dt.datetime.now(dt.UTC).date() + dt.timedelta(days=10)),
    TokenFilters(created_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
    TokenFilters(created_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
    TokenFilters(last_used_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)),
    TokenFilters(last_used_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=1)),
    TokenFilters(state="active", search="e", sort="name_desc"),
    *[TokenFilters(sort=sort) for sort in SORTS],
]


def _filters_id(filters: TokenFilters) -> str:
    """A stable test id (the same in every process, whatever the time): the fields set, with
    dates named but not shown."""
    fields = {name: value for name, value in vars(filters).items() if value is not None}
    return (
        ",".join(name if isinstance(value, dt.date) else f"{name}={value}" for name, value in fields.items())
        or "none"
    )


@pytest.mark.parametrize("filters", FILTERS, ids=_filters_id)
def test_a_listing_read_as_columns_selects_what_the_orm_selects(
    server: LiveServer, owner: dict[str, Any], reads: PoolReads, filters: TokenFilters
) -> None:
    today = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)  # "soon" has expired by then
    query = filtered(
        select(PersonalAccessToken).where(PersonalAccessToken.user_id == owner["id"]), filters, today
    )
    with Session(server.runtime.engine) as db:
        expected = [personal_access_token(t, today) for t in db.scalars(query)]
    views = [token_view(row) for row in reads.rows(token_rows(query))]
    assert [personal_access_token(v, today) for v in views] == expected


def test_a_bots_token_is_found_through_its_own_resource_only(
    server: LiveServer, factory: Factory, owner: dict[str, Any], reads: PoolReads
) -> None:
    project, other = factory.project(), factory.project()
    group = factory.group()
    made = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "b", "scopes": ["api"]}
    )
    assert made.status_code == 201, made.text
    token_id = made.json()["id"]
    personal_id = _orm_tokens(server, owner["id"]).popitem()[0]
    projects = SourceType.PROJECT.value
    found = read_bot_token(reads, token_id, projects, project["id"])
    assert found is not None
    assert (found.id, found.name, found.user_id) == (token_id, "b", made.json()["user_id"])
    assert read_bot_token(reads, token_id, projects, other["id"]) is None
    assert read_bot_token(reads, token_id, SourceType.NAMESPACE.value, group["id"]) is None
    assert read_bot_token(reads, personal_id, projects, project["id"]) is None


def test_token_reads_run_a_fixed_number_of_statements(server: LiveServer, factory: Factory) -> None:
    """As tests/functional/test_query_counts.py, for the token reads: the resource, the page, the
    count (unless the page ends the list), the bots' levels; never one statement per token."""
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    made = []
    for kind, source in (("projects", project["id"]), ("groups", group["id"])):
        for i in range(6):
            response = server.root(
                "POST", f"/{kind}/{source}/access_tokens", json={"name": f"b{i}", "scopes": ["api"]}
            )
            assert response.status_code == 201, response.text
            made.append((kind, source, response.json()["id"]))
    for kind, source, _token_id in made[::6]:
        small = statements_of(server, f"/{kind}/{source}/access_tokens?per_page=2")
        large = statements_of(server, f"/{kind}/{source}/access_tokens?per_page=6&state=active&sort=name_asc")
        # per_page=6 ends the list of six: its total needs no count.
        assert small - 1 == large <= 3, (kind, small, large)
    for kind, source, token_id in made[::6]:
        assert statements_of(server, f"/{kind}/{source}/access_tokens/{token_id}") <= 3
    assert statements_of(server, "/personal_access_tokens?per_page=2") == 2
    # The user, the page, and the count unless that page ends root's list.
    assert statements_of(server, "/personal_access_tokens?per_page=20&user_id=1&state=active") <= 3
    assert statements_of(server, f"/personal_access_tokens/{made[0][2]}") == 1
