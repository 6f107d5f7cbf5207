"""The one token table of every token page, in Chromium: last used as relative time with the
client IPs (after real API use), expiry in days with its badges, search, filters, sort and pages
that keep each other (plain GET links), the same table on the project, group, deploy and
service-account pages, and the Admin area's Credentials page (filtered in SQL, revoking for real).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import requests
from playwright.sync_api import Locator, Page, expect

from tests.browser.pages import session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
URL = "/-/user_settings/personal_access_tokens"


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _in(days: int) -> str:
    return (_today() + dt.timedelta(days=days)).isoformat()


def _active(page: Page, label: str = "Active personal access tokens") -> Locator:
    return page.get_by_role("table", name=label, exact=True)


def _body_rows(table: Locator) -> Locator:
    return table.locator("tbody tr")


def _names(table: Locator) -> list[str]:
    return [cell.inner_text().split("\n")[0] for cell in table.locator("tbody tr td:first-child").all()]


def _ok(response: requests.Response, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def test_last_used_shows_relative_time_and_the_ips(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    used = uid("used-")
    value = factory.token(user["id"], ["read_api"], name=used)
    idle = uid("idle-")
    factory.token(user["id"], ["read_api"], name=idle)
    assert server.request("GET", "/user", token=value).status_code == 200  # from 127.0.0.1

    signed_in(page, user["username"], PASSWORD)
    page.goto(URL)
    row = _body_rows(_active(page)).filter(has_text=used)
    deadline = time.monotonic() + 20
    while "127.0.0.1" not in (row.text_content() or "") and time.monotonic() < deadline:
        time.sleep(0.5)
        page.reload()
    last_used = row.locator('td[data-label="Last used"]')
    expect(last_used).to_contain_text(re.compile(r"just now|1 minute ago"))
    stamp = last_used.locator("time")
    expect(stamp).to_have_attribute("datetime", re.compile("^" + _today().isoformat()))
    # The exact time and the IPs on hover...
    expect(stamp).to_have_attribute("title", re.compile(r"UTC, from 127\.0\.0\.1$"))
    # ...and in a disclosure that works by keyboard and touch.
    summary = last_used.get_by_text("1 IP address")
    ips = last_used.get_by_role("list", name=f"IP addresses of {used}")
    expect(ips).to_be_hidden()
    summary.focus()
    page.keyboard.press("Enter")
    expect(ips).to_be_visible()
    expect(ips).to_have_text("127.0.0.1")
    # A token never used says so.
    expect(
        _body_rows(_active(page)).filter(has_text=idle).locator('td[data-label="Last used"]')
    ).to_have_text("Never")


def test_expiry_shows_days_and_badges(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    soon, later = uid("soon-"), uid("later-")
    factory.token(user["id"], ["read_api"], name=soon, expires_at=_in(3))
    factory.token(user["id"], ["read_api"], name=later, expires_at=_in(40))

    signed_in(page, user["username"], PASSWORD)
    page.goto(URL)
    soon_row = _body_rows(_active(page)).filter(has_text=soon)
    expires = soon_row.locator('td[data-label="Expires"]')
    expect(expires).to_contain_text("in 3 days")
    expect(expires.locator(".badge")).to_have_text("Expires soon")
    expect(expires.locator("time")).to_have_attribute("datetime", _in(3))
    later_row = _body_rows(_active(page)).filter(has_text=later)
    expect(later_row.locator('td[data-label="Expires"]')).to_contain_text("in 40 days")
    expect(later_row.locator('td[data-label="Expires"] .badge')).to_have_count(0)
    expect(later_row.locator('td[data-label="Status"]')).to_have_text("Active")

    # Four days later the first one has expired: the inactive table says so.
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(days=4))
    page.reload()
    expect(_body_rows(_active(page)).filter(has_text=soon)).to_have_count(0)
    gone = _body_rows(_active(page, "Inactive personal access tokens")).filter(has_text=soon)
    expect(gone.locator('td[data-label="Expires"]')).to_contain_text("1 day ago")
    expect(gone.locator('td[data-label="Expires"] .badge')).to_have_text("Expired")
    expect(gone.locator('td[data-label="Status"]')).to_contain_text("Expired")
    expect(_body_rows(_active(page)).filter(has_text=later)).to_contain_text("in 36 days")


def test_search_filter_sort_and_pages_keep_each_other(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user = factory.user()
    prefix = uid("ci")
    for n in range(21):
        factory.token(user["id"], ["read_api"], name=f"{prefix}-{n:02d}", expires_at=_in(40 + n))
    deploy = [f"deploy-{prefix}-a", f"deploy-{prefix}-b"]
    factory.token(user["id"], ["read_repository"], name=deploy[0], expires_at=_in(5))
    factory.token(user["id"], ["read_repository"], name=deploy[1], expires_at=_in(20))

    signed_in(page, user["username"], PASSWORD)
    page.goto(URL)
    table = _active(page)
    # 23 active tokens: 20 on the first page, newest first.
    expect(_body_rows(table)).to_have_count(20)
    expect(page.get_by_role("heading", name="Active personal access tokens (23)")).to_be_visible()
    assert _names(table)[0] == deploy[1]
    pager = page.get_by_role("navigation", name="Active personal access tokens pages")
    expect(pager).to_contain_text("Showing 1\N{EN DASH}20 of 23 · page 1 of 2")
    pager.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(r"\?page=2$"))
    expect(_body_rows(_active(page))).to_have_count(3)
    assert _names(_active(page)) == [f"{prefix}-02", f"{prefix}-01", f"{prefix}-00"]

    # Search by name (a plain GET form): the sort and pages then keep it.
    page.get_by_label("Name contains").fill(prefix)
    page.get_by_label("Sort by").select_option("name")
    page.get_by_label("Order").select_option("asc")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"search=" + prefix + r".*sort=name&direction=asc"))
    expect(page.get_by_role("heading", name="Active personal access tokens (23)")).to_be_visible()
    assert _names(_active(page))[:2] == [f"{prefix}-00", f"{prefix}-01"]
    page.get_by_role("navigation", name="Active personal access tokens pages").get_by_role(
        "link", name="Next page"
    ).click()
    expect(page).to_have_url(re.compile(r"search=" + prefix + r"&sort=name&direction=asc&page=2"))
    assert _names(_active(page)) == [f"{prefix}-20", *deploy]  # "deploy-ci..." contain the prefix too
    expect(page.get_by_label("Name contains")).to_have_value(prefix)

    # A column header sorts too (the other way when sorted by it already), keeping the search.
    page.get_by_role("columnheader", name="Name", exact=True).first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"search=" + prefix + r"&sort=name(&|$)"))
    assert _names(_active(page))[0] == deploy[1]
    expect(page.get_by_role("columnheader", name="Name", exact=True).first).to_have_attribute(
        "aria-sort", "descending"
    )

    # Filters: a scope, expiring within 7 days; sorted by expiry.
    page.goto(f"{URL}?scope=read_repository")
    assert sorted(_names(_active(page))) == deploy
    expect(page.get_by_label("Scope")).to_have_value("read_repository")
    page.goto(f"{URL}?expiring=7")
    assert _names(_active(page)) == [deploy[0]]
    page.goto(f"{URL}?sort=expires&direction=asc")
    assert _names(_active(page))[:2] == deploy
    # State: only the inactive tokens, or only the active ones.
    page.goto(f"{URL}?state=inactive")
    expect(_active(page)).to_have_count(0)
    expect(_active(page, "Inactive personal access tokens")).to_be_visible()
    page.goto(f"{URL}?state=active")
    expect(_active(page, "Inactive personal access tokens")).to_have_count(0)

    # An empty result says what was filtered, and offers to clear it.
    page.goto(f"{URL}?search=nothing-like-this&scope=read_api")
    expect(_active(page)).to_contain_text(
        "No active personal access tokens named like “nothing-like-this”, with the scope read_api."
    )
    page.get_by_role("link", name="Clear filters").click()
    expect(page).to_have_url(re.compile(re.escape(URL) + "$"))
    expect(_body_rows(_active(page))).to_have_count(20)


def test_the_same_table_on_project_group_deploy_and_service_account_pages(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    project_token = uid("proj-tok-")
    _ok(
        server.root(
            "POST",
            f"/projects/{project['id']}/access_tokens",
            json={"name": project_token, "scopes": ["read_api"], "access_level": 30, "expires_at": _in(3)},
        )
    )
    group_token = uid("group-tok-")
    _ok(
        server.root(
            "POST",
            f"/groups/{group['id']}/access_tokens",
            json={"name": group_token, "scopes": ["read_api"], "expires_at": _in(30)},
        )
    )
    deploy_token = uid("deploy-tok-")
    _ok(
        server.root(
            "POST",
            f"/projects/{project['id']}/deploy_tokens",
            json={"name": deploy_token, "scopes": ["read_repository"], "expires_at": _in(2)},
        )
    )
    account = _ok(server.root("POST", "/service_accounts", json={"username": uid("robot")}))
    sa_token = uid("sa-tok-")
    _ok(
        server.root(
            "POST",
            f"/users/{account['id']}/personal_access_tokens",
            json={"name": sa_token, "scopes": ["api"], "expires_at": _in(6)},
        )
    )

    signed_in(page, "root", ROOT_PASSWORD)
    pages = [
        (
            f"/{project['path_with_namespace']}/-/settings/access_tokens",
            "Active project access tokens",
            project_token,
        ),
        (f"/groups/{group['full_path']}/-/settings/access_tokens", "Active group access tokens", group_token),
        (f"/{project['path_with_namespace']}/-/settings/deploy_tokens", "Active deploy tokens", deploy_token),
        (f"/admin/service_accounts/{account['id']}", "Active tokens", sa_token),
    ]
    for path, label, name in pages:
        page.goto(path)
        row = _body_rows(_active(page, label)).filter(has_text=name)
        expect(row).to_have_count(1)
        expires = row.locator('td[data-label="Expires"]')
        if name == group_token:
            expect(expires).to_contain_text("in 30 days")
            expect(expires.locator(".badge")).to_have_count(0)
        else:
            expect(expires.locator(".badge")).to_have_text("Expires soon")
        expect(row.locator('td[data-label="Last used"]')).to_have_text("Never")
        expect(row.get_by_role("button", name="Revoke")).to_be_visible()
        # The same filters: a search that matches nothing says so; the row comes back without it.
        page.get_by_label("Name contains").fill("no-such-token")
        page.get_by_role("button", name="Apply").click()
        expect(page).to_have_url(re.compile(r"\?search=no-such-token&"))
        expect(_active(page, label)).to_contain_text(
            f"No {label[0].lower()}{label[1:]} named like “no-such-token”."
        )
        page.get_by_role("link", name="Clear filters").click()
        expect(_body_rows(_active(page, label)).filter(has_text=name)).to_have_count(1)
    # Roles where tokens have one.
    page.goto(pages[0][0])
    expect(_body_rows(_active(page, pages[0][1])).filter(has_text=project_token)).to_contain_text("Developer")
    # The deploy table shows the username.
    page.goto(pages[2][0])
    expect(_body_rows(_active(page, pages[2][1])).filter(has_text=deploy_token)).to_contain_text(
        "gitlab+deploy-token-"
    )


def test_admin_credentials_lists_filters_and_revokes(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user = factory.user()
    personal_name = uid("personal-")
    value = factory.token(user["id"], ["read_api"], name=personal_name)
    project = factory.project()
    bot_name = uid("bot-")
    bot = _ok(
        server.root(
            "POST",
            f"/projects/{project['id']}/access_tokens",
            json={"name": bot_name, "scopes": ["read_api"]},
        )
    )
    assert server.request("GET", "/user", token=value).status_code == 200

    signed_in(page, "root", ROOT_PASSWORD)
    page.goto("/admin")
    page.get_by_role("navigation", name="Admin area").get_by_role("link", name="Credentials").click()
    expect(page).to_have_url(re.compile(r"/admin/credentials$"))
    expect(page.get_by_role("heading", name="Credentials", level=1)).to_be_visible()

    # By owner: the user's token, with its owner, and nobody else's.
    page.get_by_label("Owner, project or group").fill(user["username"])
    page.get_by_role("button", name="Apply").click()
    table = page.get_by_role("table", name="Access tokens")
    expect(_body_rows(table)).to_have_count(1)
    row = _body_rows(table).first
    expect(row).to_contain_text(personal_name)
    expect(row.locator('td[data-label="Owner"]')).to_contain_text(
        "Personal access token · @" + user["username"]
    )
    deadline = time.monotonic() + 20
    while "127.0.0.1" not in (row.text_content() or "") and time.monotonic() < deadline:  # written later
        time.sleep(0.5)
        page.reload()
    expect(row.locator('td[data-label="Last used"]')).to_contain_text("127.0.0.1")

    # By kind and project: the bot's token, linked to its project's tokens page.
    page.goto(f"/admin/credentials?kind=project_bot&owner={project['path_with_namespace']}")
    expect(page.get_by_label("Kind")).to_have_value("project_bot")
    rows = _body_rows(page.get_by_role("table", name="Access tokens"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(bot_name)
    expect(rows.first.get_by_role("link", name=project["path_with_namespace"])).to_have_attribute(
        "href", f"/{project['path_with_namespace']}/-/settings/access_tokens"
    )
    page.goto(f"/admin/credentials?kind=group_bot&search={bot_name}")
    expect(page.get_by_role("table", name="Access tokens")).to_contain_text(
        f"No access tokens named like “{bot_name}”, of the kind “Group access token”."
    )

    # Revoke from the list: the API refuses the token at once; the list keeps its filters.
    filtered = f"/admin/credentials?owner={user['username']}&state=active"
    page.goto(filtered)
    _body_rows(page.get_by_role("table", name="Access tokens")).filter(has_text=personal_name).get_by_role(
        "button", name="Revoke"
    ).click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke token").click()
    expect(page.get_by_role("status")).to_have_text(f"Revoked the access token “{personal_name}”.")
    expect(page).to_have_url(re.compile(re.escape(filtered) + "$"))
    assert server.request("GET", "/user", token=value).status_code == 401
    expect(page.get_by_role("table", name="Access tokens")).to_contain_text(
        f"No access tokens owned by or for “{user['username']}”."
    )
    page.goto(f"/admin/credentials?owner={user['username']}&state=inactive")
    expect(_body_rows(page.get_by_role("table", name="Access tokens")).first).to_contain_text("Revoked")

    # A bot's token is revoked through its project, as the API does.
    page.goto(f"/admin/credentials?search={bot_name}")
    page.get_by_role("table", name="Access tokens").get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke token").click()
    expect(page.get_by_role("status")).to_have_text(f"Revoked the access token “{bot_name}”.")
    assert server.request("GET", "/user", token=bot["token"]).status_code == 401

    # Nobody but an admin sees the page.
    http = session_for(server, user["username"], PASSWORD)
    assert http.get(f"{server.url}/admin/credentials", timeout=30).status_code == 404


def test_admin_credentials_pages_in_sql(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    prefix = uid("many")
    for n in range(22):
        factory.token(user["id"], ["read_api"], name=f"{prefix}-{n:02d}")
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/admin/credentials?search={prefix}&sort=name&direction=asc")
    table = page.get_by_role("table", name="Access tokens")
    expect(_body_rows(table)).to_have_count(20)
    assert _names(table)[0] == f"{prefix}-00"
    pager = page.get_by_role("navigation", name="Access tokens pages")
    expect(pager).to_contain_text("Showing 1\N{EN DASH}20 of 22 · page 1 of 2")
    pager.get_by_role("link", name="Next page").click()
    expect(page).to_have_url(re.compile(rf"search={prefix}&sort=name&direction=asc&page=2$"))
    assert _names(page.get_by_role("table", name="Access tokens")) == [f"{prefix}-20", f"{prefix}-21"]


def test_token_pages_pass_the_audit_and_fit_a_phone(server: LiveServer, page: Page, factory: Factory) -> None:
    group = factory.group()
    project = factory.project(namespace_id=group["id"])
    bot = _ok(
        server.root(
            "POST",
            f"/projects/{project['id']}/access_tokens",
            json={"name": uid("a-rather-long-token-name-"), "scopes": ["read_api"], "expires_at": _in(3)},
        )
    )
    assert server.request("GET", "/user", token=bot["token"]).status_code == 200
    _ok(
        server.root(
            "POST", f"/groups/{group['id']}/access_tokens", json={"name": "g", "scopes": ["read_api"]}
        )
    )
    _ok(
        server.root(
            "POST",
            f"/projects/{project['id']}/deploy_tokens",
            json={"name": "d", "scopes": ["read_repository"]},
        )
    )
    account = _ok(server.root("POST", "/service_accounts", json={"username": uid("robot")}))
    factory.token(account["id"], ["api"], expires_at=_in(5))
    factory.token(1, ["read_api"], name=uid("root-"))
    signed_in(page, "root", ROOT_PASSWORD)
    paths = [
        URL,
        f"{URL}?search=root&scope=read_api&expiring=30&sort=name&direction=asc",
        f"/{project['path_with_namespace']}/-/settings/access_tokens",
        f"/groups/{group['full_path']}/-/settings/access_tokens",
        f"/{project['path_with_namespace']}/-/settings/deploy_tokens",
        f"/groups/{group['full_path']}/-/settings/deploy_tokens",
        f"/admin/service_accounts/{account['id']}",
        "/admin/credentials",
        "/admin/credentials?kind=project_bot&state=active&sort=last_used",
    ]
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for path in paths:
            page.goto(path)
            assert page.evaluate(AUDIT) == [], path
            if width == 390:
                assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
