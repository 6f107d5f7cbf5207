"""Phones and keyboards: at 390 px every main page fits the screen (no horizontal scrolling), the
top bar's Menu keeps the account and Sign out reachable, the sidebar becomes a menu, a token
table's actions stay on screen; and the confirmation dialogs work from the keyboard with a
visible focus ring.

Headless Chromium at 390x844 against the live server, with realistic data: long names and paths,
several tokens and members, a service account, a webhook with a long URL.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.pages import sign_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PHONE = {"width": 390, "height": 844}

# Runs in the page: the page's width, and the elements that stick out past the right edge (the
# innermost ones, to say what to fix).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const culprits = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= width + 0.5) continue;
    let scrolled = false;
    for (let up = el.parentElement; up; up = up.parentElement) {
      const style = getComputedStyle(up);
      if (['auto', 'scroll', 'hidden', 'clip'].includes(style.overflowX) && up !== document.body) {
        scrolled = true; break;
      }
    }
    if (scrolled || getComputedStyle(el).position === 'fixed') continue;
    if ([...el.children].some((child) => child.getBoundingClientRect().right > width + 0.5)) continue;
    const classes = typeof el.className === 'string' ? el.className.trim().split(/\\s+/) : [];
    const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
      + classes.map((c) => c && '.' + c).join('');
    culprits.push(`${name} right=${Math.round(box.right)} "${(el.textContent || '').trim().slice(0, 40)}"`);
  }
  return { scrollWidth: document.documentElement.scrollWidth, culprits: culprits.slice(0, 8) };
}"""

LONG = "platform-engineering-and-developer-experience"


@pytest.fixture
def phone(browser: Browser, server: LiveServer) -> Any:
    context = browser.new_context(base_url=server.url, viewport=PHONE, has_touch=True)
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def forge(server: LiveServer, factory: Factory, gl: Any) -> dict[str, Any]:
    """A forge with long names everywhere a phone would have to wrap them."""
    group = factory.group(name=f"{LONG} {uid('g')}", path=f"{LONG}-{uid('g')}")
    sub = factory.group(
        name=f"Release management {uid('s')}", path=f"release-{uid('s')}", parent_id=group["id"]
    )
    project = factory.project(
        name=f"Deployment-orchestrator-for-production-clusters {uid('p')}",
        namespace_id=sub["id"],
        initialize_with_readme=True,
    )
    people = [
        factory.user(
            username=f"{name}-with-a-remarkably-long-username-{uid()}",
            name=f"{name.title()} Montgomery-Fitzgerald-Delacroix",
        )
        for name in ("alice", "bob")
    ]
    for person in people:
        factory.member("projects", project["id"], person["id"], 30)
        factory.member("groups", group["id"], person["id"], 40)
    for name, level in (
        ("continuous-deployment-pipeline-token-for-production", 40),
        ("metrics", 20),
        ("ci", 30),
    ):
        response = server.root(
            "POST",
            f"/projects/{project['id']}/access_tokens",
            json={
                "name": name,
                "scopes": ["api", "read_repository", "write_repository"],
                "access_level": level,
            },
        )
        assert response.status_code == 201, response.text
    for name in ("release-bot-with-an-unnecessarily-long-token-name", "audit"):
        response = server.root(
            "POST", f"/groups/{group['id']}/access_tokens", json={"name": name, "scopes": ["read_api"]}
        )
        assert response.status_code == 201, response.text
    for where in (f"/projects/{project['id']}", f"/groups/{group['id']}"):
        response = server.root(
            "POST",
            f"{where}/deploy_tokens",
            json={
                "name": "kubernetes-image-pull-secret-for-the-staging-cluster",
                "scopes": ["read_repository"],
            },
        )
        assert response.status_code == 201, response.text
    for name in ("laptop-cli-access-for-terraform-and-glab-automation", "backup"):
        factory.token(1, ["api", "read_user"], name=name)
    account = gl.service_accounts.create({"name": "Nightly backup agent with a long display name"})
    factory.member("projects", project["id"], account.id, 20)
    response = server.root(
        "POST",
        f"/users/{account.id}/personal_access_tokens",
        json={"name": "nightly-backup-of-every-repository-to-object-storage", "scopes": ["read_repository"]},
    )
    assert response.status_code == 201, response.text
    response = server.root(
        "POST",
        f"/projects/{project['id']}/hooks",
        json={"url": "https://hooks.example.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"},
    )
    assert response.status_code == 201, response.text
    hook = response.json()["id"]
    return {
        "group": group,
        "sub": sub,
        "project": project,
        "people": people,
        "account": account.id,
        "hook": hook,
    }


def main_pages(forge: dict[str, Any]) -> list[str]:
    project = forge["project"]["path_with_namespace"]
    group = forge["group"]["full_path"]
    person = forge["people"][0]["username"]
    return [
        "/",
        f"/groups/{group}",
        f"/{project}",
        f"/{project}/-/project_members",
        f"/groups/{group}/-/group_members",
        "/-/user_settings/personal_access_tokens",
        f"/{project}/-/settings/access_tokens",
        f"/groups/{group}/-/settings/access_tokens",
        f"/{project}/-/settings/deploy_tokens",
        f"/groups/{group}/-/settings/deploy_tokens",
        f"/admin/service_accounts/{forge['account']}",
        "/admin/service_accounts",
        "/admin/users",
        f"/admin/users/{person}",
        f"/admin/users/{person}/edit",
        "/admin/users/new",
        "/admin/seats",
        "/admin/audit_events",
        "/admin/application_settings",
        "/admin/outbox",
        "/admin/background_jobs",
        "/admin/background_jobs/delete-inactive-bots",
        "/admin/token_hygiene",
        "/admin/credentials",
        "/admin/hooks",
        f"/{project}/-/hooks",
        f"/{project}/-/hooks/{forge['hook']}",
        f"/groups/{group}/-/hooks",
        f"/groups/{group}/-/settings/compliance_frameworks",
        "/-/user_settings/profile",
        "/-/profile/notifications",
        "/groups/new",
        "/projects/new",
        f"/groups/{group}/-/edit",
        f"/{project}/-/edit",
    ]


def overflow(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(OVERFLOW)
    return result


def test_every_main_page_fits_a_phone(server: LiveServer, phone: Page, forge: dict[str, Any]) -> None:
    wrong: dict[str, Any] = {}
    for path in ("/users/sign_in", "/users/password/new"):
        phone.goto(path)
        if (found := overflow(phone))["scrollWidth"] > PHONE["width"]:
            wrong[path] = found
    sign_in(phone, "root", ROOT_PASSWORD)
    for path in main_pages(forge):
        response = phone.goto(path)
        assert response is not None
        if response.status != 200:
            wrong[path] = response.status
        elif (found := overflow(phone))["scrollWidth"] > PHONE["width"]:
            wrong[path] = found
        elif problems := phone.evaluate(AUDIT):  # and the menus keep the page accessible
            wrong[path] = problems
    assert wrong == {}


def test_without_script_the_pages_still_fit(
    browser: Browser, server: LiveServer, forge: dict[str, Any]
) -> None:
    """No script: no Menu buttons, the links wrap onto lines, and tables scroll inside their frame."""
    context = browser.new_context(base_url=server.url, viewport=PHONE, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, "root", ROOT_PASSWORD)
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        expect(page.get_by_role("button", name="Menu")).to_be_hidden()
        project = forge["project"]["path_with_namespace"]
        for path in (
            "/",
            f"/{project}/-/settings/access_tokens",
            f"/{project}/-/project_members",
            "/admin/users",
        ):
            page.goto(path)
            assert overflow(page)["scrollWidth"] <= PHONE["width"], (path, overflow(page))
        expect(
            page.get_by_role("link", name="Service accounts", exact=True)
        ).to_be_visible()  # the sidebar, open
    finally:
        context.close()


def test_the_menu_keeps_the_account_and_sign_out_reachable(
    server: LiveServer, phone: Page, forge: dict[str, Any]
) -> None:
    sign_in(phone, "root", ROOT_PASSWORD)
    menu = phone.get_by_role("button", name="Menu", exact=True)
    sign_out = phone.get_by_role("button", name="Sign out")
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(sign_out).to_be_hidden()
    expect(phone.get_by_role("link", name="Admin area")).to_be_hidden()
    # From the keyboard: Enter opens, Escape closes and the focus is back on the button.
    menu.focus()
    phone.keyboard.press("Enter")
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(phone.get_by_text("Administrator @root")).to_be_visible()
    expect(phone.get_by_role("link", name="Profile")).to_be_visible()
    phone.keyboard.press("Escape")
    expect(sign_out).to_be_hidden()
    expect(menu).to_be_focused()
    # The panel's links work.
    menu.click()
    phone.get_by_role("link", name="Admin area").click()
    expect(phone).to_have_url(f"{server.url}/admin/users")
    expect(phone.get_by_role("heading", level=1)).to_have_text("Users")
    # Sign out from the menu.
    menu.click()
    box = sign_out.bounding_box()
    assert box is not None
    assert 0 <= box["x"] <= PHONE["width"] - box["width"], box
    sign_out.click()
    expect(phone.get_by_role("status")).to_have_text("You have signed out.")
    phone.goto("/")
    expect(phone).to_have_url(f"{server.url}/users/sign_in")


def test_the_sidebar_is_a_menu_naming_the_current_page(
    server: LiveServer, phone: Page, forge: dict[str, Any]
) -> None:
    sign_in(phone, "root", ROOT_PASSWORD)
    project = forge["project"]["path_with_namespace"]
    phone.goto(f"/{project}/-/settings/access_tokens")
    sidebar = phone.get_by_role("navigation", name="Project")
    toggle = sidebar.get_by_role("button", name="Project menu, current page: Access tokens")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle.locator("[data-menu-current]")).to_have_text("Access tokens")
    members = sidebar.get_by_role("link", name="Members")
    expect(members).to_be_hidden()
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(sidebar.get_by_role("link", name="Deploy tokens")).to_be_visible()
    members.click()
    expect(phone).to_have_url(f"{server.url}/{project}/-/project_members")
    expect(phone.get_by_role("navigation", name="Project").locator("[data-menu-current]")).to_have_text(
        "Members"
    )
    # The admin area's sidebar likewise.
    phone.goto("/admin/users")
    admin = phone.get_by_role("navigation", name="Admin area")
    admin.get_by_role("button", name="Admin area menu, current page: Users").click()
    admin.get_by_role("link", name="Token hygiene").click()
    expect(phone).to_have_url(f"{server.url}/admin/token_hygiene")
    expect(phone.get_by_role("navigation", name="Admin area").locator("[data-menu-current]")).to_have_text(
        "Token hygiene"
    )


def test_token_rows_keep_their_actions_on_screen(
    server: LiveServer, phone: Page, forge: dict[str, Any]
) -> None:
    sign_in(phone, "root", ROOT_PASSWORD)
    project = forge["project"]["path_with_namespace"]
    for path, name in (
        (f"/{project}/-/settings/access_tokens", "continuous-deployment-pipeline-token-for-production"),
        (
            f"/groups/{forge['group']['full_path']}/-/settings/access_tokens",
            "release-bot-with-an-unnecessarily",
        ),
        ("/-/user_settings/personal_access_tokens", "laptop-cli-access-for-terraform"),
    ):
        phone.goto(path)
        row = phone.locator("tbody tr", has_text=name).first
        expect(row).to_be_visible()
        for action in ("Rotate", "Revoke"):
            button = row.get_by_role("button", name=action, exact=True)
            expect(button).to_be_visible()
            box = button.bounding_box()
            assert box is not None, (path, action)
            assert 0 <= box["x"] <= PHONE["width"] - box["width"], (path, action, box)
        # The row is a card: its cells are labelled with their column's header.
        expect(row.locator('td[data-label="Name"]')).to_contain_text(name)


# The focused element's outline, as the browser draws it.
FOCUS_RING = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  return { tag: el.tagName, text: el.textContent.trim(), style: style.outlineStyle,
           width: parseFloat(style.outlineWidth), inDialog: !!el.closest('dialog[open]') };
}"""


def test_rotate_from_the_keyboard_with_a_visible_focus(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    project = factory.project()
    token = server.root(
        "POST", f"/projects/{project['id']}/access_tokens", json={"name": "keyboard-only", "scopes": ["api"]}
    ).json()
    sign_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/settings/access_tokens")
    rotate = page.locator("tbody tr", has_text="keyboard-only").get_by_role(
        "button", name="Rotate", exact=True
    )
    for _ in range(200):  # Tab through the page until the row's Rotate button has the focus
        page.keyboard.press("Tab")
        if rotate.evaluate("(el) => el === document.activeElement"):
            break
    expect(rotate).to_be_focused()
    ring = page.evaluate(FOCUS_RING)
    assert ring["style"] != "none", ring
    assert ring["width"] >= 2, ring
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("keyboard-only")
    focused = page.evaluate(FOCUS_RING)
    assert focused["inDialog"], focused
    page.keyboard.press("Tab")
    ring = page.evaluate(FOCUS_RING)
    assert ring["inDialog"], ring
    assert ring["style"] != "none", ring
    assert ring["width"] >= 2, ring
    page.keyboard.press("Escape")  # closes without acting
    expect(dialog).to_be_hidden()
    expect(rotate).to_be_focused()
    assert server.request("GET", "/user", token=token["token"]).status_code == 200
