"""Admin > Audit events: search by actor and target, rows that link to what they concern, the CSV
export of the filtered view, and pagination that keeps the filters.

Browser tests drive Debian's headless Chromium as root against the live server; what the page
shows is checked against the API's audit events.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.pages import signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid


def _rows(page: Page) -> Any:
    return page.locator("table.audit-table tbody tr")


def _filter(page: Page, **values: str) -> None:
    page.goto("/admin/audit_events")
    for label, value in values.items():
        page.get_by_label(label.capitalize(), exact=True).fill(value)
    page.get_by_role("button", name="Filter").click()


def _block_unblock(server: LiveServer, user_id: int, times: int) -> None:
    for _ in range(times):
        assert server.root("POST", f"/users/{user_id}/block").status_code == 201
        assert server.root("POST", f"/users/{user_id}/unblock").status_code == 201


def test_search_by_actor_name_and_by_target_path_and_follow_the_links(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    marker = uid("zed")
    actor, token = factory.user_with_token(name=f"Zed {marker} Actor")
    group = factory.group(name=f"grp-{marker}", path=f"grp-{marker}")
    factory.member("groups", group["id"], actor["id"], 50)
    project = factory.project(token=token, namespace_id=group["id"], name=f"proj-{marker}")
    created = server.request(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        token=token,
        json={"name": "ci", "scopes": ["api"]},
    )
    assert created.status_code == 201, created.text
    access_token = created.json()
    signed_in(page, "root", ROOT_PASSWORD)

    # Actor: part of the person's name (not their username) finds their events, and only theirs.
    _filter(page, actor=f"{marker} actor")
    rows = _rows(page)
    expect(rows.first).to_be_visible()
    api = server.root(
        "GET", "/audit_events", params={"entity_type": "Project", "entity_id": project["id"], "per_page": 100}
    ).json()
    assert {e["id"] for e in api if e["author_id"] == actor["id"]} <= {
        int(r.get_attribute("data-event") or 0) for r in rows.all()
    }
    for row in rows.all():
        expect(row.locator(".audit-actor")).to_have_text(f"@{actor['username']}")
    expect(page.get_by_label("Actor", exact=True)).to_have_value(f"{marker} actor")

    # The token row names the token and its kind, and leads to the project's access tokens.
    token_row = rows.filter(has_text=f"Project access token 'ci' (#{access_token['id']})")
    expect(token_row).to_have_count(1)
    token_row.get_by_role("link", name=f"Project access token 'ci' (#{access_token['id']})").click()
    expect(page).to_have_url(
        re.compile(rf"/{re.escape(project['path_with_namespace'])}/-/settings/access_tokens$")
    )

    # Target: part of the project's path finds the events about it; its link opens the project.
    _filter(page, target=f"proj-{marker}".upper())
    rows = _rows(page)
    expect(rows.first).to_be_visible()
    for row in rows.all():
        expect(row.locator(".audit-target")).to_contain_text(f"proj-{marker}", ignore_case=True)
    rows.locator(".audit-target").get_by_role("link", name=project["path_with_namespace"]).first.click()
    expect(page).to_have_url(re.compile(rf"/{re.escape(project['path_with_namespace'])}$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(project["name"])

    # A group target leads to the group page, a user target to the admin user page.
    _filter(page, target=f"grp-{marker}")
    _rows(page).locator(".audit-target").get_by_role(
        "link", name=group["full_path"], exact=True
    ).first.click()
    expect(page).to_have_url(re.compile(rf"/groups/{re.escape(group['full_path'])}$"))
    _filter(page, target=actor["username"])
    _rows(page).locator(".audit-target").get_by_role("link", name=f"@{actor['username']}").first.click()
    expect(page).to_have_url(re.compile(rf"/admin/users/{actor['username']}$"))

    # Nothing matches a name nobody has.
    _filter(page, actor=f"nobody-{marker}")
    expect(page.get_by_text("No events match these filters.")).to_be_visible()


def test_next_page_keeps_the_filters(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    _block_unblock(server, user["id"], 27)  # with its creation, 55 events: more than a page (50)
    signed_in(page, "root", ROOT_PASSWORD)
    _filter(page, target=user["username"])
    page.get_by_label("Action").select_option("user.blocked")
    page.get_by_role("button", name="Filter").click()
    expect(_rows(page)).to_have_count(27)
    # Without the action filter, two pages.
    page.get_by_label("Action").select_option("")
    page.get_by_role("button", name="Filter").click()
    expect(_rows(page)).to_have_count(50)
    page.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(r"[?&]target=" + re.escape(user["username"])))
    expect(page).to_have_url(re.compile(r"[?&]page=2"))
    expect(_rows(page)).to_have_count(5)
    expect(page.get_by_label("Target", exact=True)).to_have_value(user["username"])
    for row in _rows(page).all():
        expect(row).to_contain_text(user["username"])
    page.get_by_role("link", name="Previous page").click()
    expect(_rows(page)).to_have_count(50)
    expect(page.get_by_label("Target", exact=True)).to_have_value(user["username"])


def test_the_csv_export_has_every_filtered_row_and_escapes_formulas(
    server: LiveServer, page: Page, factory: Factory, tmp_path: Path
) -> None:
    user = factory.user()
    _block_unblock(server, user["id"], 26)  # with its creation, 53 events: more than a page
    injected = f"=cmd|' /C calc'!A0 {uid('x')}"
    response = server.root(
        "POST", f"/users/{user['id']}/personal_access_tokens", json={"name": injected, "scopes": ["read_api"]}
    )
    assert response.status_code == 201, response.text
    token_id = response.json()["id"]
    signed_in(page, "root", ROOT_PASSWORD)

    _filter(page, target=user["username"])
    expect(_rows(page)).to_have_count(50)
    with page.expect_download() as info:
        page.get_by_role("link", name=re.compile("^Download CSV")).click()
    download = info.value
    assert download.suggested_filename.startswith("audit-events-")
    assert download.suggested_filename.endswith(".csv")
    target = tmp_path / "audit.csv"
    download.save_as(target)
    with target.open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["time", "actor", "action", "target type", "target", "details", "ip"]
    body = table[1:]
    assert len(body) == 53
    actions = [row[2] for row in body]
    assert actions.count("user.blocked") == actions.count("user.unblocked") == 26
    assert all(row[4] == user["username"] and row[3] == "User" and row[1] == "root" for row in body)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", row[0]) for row in body)
    # Newest first, as the page.
    assert [row[0] for row in body] == sorted((row[0] for row in body), reverse=True)

    # A token named like a formula: found by its name, written with a quote in front.
    _filter(page, target=injected[:12])
    row = _rows(page).filter(has_text=f"Personal access token '{injected}' (#{token_id})")
    expect(row).to_have_count(1)
    with page.expect_download() as info:
        page.get_by_role("link", name=re.compile("^Download CSV")).click()
    info.value.save_as(target)
    with target.open(newline="", encoding="utf-8") as handle:
        table = list(csv.reader(handle))
    assert len(table) == 2, table
    assert table[1][3] == "Personal access token"
    assert table[1][4] == "'" + injected
    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in table[1])
