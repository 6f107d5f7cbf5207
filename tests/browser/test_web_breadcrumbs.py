"""Breadcrumbs in one style on every page that has them: a navigation landmark named
"Breadcrumb" with an ordered list, each ancestor group a link, the page itself last and current;
and the crumbs lead where they say."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.pages import signed_in
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer

# Runs in the page: the breadcrumbs as [label, href or null, current?] and every old-style trail.
CRUMBS = """() => {
  const navs = document.querySelectorAll('nav.breadcrumbs');
  const stray = [...document.querySelectorAll('.breadcrumbs')].filter((el) => el.tagName !== 'NAV').length;
  if (navs.length !== 1) return {count: navs.length, stray};
  const nav = navs[0];
  return {
    count: 1,
    stray,
    label: nav.getAttribute('aria-label'),
    items: [...nav.querySelectorAll(':scope > ol > li')].map((li) => [
      li.textContent.trim(),
      li.querySelector('a') ? li.querySelector('a').getAttribute('href') : null,
      li.getAttribute('aria-current') === 'page',
    ]),
  };
}"""


def _crumbs(page: Page, url: str) -> list[list[Any]]:
    page.goto(url)
    found = page.evaluate(CRUMBS)
    assert (found["count"], found["stray"]) == (1, 0), (url, found)
    assert found["label"] == "Breadcrumb"
    items: list[list[Any]] = found["items"]
    assert items[-1][1:] == [None, True], (url, items)  # the page itself, current
    assert not any(current for _, _, current in items[:-1])
    return items


def test_every_page_shows_its_place_in_one_style(server: LiveServer, page: Page, factory: Factory) -> None:
    top = factory.group()
    sub = factory.group(parent_id=top["id"], name="tools", path="tools")
    project = factory.project(namespace_id=sub["id"], name="deployer", path="deployer")
    user = factory.user()
    hook = server.root("POST", "/hooks", json={"url": "http://example.com/hook"}).json()
    signed_in(page, "root", ROOT_PASSWORD)

    t, p = top["full_path"], project["path_with_namespace"]
    ancestry = [[t, f"/groups/{t}", False], ["tools", f"/groups/{t}/tools", False]]
    assert _crumbs(page, f"/{p}") == [*ancestry, ["deployer", None, True]]
    assert _crumbs(page, f"/groups/{t}/tools") == [[t, f"/groups/{t}", False], ["tools", None, True]]
    in_project = [*ancestry, ["deployer", f"/{p}", False]]
    assert _crumbs(page, f"/{p}/-/project_members") == [*in_project, ["Members", None, True]]
    assert _crumbs(page, f"/{p}/-/settings/access_tokens") == [
        *in_project,
        ["Settings", None, False],
        ["Access tokens", None, True],
    ]
    assert _crumbs(page, f"/{p}/-/settings/deploy_tokens")[-1] == ["Deploy tokens", None, True]
    assert _crumbs(page, f"/{p}/-/edit")[-2:] == [["Settings", None, False], ["General", None, True]]
    assert _crumbs(page, f"/{p}/-/hooks")[-1] == ["Webhooks", None, True]
    in_group = [*ancestry[:1], ["tools", f"/groups/{t}/tools", False]]
    assert _crumbs(page, f"/groups/{t}/tools/-/group_members") == [*in_group, ["Members", None, True]]
    assert _crumbs(page, f"/groups/{t}/tools/-/edit")[-1] == ["General", None, True]
    assert _crumbs(page, f"/groups/{t}/tools/-/settings/access_tokens")[-1] == ["Access tokens", None, True]
    assert _crumbs(page, "/-/user_settings/personal_access_tokens") == [
        ["User settings", None, False],
        ["Access tokens", None, True],
    ]
    assert _crumbs(page, "/-/user_settings/profile")[-1] == ["Profile", None, True]
    assert _crumbs(page, "/groups/new") == [["Dashboard", "/", False], ["New group", None, True]]
    assert _crumbs(page, "/projects/new")[-1] == ["New project", None, True]
    assert _crumbs(page, f"/admin/users/{user['username']}") == [
        ["Admin area", "/admin", False],
        ["Users", "/admin/users", False],
        [f"@{user['username']}", None, True],
    ]
    assert _crumbs(page, f"/admin/hooks/{hook['id']}") == [
        ["Admin area", "/admin", False],
        ["System hooks", "/admin/hooks", False],
        ["Edit webhook", None, True],
    ]

    # The crumbs lead where they say: from a project's settings to its subgroup, then the top group.
    page.goto(f"/{p}/-/settings/access_tokens")
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name="tools").click()
    expect(page).to_have_url(f"{server.url}/groups/{t}/tools")
    expect(page.get_by_role("heading", level=1)).to_have_text("tools")
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=t).click()
    expect(page).to_have_url(f"{server.url}/groups/{t}")


def test_a_personal_project_leads_back_to_its_owner(server: LiveServer, page: Page, factory: Factory) -> None:
    user = factory.user()
    token = server.root(
        "POST", f"/users/{user['id']}/personal_access_tokens", json={"name": "t", "scopes": ["api"]}
    ).json()["token"]
    project = factory.project(token=token, name="mine", path="mine")
    signed_in(page, user["username"], "a-long-password-1")
    items = _crumbs(page, f"/{project['path_with_namespace']}/-/project_members")
    assert items == [
        [user["username"], f"/users/{user['username']}/activity", False],
        ["mine", f"/{project['path_with_namespace']}", False],
        ["Members", None, True],
    ]
    page.get_by_role("navigation", name="Breadcrumb").get_by_role("link", name=user["username"]).click()
    expect(page).to_have_url(f"{server.url}/users/{user['username']}/activity")
