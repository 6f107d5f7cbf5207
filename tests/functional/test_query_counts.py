"""Query counts per endpoint: a list costs the same number of SQL statements whatever its page size
(no query per row), and every everyday call stays within its budget. Counts, never times.

Statements are counted on the server's engine while one request runs, leaving out the background
threads (tests/support/statements.py). The budgets are today's counts: lowering one is progress,
raising one needs a reason.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.support.live import Factory, LiveServer, uid
from tests.support.statements import counting, statements_of


@pytest.fixture(scope="module")
def world(server: LiveServer) -> dict[str, int]:
    """A group with 25 developers, 25 projects and tokens; a project with 20 members and 20 bots;
    a user who is a direct member of the 25 projects; a user with 21 projects of their own."""
    factory = Factory(server)
    # First, so that the newest projects (the first page of /projects) stay the group's.
    owner = factory.user()
    for _ in range(21):
        created = server.root("POST", f"/projects/user/{owner['id']}", json={"name": uid("own")})
        assert created.status_code == 201, created.text
    group = factory.group()
    many = factory.user()
    for _ in range(25):
        user = factory.user()
        factory.member("groups", group["id"], user["id"], 30)
        listed = factory.project(namespace_id=group["id"])
        factory.member("projects", listed["id"], many["id"], 20)
        factory.token(user["id"])
    project = factory.project(namespace_id=group["id"])
    for _ in range(20):
        user = factory.user()
        factory.member("projects", project["id"], user["id"], 30)
        created = server.root(
            "POST", f"/projects/{project['id']}/access_tokens", json={"name": "bot", "scopes": ["api"]}
        )
        assert created.status_code == 201, created.text
    return {"group": group["id"], "project": project["id"], "user": many["id"], "owner": owner["id"]}


# Path (with {group}, {project}, {user}; {n} for a page size) -> most statements one request may run.
# SQLite's counts (a request that still reads through the ORM session begins its transaction with
# a statement of its own there; PostgreSQL's one fewer). A list is its count, its page and what
# the page's rows need in batches (no count when the page ends the list). Reads through
# keycrew.db.reads run no BEGIN at all.
SINGLE = {
    # The owner comes from the principal cache.
    "/user": 0,
    # As admin: the user with their personal namespace and seat (and the plan), one statement.
    "/users/1": 1,
    # The project with its namespace and the caller's levels, in one statement; its share links
    # (shared_with_groups); its compliance frameworks' names (access.compliance.framework_names;
    # no statement while the instance has no framework at all).
    "/projects/{project}": 3,
    # The group, its projects, its share links (shared_with_groups), its projects' compliance
    # frameworks (one statement for them all).
    "/groups/{group}": 4,
}
LISTS = {
    "/personal_access_tokens?per_page={n}": 2,
    # The page, its projects' compliance frameworks (one statement for the page).
    "/projects?per_page={n}": 3,
    # The count, the page, the namespaces and seats of the page's users.
    "/users?per_page={n}": 3,
    "/groups?per_page={n}": 2,
    "/namespaces?per_page={n}": 3,
    "/audit_events?per_page={n}": 3,
    "/groups/{group}/projects?per_page={n}": 4,
    # A count and a page chosen in SQL (one membership per user), rather than every membership of
    # the group and its ancestors read to build one page in memory: a page of a group of 10,000
    # members costs what a page of 20 does.
    "/groups/{group}/members/all?per_page={n}": 4,
    "/projects/{project}/members/all?per_page={n}": 4,
    # The project, the count, the page, the bots' levels.
    "/projects/{project}/access_tokens?per_page={n}": 4,
    # The user, the count, the page (each membership joined to its project or group for the name).
    "/users/{user}/memberships?per_page={n}": 3,
    # The user with their personal namespace, the count, the page, the owner's brief, the page's
    # compliance frameworks.
    "/users/{owner}/projects?per_page={n}": 5,
}


@pytest.mark.parametrize("template", sorted(SINGLE))
def test_single_object_reads_stay_within_their_budget(
    server: LiveServer, world: dict[str, int], template: str
) -> None:
    path = template.format(**world)
    assert statements_of(server, path) <= SINGLE[template]


@pytest.mark.parametrize("template", sorted(LISTS))
def test_a_list_costs_no_more_statements_for_20_rows_than_for_5(
    server: LiveServer, world: dict[str, int], template: str
) -> None:
    small = statements_of(server, template.format(n=5, **world))
    large = statements_of(server, template.format(n=20, **world))
    # A larger page never costs more; it may cost one less, when it ends the list and so tells
    # its total without a count (api/pagination.py).
    assert small - 1 <= large <= small, f"{template}: {small} statements for 5 rows, {large} for 20"
    assert small <= LISTS[template]


def test_the_counter_sees_statements(server: LiveServer, factory: Factory) -> None:
    """The instrument itself: a request that reads the database is counted (the test can fail)."""
    with counting(server) as seen:
        assert server.root("GET", "/users?per_page=1").status_code == 200
    assert seen, "no statement counted"


# The everyday reads that run without the ORM (keycrew.db.reads): the session is never opened.
WITHOUT_SESSION = [
    *SINGLE,
    *(t for t in LISTS if not t.startswith("/audit_events")),
    "/groups/{group}/members?per_page=20",
    "/projects/{project}/members?per_page=20",
    "/namespaces/{group}",
    "/groups/{group}/subgroups",
    "/groups/{group}/access_tokens",
    "/personal_access_tokens/self",
]


def test_everyday_reads_never_open_the_orm_session(
    server: LiveServer, world: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    read_session = server.runtime.read_session

    def counted() -> Any:
        opened.append(threading.current_thread().name)
        return read_session()

    monkeypatch.setattr(server.runtime, "read_session", counted)
    for template in WITHOUT_SESSION:
        path = template.format(n=20, **world)
        response = server.root("GET", path)
        assert response.status_code == 200, (path, response.text)
        assert not opened, f"GET {path} opened an ORM session"
    # The instrument itself: a read still on the ORM is seen.
    assert server.root("GET", "/audit_events?per_page=5").status_code == 200
    assert opened
