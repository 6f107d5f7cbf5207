"""Contribution events (GitLab's Events API): what writes them, who sees them, the filters, the
push payloads, what deletions do to them, user activities and contributed projects."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.git import Git, repo_url
from tests.support.live import Factory, LiveServer, uid
from tests.support.statements import statements_of

ANONYMOUS = ""


def _events(server: LiveServer, path: str, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """GET a listing as ``token`` (root by default, nobody with ANONYMOUS)."""
    response = server.request(
        "GET", path, token=server.root_token if token is None else token or None, params=params
    )
    assert response.status_code == 200, response.text
    return list(response.json())


def _issue(server: LiveServer, project_id: int, token: str, **attrs: Any) -> dict[str, Any]:
    response = server.request(
        "POST", f"/projects/{project_id}/issues", token=token, json={"title": uid("issue")} | attrs
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path)


@pytest.fixture(autouse=True)
def _fresh_throttle(server: LiveServer) -> Any:
    server.runtime.auth_throttle.reset()
    yield
    server.runtime.auth_throttle.reset()


# --- what writes events ----------------------------------------------------------------------------


def test_project_issue_and_note_events_through_python_gitlab(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    gl = server.gl(token)
    project = gl.projects.create({"name": uid("ev")})
    issue = project.issues.create({"title": "Broken build"})
    issue.state_event = "close"
    issue.save()
    issue.state_event = "reopen"
    issue.save()
    note = issue.notes.create({"body": "on it"})

    mine = gl.events.list(get_all=True)
    assert [(e.action_name, e.target_type) for e in mine] == [
        ("commented on", "Note"),
        ("opened", "Issue"),  # reopened is shown as "opened", as GitLab does
        ("closed", "Issue"),
        ("opened", "Issue"),
        ("created", None),
    ]
    commented, _reopened, _closed, opened, created = mine
    assert created.project_id == project.id
    assert created.target_id is None
    assert created.target_title is None
    assert opened.target_id == issue.id
    assert opened.target_iid == issue.iid
    assert opened.target_title == "Broken build"
    assert commented.target_id == note.id
    assert commented.target_iid == note.id
    assert commented.target_title == "Broken build"
    assert commented.note["body"] == "on it"
    assert commented.note["noteable_type"] == "Issue"
    assert commented.note["noteable_iid"] == issue.iid
    assert commented.author_username == user["username"]
    assert commented.author["id"] == user["id"]
    assert commented.author["web_url"].endswith(user["username"])
    assert "push_data" not in commented.attributes
    assert "note" not in opened.attributes
    assert commented.imported is False
    assert commented.imported_from == "none"
    # The same through the user's and the project's listings; the title follows the issue.
    issue.title = "Broken build, again"
    issue.save()
    by_user = gl.users.get(user["id"], lazy=True).events.list(get_all=True, sort="asc")
    assert [e.id for e in by_user] == [e.id for e in reversed(mine)]
    assert by_user[1].target_title == "Broken build, again"
    by_project = project.events.list(get_all=True)
    assert [e.id for e in by_project] == [e.id for e in mine]
    by_name = _events(server, f"/users/{user['username']}/events")
    assert [e["id"] for e in by_name] == [e.id for e in mine]


def test_member_joined_and_left_events_by_the_member(server: LiveServer, factory: Factory) -> None:
    owner, owner_token = factory.user_with_token()
    project = factory.project(token=owner_token)
    member, member_token = factory.user_with_token()
    factory.member("projects", project["id"], member["id"], 30, token=owner_token)
    removed = server.request("DELETE", f"/projects/{project['id']}/members/{member['id']}", token=owner_token)
    assert removed.status_code == 204, removed.text
    # Group memberships write nothing.
    group = factory.group()
    factory.member("groups", group["id"], member["id"], 30)
    events = _events(server, f"/users/{member['id']}/events")
    assert [(e["action_name"], e["project_id"], e["target_type"]) for e in events] == [
        ("left", project["id"], None),
        ("joined", project["id"], None),
    ]
    # The holder of the personal namespace never "joins" their own project.
    assert [e["action_name"] for e in _events(server, f"/users/{owner['id']}/events")] == ["created"]
    # A Developer creating a project in a group joins it as Maintainer.
    in_group = factory.project(token=member_token, namespace_id=group["id"])
    assert [e["action_name"] for e in _events(server, f"/projects/{in_group['id']}/events")] == [
        "created",
        "joined",
    ]


def test_a_project_bot_joins_and_its_actions_are_its_own(server: LiveServer, factory: Factory) -> None:
    project = factory.project()
    created = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "ci", "scopes": ["api"]}
    )
    assert created.status_code == 201, created.text
    bot_id, bot_token = created.json()["user_id"], created.json()["token"]
    issue = _issue(server, project["id"], bot_token)
    events = _events(server, f"/projects/{project['id']}/events")
    assert [(e["action_name"], e["author_id"]) for e in events[:2]] == [
        ("opened", bot_id),
        ("joined", bot_id),
    ]
    assert events[0]["target_id"] == issue["id"]


# --- filters, order, pagination, bad input -------------------------------------------------------------


def test_filters_sort_and_pagination(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token()
    project = factory.project(token=token)
    start = server.clock.now()
    server.clock.travel_to(start + dt.timedelta(days=10))
    issue = _issue(server, project["id"], token)
    note = server.request(
        "POST", f"/projects/{project['id']}/issues/{issue['iid']}/notes", token=token, json={"body": "x"}
    )
    assert note.status_code == 201
    path = f"/projects/{project['id']}/events"
    assert [e["action_name"] for e in _events(server, path, token, action="created")] == ["opened", "created"]
    assert [e["target_type"] for e in _events(server, path, token, target_type="issue")] == ["Issue"]
    assert [e["target_type"] for e in _events(server, path, token, target_type="note")] == ["Note"]
    assert _events(server, path, token, action="pushed") == []
    # Exclusive day bounds: "before" the day the issue was opened, "after" the day the project was.
    created_day = start.date()
    later_day = (start + dt.timedelta(days=10)).date()
    assert [e["action_name"] for e in _events(server, path, token, before=later_day.isoformat())] == [
        "created"
    ]
    assert [e["action_name"] for e in _events(server, path, token, after=created_day.isoformat())] == [
        "commented on",
        "opened",
    ]
    assert _events(server, path, token, after=later_day.isoformat()) == []
    assert len(_events(server, path, token, before=later_day.isoformat(), after="2000-01-01")) == 1
    ascending = _events(server, path, token, sort="asc")
    assert [e["action_name"] for e in ascending] == ["created", "opened", "commented on"]
    page = server.request("GET", path, token=token, params={"per_page": 2, "page": 2, "sort": "asc"})
    assert [e["action_name"] for e in page.json()] == ["commented on"]
    assert (page.headers["X-Total"], page.headers["X-Total-Pages"]) == ("3", "2")
    capped = server.request("GET", path, token=token, params={"per_page": 500})
    assert capped.headers["X-Per-Page"] == "100"
    for name, value in (("action", "exploded"), ("target_type", "Issue"), ("sort", "sideways")):
        bad = server.request("GET", path, token=token, params={name: value})
        assert (bad.status_code, bad.json()) == (400, {"error": f"{name} does not have a valid value"})
    bad_date = server.request("GET", "/events", token=token, params={"before": "yesterday"})
    assert (bad_date.status_code, bad_date.json()) == (400, {"error": "before is invalid"})
    far = server.request("GET", "/events", token=token, params={"after": "9999-12-31"})
    assert (far.status_code, far.json()) == (200, [])


def test_own_events_need_a_user_and_scope_all_lists_member_projects(
    server: LiveServer, factory: Factory
) -> None:
    anonymous = server.request("GET", "/events")
    assert (anonymous.status_code, anonymous.json()) == (401, {"message": "401 Unauthorized"})
    _owner, owner_token = factory.user_with_token()
    project = factory.project(token=owner_token)
    member, member_token = factory.user_with_token(scopes=["read_user"])
    factory.member("projects", project["id"], member["id"], 20, token=owner_token)
    issue = _issue(server, project["id"], owner_token)
    own = _events(server, "/events", member_token)
    assert [e["action_name"] for e in own] == ["joined"]
    everything = _events(server, "/events", member_token, scope="all")
    assert [e["action_name"] for e in everything] == ["opened", "joined", "created"]
    assert everything[0]["target_id"] == issue["id"]
    # Someone else's projects are not "all" for a stranger.
    _, stranger_token = factory.user_with_token()
    assert all(
        e["project_id"] != project["id"] for e in _events(server, "/events", stranger_token, scope="all")
    )


# --- who sees what ------------------------------------------------------------------------------------


def test_visibility_of_projects_confidential_issues_and_private_profiles(
    server: LiveServer, factory: Factory
) -> None:
    owner, owner_token = factory.user_with_token()
    public = factory.project(token=owner_token, visibility="public")
    private = factory.project(token=owner_token, visibility="private")
    open_issue = _issue(server, public["id"], owner_token)
    secret = _issue(server, public["id"], owner_token, confidential=True)
    hidden_issue = _issue(server, private["id"], owner_token)
    guest, guest_token = factory.user_with_token()
    factory.member("projects", public["id"], guest["id"], 10, token=owner_token)
    planner, planner_token = factory.user_with_token()
    factory.member("projects", public["id"], planner["id"], 15, token=owner_token)
    path = f"/users/{owner['id']}/events"

    def seen(token: str | None) -> set[int | None]:
        response = server.request("GET", path, token=token)
        assert response.status_code == 200, response.text
        return {e["target_id"] for e in response.json() if e["action_name"] == "opened"}

    everything = {open_issue["id"], secret["id"], hidden_issue["id"]}
    assert seen(owner_token) == everything
    assert seen(None) == {open_issue["id"]}  # anonymous: the public project, not its confidential issue
    assert seen(guest_token) == {open_issue["id"]}
    assert seen(planner_token) == {open_issue["id"], secret["id"]}
    assert seen(server.root_token) == everything
    # An internal note is seen by Planners and above only.
    internal = server.request(
        "POST",
        f"/projects/{public['id']}/issues/{open_issue['iid']}/notes",
        token=owner_token,
        json={"body": "between us", "internal": True},
    )
    assert internal.status_code == 201, internal.text

    def comments(token: str | None) -> list[int]:
        return [e["target_id"] for e in _events(server, path, token, action="commented")]

    assert comments(guest_token) == []
    assert comments(ANONYMOUS) == []
    assert comments(planner_token) == [internal.json()["id"]]
    listed = server.request("GET", path, token=guest_token)
    assert listed.headers["X-Total"] == str(len(listed.json()))
    # An invisible project's events: 404 for the project; a private profile: nothing for others.
    hidden = server.request("GET", f"/projects/{private['id']}/events", token=guest_token)
    assert (hidden.status_code, hidden.json()) == (404, {"message": "404 Project Not Found"})
    assert _events(server, f"/projects/{public['id']}/events", ANONYMOUS)
    made_private = server.root("PUT", f"/users/{owner['id']}", json={"private_profile": True})
    assert made_private.status_code == 200, made_private.text
    assert _events(server, path, guest_token) == []
    assert _events(server, path, owner_token)
    assert _events(server, path, server.root_token)
    unknown = server.request("GET", "/users/no-such-user-at-all/events", token=guest_token)
    assert (unknown.status_code, unknown.json()) == (404, {"message": "404 User Not Found"})


# --- pushes ---------------------------------------------------------------------------------------------


def test_push_events_with_their_payloads(server: LiveServer, factory: Factory, git: Git) -> None:
    user, token = factory.user_with_token(scopes=["api", "write_repository"])
    project = factory.project(token=token, visibility="private")
    url = repo_url(server, project["path_with_namespace"], user["username"], token)
    clone, _ = git.clone(url)
    git.commit(clone, "a.txt")
    first = git.commit(clone, "b.txt")
    assert git.push(clone, "origin", "HEAD:main").returncode == 0
    second = git.commit(clone, "c.txt")
    assert git.push(clone, "origin", "HEAD:main").returncode == 0
    git.run("checkout", "--quiet", "-b", "topic", cwd=clone)
    third = git.commit(clone, "d.txt")
    git.run("tag", "v1", cwd=clone)
    assert git.push(clone, "origin", "topic", "v1").returncode == 0
    assert git.push(clone, "origin", ":topic").returncode == 0

    pushes = _events(server, f"/projects/{project['id']}/events", token, action="pushed", sort="asc")
    summary = [(e["action_name"], e["push_data"]["ref"], e["push_data"]["ref_type"]) for e in pushes]
    assert summary[:2] == [("pushed new", "main", "branch"), ("pushed to", "main", "branch")]
    assert sorted(summary[2:4]) == [("pushed new", "topic", "branch"), ("pushed new", "v1", "tag")]
    assert summary[4] == ("deleted", "topic", "branch")
    new_main, to_main = pushes[0]["push_data"], pushes[1]["push_data"]
    assert new_main == {
        "commit_count": 2,
        "action": "created",
        "ref_type": "branch",
        "commit_from": None,
        "commit_to": first,
        "ref": "main",
        "commit_title": "change b.txt",
        "ref_count": None,
    }
    assert (to_main["action"], to_main["commit_count"], to_main["commit_from"], to_main["commit_to"]) == (
        "pushed",
        1,
        first,
        second,
    )
    topic = next(e["push_data"] for e in pushes[2:4] if e["push_data"]["ref"] == "topic")
    assert (topic["commit_count"], topic["commit_to"], topic["commit_title"]) == (1, third, "change d.txt")
    deleted = pushes[4]["push_data"]
    assert (deleted["action"], deleted["commit_count"], deleted["commit_from"], deleted["commit_to"]) == (
        "removed",
        0,
        third,
        None,
    )
    assert all(e["author_id"] == user["id"] and e["target_type"] is None for e in pushes)
    # Pushes need download_code: a Guest of the private project sees the other events only.
    guest, guest_token = factory.user_with_token()
    factory.member("projects", project["id"], guest["id"], 10, token=token)
    assert _events(server, f"/projects/{project['id']}/events", guest_token, action="pushed") == []
    reporter, reporter_token = factory.user_with_token()
    factory.member("projects", project["id"], reporter["id"], 20, token=token)
    assert len(_events(server, f"/projects/{project['id']}/events", reporter_token, action="pushed")) == 5


def test_a_push_of_many_branches_is_one_bulk_event(server: LiveServer, factory: Factory, git: Git) -> None:
    project = factory.project(initialize_with_readme=True)
    clone, _ = git.clone(repo_url(server, project["path_with_namespace"], "root", server.root_token))
    for name in ("b1", "b2", "b3", "b4"):
        git.run("branch", name, cwd=clone)
    assert git.push(clone, "origin", "b1", "b2", "b3", "b4").returncode == 0
    pushes = _events(server, f"/projects/{project['id']}/events", action="pushed")
    assert len(pushes) == 1
    assert pushes[0]["action_name"] == "pushed new"
    assert pushes[0]["push_data"] | {} == {
        "commit_count": 0,
        "action": "created",
        "ref_type": "branch",
        "commit_from": None,
        "commit_to": None,
        "ref": None,
        "commit_title": None,
        "ref_count": 4,
    }


# --- deletions -------------------------------------------------------------------------------------------


def test_deleting_users_issues_notes_and_projects(server: LiveServer, factory: Factory) -> None:
    host = factory.project(visibility="public")
    soft, soft_token = factory.user_with_token()
    hard, hard_token = factory.user_with_token()
    for user in (soft, hard):
        factory.member("projects", host["id"], user["id"], 30)
    soft_issue = _issue(server, host["id"], soft_token)
    hard_issue = _issue(server, host["id"], hard_token)
    # Root comments on the hard-deleted user's issue: that comment goes with the issue.
    comment = server.root(
        "POST", f"/projects/{host['id']}/issues/{hard_issue['iid']}/notes", json={"body": "looks good"}
    )
    assert comment.status_code == 201
    assert server.root("DELETE", f"/users/{soft['id']}").status_code == 204
    assert server.root("DELETE", f"/users/{hard['id']}", params={"hard_delete": "true"}).status_code == 204

    events = _events(server, f"/projects/{host['id']}/events")
    by_target = {e["target_id"]: e for e in events if e["target_type"] == "Issue"}
    assert by_target[soft_issue["id"]]["author_username"] == "ghost"
    assert hard_issue["id"] not in by_target
    # (Notes and issues number apart: only a note's event could name the comment.)
    assert comment.json()["id"] not in {e["target_id"] for e in events if e["target_type"] != "Issue"}
    assert hard["id"] not in {e["author_id"] for e in events}
    ghost_joins = [e for e in events if e["action_name"] == "joined" and e["author_username"] == "ghost"]
    assert len(ghost_joins) == 1

    # An issue deleted takes its events and its notes' events along.
    issue = _issue(server, host["id"], server.root_token)
    server.root("POST", f"/projects/{host['id']}/issues/{issue['iid']}/notes", json={"body": "bye"})
    assert server.root("DELETE", f"/projects/{host['id']}/issues/{issue['iid']}").status_code == 204
    left = _events(server, f"/projects/{host['id']}/events")
    assert left[0]["id"] == events[0]["id"]
    assert server.root("GET", "/events", params={"target_type": "issue"}).status_code == 200

    # A project deleted takes its events along (seen in its creator's listing).
    creator, creator_token = factory.user_with_token()
    doomed = factory.project(token=creator_token)
    _issue(server, doomed["id"], creator_token)
    assert len(_events(server, f"/users/{creator['id']}/events")) == 2
    assert server.root("DELETE", f"/projects/{doomed['id']}").status_code in (202, 204)
    assert _events(server, f"/users/{creator['id']}/events") == []


# --- contributed projects -------------------------------------------------------------------------------


def test_contributed_projects_are_the_visible_projects_with_contributions(
    server: LiveServer, factory: Factory
) -> None:
    contributor, token = factory.user_with_token()
    public = factory.project(visibility="public")
    private = factory.project(visibility="private")
    joined_only = factory.project(visibility="public")
    for project in (public, private, joined_only):
        factory.member("projects", project["id"], contributor["id"], 30)
    _issue(server, public["id"], token)
    _issue(server, private["id"], token)
    own = factory.project(token=token, visibility="public")  # "created" is no contribution

    path = f"/users/{contributor['id']}/contributed_projects"
    admin_view = [p["id"] for p in _events(server, path, order_by="id", sort="asc")]
    assert admin_view == [public["id"], private["id"]]
    _, stranger_token = factory.user_with_token()
    assert [p["id"] for p in _events(server, path, stranger_token)] == [public["id"]]
    anonymous = server.request("GET", path)
    assert [p["id"] for p in anonymous.json()] == [public["id"]]
    listed = server.gl(stranger_token).users.get(contributor["id"], lazy=True).contributed_projects.list()
    assert [p.id for p in listed] == [public["id"]]
    assert own["id"] not in admin_view
    assert joined_only["id"] not in admin_view
    simple = _events(server, path, stranger_token, simple="true")
    assert "permissions" not in simple[0]


# --- user activities ------------------------------------------------------------------------------------


def test_user_activities_for_admins(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    assert server.request("GET", "/user", token=token).status_code == 200
    assert server.runtime.usage is not None
    server.runtime.usage.flush()
    refused = server.request("GET", "/user/activities", token=token)
    assert (refused.status_code, refused.json()) == (403, {"message": "403 Forbidden"})
    today = server.clock.now().date().isoformat()
    rows = server.gl().user_activities.list(get_all=True, query_parameters={"from": today})
    mine = [r for r in rows if r.username == user["username"]]
    assert [(r.last_activity_on, r.last_activity_at) for r in mine] == [(today, today)]
    tomorrow = (server.clock.now().date() + dt.timedelta(days=1)).isoformat()
    later = _events(server, "/user/activities", per_page=100, **{"from": tomorrow})
    assert user["username"] not in {r["username"] for r in later}
    bad = server.root("GET", "/user/activities", params={"from": "soon"})
    assert (bad.status_code, bad.json()) == (400, {"error": "from is invalid"})
    # Ascending by day: a user active long ago comes before today's.
    days = [r["last_activity_on"] for r in _events(server, "/user/activities", per_page=100)]
    assert days == sorted(days)


# --- the CLI ---------------------------------------------------------------------------------------------


def test_gitlab_cli_lists_events_and_activities(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token()
    project = factory.project(token=token)
    _issue(server, project["id"], token)
    own = server.gitlab_cli("-o", "json", "event", "list", token=token)
    assert own.returncode == 0, own.stderr
    assert [e["action_name"] for e in json.loads(own.stdout)] == ["opened", "created"]
    listed = server.gitlab_cli("-o", "json", "project-event", "list", "--project-id", str(project["id"]))
    assert listed.returncode == 0, listed.stderr
    assert [e["action_name"] for e in json.loads(listed.stdout)] == ["opened", "created"]
    activities = server.gitlab_cli("-o", "json", "user-activities", "list")
    assert activities.returncode == 0, activities.stderr
    assert all("last_activity_on" in row for row in json.loads(activities.stdout))


# --- query counts ---------------------------------------------------------------------------------------


def test_event_listings_cost_the_same_for_5_and_20_rows(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    project = factory.project(token=token, visibility="public")
    for _ in range(12):
        issue = _issue(server, project["id"], token)
        server.request(
            "POST", f"/projects/{project['id']}/issues/{issue['iid']}/notes", token=token, json={"body": "n"}
        )
    for path in (
        f"/users/{user['id']}/events?per_page={{n}}",
        f"/projects/{project['id']}/events?per_page={{n}}",
        "/events?scope=all&per_page={n}",
        f"/users/{user['id']}/contributed_projects?per_page={{n}}",
        "/user/activities?per_page={n}",
    ):
        small = statements_of(server, path.format(n=5))
        large = statements_of(server, path.format(n=20))
        # A page that holds every row needs no count: it may cost less, never more.
        assert large <= small <= 4, (path, small, large)


def test_git_with_a_password_counts_as_activity_once_a_day(
    server: LiveServer, factory: Factory, git: Git
) -> None:
    """Token use is recorded by the usage writer; a git client signed in with a password too."""
    user = factory.user()
    project = factory.project(visibility="private")
    factory.member("projects", project["id"], user["id"], 20)
    assert server.root("GET", f"/users/{user['id']}").json()["last_activity_on"] is None
    _, done = git.clone(
        repo_url(server, project["path_with_namespace"], user["username"], "a-long-password-1")
    )
    assert done.returncode == 0
    today = server.clock.now().date().isoformat()
    assert server.root("GET", f"/users/{user['id']}").json()["last_activity_on"] == today
    # Every page: the shared server has many users active today.
    active = server.gl().user_activities.list(get_all=True, per_page=100, query_parameters={"from": today})
    assert user["username"] in {row.username for row in active}
