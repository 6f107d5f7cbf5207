"""The token create forms, in Chromium, checked against the API: each sits behind an "Add new
token" button (keyboard, Cancel, and ?new=1 without the script); every problem of a form is shown
at once, next to its field, in people's words; the maximum date is accepted; the role picker says
what each role may do; the rotate dialog refuses a past date by its field; and the pages say who
receives the expiry e-mails.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from playwright.sync_api import Browser, Locator, Page, expect

from keycrew.web.templating import date
from tests.browser.pages import signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
PERSONAL = "/-/user_settings/personal_access_tokens"
MAINTAINER, DEVELOPER, OWNER = 40, 30, 50


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _max_lifetime(server: LiveServer) -> int:
    return int(server.root("GET", "/application/settings").json()["max_personal_access_token_lifetime"])


def _add_button(page: Page) -> Locator:
    return page.get_by_role("button", name="Add new token")


def _open_form(page: Page) -> None:
    _add_button(page).click()
    expect(page.get_by_label("Token name").or_(page.get_by_label("Name", exact=True))).to_be_focused()


def _main_text(page: Page) -> str:
    return page.locator("main").inner_text()


def _submit(page: Page, button: str) -> int:
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name=button).click()
    page.wait_for_load_state()
    return posted.value.status


def test_add_new_token_opens_the_form_with_the_keyboard_and_cancel_closes_it(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user = factory.user()
    signed_in(page, user["username"], PASSWORD)
    page.goto(PERSONAL)
    button = _add_button(page)
    name = page.get_by_label("Token name")
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(name).to_be_hidden()
    assert page.evaluate(AUDIT) == []

    # Enter on the focused button opens the form and puts the focus in its first field.
    button.focus()
    page.keyboard.press("Enter")
    expect(name).to_be_visible()
    expect(name).to_be_focused()
    expect(button).to_have_attribute("aria-expanded", "true")
    page.keyboard.type("typed with the keyboard")
    # Cancel closes it and gives the focus back to the button.
    page.get_by_role("button", name="Cancel").click()
    expect(name).to_be_hidden()
    expect(button).to_be_focused()
    expect(button).to_have_attribute("aria-expanded", "false")
    # The space bar opens it too.
    page.keyboard.press(" ")
    expect(name).to_be_focused()
    assert page.url == f"{server.url}{PERSONAL}"  # no navigation: the script showed it
    assert _tokens(server, user["id"]) == []


def test_without_the_script_the_button_leads_to_the_open_form(
    server: LiveServer, browser: Browser, factory: Factory
) -> None:
    user = factory.user()
    project = factory.project()
    factory.member("projects", project["id"], user["id"], MAINTAINER)
    context = browser.new_context(base_url=server.url, java_script_enabled=False)
    try:
        page = signed_in(context.new_page(), user["username"], PASSWORD)
        for url in (PERSONAL, f"/{project['path_with_namespace']}/-/settings/access_tokens"):
            page.goto(url)
            expect(page.get_by_label("Token name")).to_be_hidden()
            _add_button(page).click()
            expect(page).to_have_url(f"{server.url}{url}?new=1")
            expect(page.get_by_label("Token name")).to_be_visible()
            expect(page.get_by_label("Token name")).to_be_focused()  # autofocus
            page.get_by_role("button", name="Cancel").click()
            expect(page).to_have_url(f"{server.url}{url}")
            expect(page.get_by_label("Token name")).to_be_hidden()
    finally:
        context.close()


def _tokens(server: LiveServer, user_id: int) -> list[dict[str, Any]]:
    response = server.root("GET", "/personal_access_tokens", params={"user_id": user_id, "per_page": 100})
    assert response.status_code == 200, response.text
    return list(response.json())


def _field_shows(field: Locator, message: str) -> None:
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile(re.escape(message)))


def test_every_problem_is_shown_at_once_next_to_its_field(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    user = factory.user()
    signed_in(page, user["username"], PASSWORD)
    page.goto(PERSONAL)
    _open_form(page)
    yesterday = _today() - dt.timedelta(days=1)
    page.get_by_label("Expiration date").fill(yesterday.isoformat())
    assert _submit(page, "Create personal access token") == 400

    expected = {
        "name": "Token name can't be blank",
        "expires": "Expiration date can't be in the past",
        "scopes": "Select at least one scope",
    }
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("The token was not created")
    expect(summary.get_by_role("listitem")).to_have_text(list(expected.values()))
    expect(summary).to_be_focused()
    _field_shows(page.get_by_label("Token name"), expected["name"])
    _field_shows(page.get_by_label("Expiration date"), expected["expires"])
    scopes = page.get_by_role("group", name="Scopes")
    expect(scopes).to_have_accessible_description(expected["scopes"])
    expect(scopes).to_contain_text(expected["scopes"])
    # The summary's links lead to the fields.
    summary.get_by_role("link", name=expected["expires"]).click()
    expect(page.get_by_label("Expiration date")).to_be_focused()
    # The typed date is kept; no API word anywhere.
    expect(page.get_by_label("Expiration date")).to_have_value(yesterday.isoformat())
    text = _main_text(page)
    for word in ("expires_at", "Expires at", "Scopes is", "access_level"):
        assert word not in text
    assert page.evaluate(AUDIT) == []

    # Beyond the maximum: said with the real date, which the hint shows as well.
    latest = _today() + dt.timedelta(days=_max_lifetime(server))
    page.get_by_label("Token name").fill(uid("late"))
    page.get_by_label("Expiration date").fill((latest + dt.timedelta(days=1)).isoformat())
    page.get_by_label("api", exact=True).check()
    assert _submit(page, "Create personal access token") == 400
    message = f"Expiration date can't be later than {date(latest)}"
    expect(page.get_by_role("alert").get_by_role("listitem")).to_have_text([message])
    _field_shows(page.get_by_label("Expiration date"), message)
    expect(page.get_by_label("Expiration date")).to_have_accessible_description(
        re.compile(re.escape(f"Maximum: {date(latest)}."))
    )
    expect(page.get_by_label("Token name")).not_to_have_attribute("aria-invalid", "true")
    assert _tokens(server, user["id"]) == []


def test_an_empty_optional_date_is_not_mentioned(server: LiveServer, page: Page, factory: Factory) -> None:
    project = factory.project()
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/settings/deploy_tokens")
    _open_form(page)
    page.get_by_label("read_repository", exact=True).check()
    assert _submit(page, "Create deploy token") == 400
    expect(page.get_by_role("alert").get_by_role("listitem")).to_have_text(["Name can't be blank"])
    _field_shows(page.get_by_label("Name", exact=True), "Name can't be blank")
    expect(page.get_by_label("Expiration date (optional)")).not_to_have_attribute("aria-invalid", "true")
    assert "Expiration" not in page.get_by_role("alert").inner_text()
    expect(page.get_by_label("read_repository", exact=True)).to_be_checked()


def test_the_maximum_date_is_accepted_by_the_form_and_the_api(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    latest = _today() + dt.timedelta(days=_max_lifetime(server))
    owner, token = factory.user_with_token()
    project = factory.project(token=token)
    signed_in(page, owner["username"], PASSWORD)

    # A personal token with the last date the form allows.
    page.goto(PERSONAL)
    _open_form(page)
    expires = page.get_by_label("Expiration date")
    expect(expires).to_have_attribute("max", latest.isoformat())
    name = uid("longest")
    page.get_by_label("Token name").fill(name)
    expires.fill(latest.isoformat())
    page.get_by_label("read_api", exact=True).check()
    assert expires.evaluate("e => e.checkValidity()")  # the browser's own check: max itself is fine
    assert _submit(page, "Create personal access token") == 303
    made = next(t for t in _tokens(server, owner["id"]) if t["name"] == name)
    assert made["expires_at"] == latest.isoformat()

    # A project access token too, through the form...
    page.goto(f"/{project['path_with_namespace']}/-/settings/access_tokens?new=1")
    expect(page.get_by_label("Expiration date")).to_have_attribute("max", latest.isoformat())
    page.get_by_label("Token name").fill("bot-longest")
    page.get_by_label("Expiration date").fill(latest.isoformat())
    page.get_by_label("read_api", exact=True).check()
    assert _submit(page, "Create project access token") == 303
    listed = server.request("GET", f"/projects/{project['id']}/access_tokens", token=token).json()
    (bot,) = [t for t in listed if t["name"] == "bot-longest"]
    assert bot["expires_at"] == latest.isoformat()
    # ...and through the API, where the day after is refused.
    for expires_at, status in ((latest, 201), (latest + dt.timedelta(days=1), 400)):
        response = server.request(
            "POST",
            f"/projects/{project['id']}/access_tokens",
            token=token,
            json={"name": uid("api"), "scopes": ["read_api"], "expires_at": expires_at.isoformat()},
        )
        assert response.status_code == status, response.text
        if status == 201:
            assert response.json()["expires_at"] == latest.isoformat()


def test_the_role_picker_says_what_each_role_may_do(server: LiveServer, page: Page, factory: Factory) -> None:
    maintainer = factory.user()
    project = factory.project()
    factory.member("projects", project["id"], maintainer["id"], MAINTAINER)
    signed_in(page, maintainer["username"], PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/settings/access_tokens")
    _open_form(page)
    roles = page.get_by_role("group", name="Role")
    expect(roles.get_by_role("radio")).to_have_count(5)  # never above the viewer's own role
    expect(roles.get_by_role("radio", name="Owner")).to_have_count(0)
    expect(roles.get_by_role("radio", name="Maintainer")).to_be_checked()
    described = {
        "Guest": "Sees the project and its issues",
        "Planner": "plans the work",
        "Reporter": "clones the repository",
        "Developer": "Pushes to unprotected branches",
        "Maintainer": "Manages the project",
    }
    for role, words in described.items():
        expect(roles.get_by_role("radio", name=role, exact=True)).to_have_accessible_description(
            re.compile(re.escape(words))
        )
    # Radio, name and description line up in the same columns, at 1280 px and at 390 px.
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for group in (roles, page.get_by_role("group", name="Scopes")):
            lefts = group.locator(".scope .hint").evaluate_all(
                "els => [...new Set(els.map((e) => Math.round(e.getBoundingClientRect().left)))]"
            )
            assert len(lefts) == 1, (width, lefts)
            assert group.evaluate("e => e.scrollWidth <= e.clientWidth"), width
            box = group.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= width, (width, box)
    page.set_viewport_size({"width": 1280, "height": 900})

    # The role chosen is the bot's.
    page.get_by_label("Token name").fill("reporter-bot")
    roles.get_by_role("radio", name="Reporter").check()
    page.get_by_label("read_api", exact=True).check()
    assert _submit(page, "Create project access token") == 303
    listed = server.root("GET", f"/projects/{project['id']}/access_tokens").json()
    (bot,) = [t for t in listed if t["name"] == "reporter-bot"]
    assert bot["access_level"] == 20
    assert page.evaluate(AUDIT) == []


def test_the_rotate_dialog_refuses_a_past_or_too_late_date_by_its_field(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner, token = factory.user_with_token()
    project = factory.project(token=token)
    made = server.request(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        token=token,
        json={"name": "rotor", "scopes": ["read_api"]},
    )
    assert made.status_code == 201, made.text
    signed_in(page, owner["username"], PASSWORD)
    page.goto(f"/{project['path_with_namespace']}/-/settings/access_tokens")
    latest = _today() + dt.timedelta(days=_max_lifetime(server))
    for typed, message in (
        (_today() - dt.timedelta(days=3), "Expiration date can't be in the past"),
        (latest + dt.timedelta(days=1), f"Expiration date can't be later than {date(latest)}"),
    ):
        page.get_by_role("row").filter(has_text="rotor").get_by_role("button", name="Rotate").click()
        dialog = page.get_by_role("dialog", name="Rotate “rotor”?")
        dialog.get_by_label("New token expires on").fill(typed.isoformat())
        with page.expect_response(re.compile(r"/rotate$")) as answer:
            dialog.get_by_role("button", name="Rotate token").click()
        assert answer.value.status == 400
        retry = page.get_by_role("region", name="Rotate “rotor”")
        field = retry.get_by_label("New token expires on")
        _field_shows(field, message)
        expect(field).to_have_value(typed.isoformat())
        assert "expires_at" not in _main_text(page)
    listed = server.request("GET", f"/projects/{project['id']}/access_tokens", token=token).json()
    assert [t["name"] for t in listed if t["active"]] == ["rotor"]
    assert len(listed) == 1  # nothing rotated


def test_the_service_account_form_shows_its_errors_and_offers_no_admin_scope(
    server: LiveServer, page: Page
) -> None:
    account: dict[str, Any] = server.root("POST", "/service_accounts", json={}).json()
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto(f"/admin/service_accounts/{account['id']}")
    _open_form(page)
    for scope in ("sudo", "admin_mode", "read_service_ping"):
        expect(page.get_by_label(scope, exact=True)).to_have_count(0)
    expect(page.get_by_label("api", exact=True)).to_be_visible()
    latest = _today() + dt.timedelta(days=_max_lifetime(server))
    page.get_by_label("Expiration date").fill((latest + dt.timedelta(days=30)).isoformat())
    assert _submit(page, "Create token") == 400
    expect(page.get_by_role("alert").get_by_role("listitem")).to_have_text(
        [
            "Token name can't be blank",
            f"Expiration date can't be later than {date(latest)}",
            "Select at least one scope",
        ]
    )
    _field_shows(page.get_by_label("Token name"), "Token name can't be blank")
    # Still no admin scope once the form comes back with its errors; the maximum date goes through.
    expect(page.get_by_label("sudo", exact=True)).to_have_count(0)
    page.get_by_label("Token name").fill("robot")
    page.get_by_label("Expiration date").fill(latest.isoformat())
    page.get_by_label("api", exact=True).check()
    assert _submit(page, "Create token") == 303
    (made,) = _tokens(server, account["id"])
    assert made["expires_at"] == latest.isoformat()
    assert made["scopes"] == ["api"]


def test_the_pages_say_who_receives_the_expiry_emails(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner, token = factory.user_with_token()
    maintainer, developer = factory.user(), factory.user()
    project = factory.project(token=token)  # in the owner's own namespace
    factory.member("projects", project["id"], maintainer["id"], MAINTAINER)
    factory.member("projects", project["id"], developer["id"], DEVELOPER)
    group = factory.group(token=token)  # the owner is its Owner
    factory.member("groups", group["id"], maintainer["id"], MAINTAINER)
    signed_in(page, owner["username"], PASSWORD)

    page.goto(f"/{project['path_with_namespace']}/-/settings/access_tokens")
    note = page.locator("#expiry-mail-note")
    expect(note).to_contain_text("Expiry e-mails for these tokens go to")
    expect(note).to_contain_text(owner["name"])
    expect(note).to_contain_text(maintainer["name"])
    expect(note).not_to_contain_text(developer["name"])
    expect(note).to_contain_text("the project's Owners and Maintainers")

    page.goto(f"/groups/{group['full_path']}/-/settings/access_tokens")
    note = page.locator("#expiry-mail-note")
    expect(note).to_contain_text(owner["name"])
    expect(note).not_to_contain_text(maintainer["name"])
    expect(note).to_contain_text("the group's Owners")

    # The personal page and the notification settings say where one's own e-mail goes.
    page.goto(PERSONAL)
    note = page.locator("#expiry-mail-note")
    expect(note).to_contain_text(f"Expiry e-mails go to {owner['email']}")
    note.get_by_role("link").click()
    expect(page).to_have_url(f"{server.url}/-/user_settings/profile")
    page.goto("/-/profile/notifications")
    expect(page.locator("#notification-email")).to_contain_text(owner["email"])
    expect(page.locator("#notification-email").get_by_role("link")).to_have_attribute(
        "href", "/-/user_settings/profile"
    )
    assert page.evaluate(AUDIT) == []

    # When the only Owner turns e-mail off, the group's page says nobody would be told.
    response = server.request("PUT", "/notification_settings", token=token, params={"level": "disabled"})
    assert response.status_code == 200, response.text
    page.goto(f"/groups/{group['full_path']}/-/settings/access_tokens")
    expect(page.locator("#expiry-mail-note")).to_contain_text("Nobody would be told")
    page.goto(PERSONAL)
    expect(page.locator("#expiry-mail-note")).to_contain_text("You get no expiry e-mails")


def test_with_the_inherited_setting_a_projects_note_names_the_groups_owners_too(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner, token = factory.user_with_token()
    group = factory.group(token=token)  # the owner is the group's Owner
    project = factory.project(token=token, namespace_id=group["id"])
    maintainer = factory.user()
    factory.member("projects", project["id"], maintainer["id"], MAINTAINER)
    before = server.root("GET", "/application/settings").json()["resource_access_token_notify_inherited"]
    signed_in(page, owner["username"], PASSWORD)
    url = f"/{project['path_with_namespace']}/-/settings/access_tokens"
    try:
        for inherited in (False, True):
            changed = server.root(
                "PUT", "/application/settings", json={"resource_access_token_notify_inherited": inherited}
            )
            assert changed.status_code == 200, changed.text
            page.goto(url)
            note = page.locator("#expiry-mail-note")
            expect(note).to_contain_text(maintainer["name"])
            if inherited:
                expect(note).to_contain_text(owner["name"])
                expect(note).to_contain_text("including those of the groups above")
            else:  # the group's Owner is no member of the project itself
                expect(note).not_to_contain_text(owner["name"])
                expect(note).not_to_contain_text("including those of the groups above")
    finally:
        server.root("PUT", "/application/settings", json={"resource_access_token_notify_inherited": before})
