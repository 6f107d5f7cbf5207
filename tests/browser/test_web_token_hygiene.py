"""The Admin area's "Token hygiene" page: findings grouped by check with counts, links to each
token's owner, a CSV download; admins only; the basic accessibility audit."""

from __future__ import annotations

import csv
import io
from typing import Any

import requests
from playwright.sync_api import Page, expect

from tests.browser.pages import session_for, signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import ROOT_PASSWORD, Factory, LiveServer, uid

PASSWORD = "a-long-password-1"


def _findings(server: LiveServer, factory: Factory) -> dict[str, Any]:
    project = factory.project()
    bot = server.root(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        json={"name": uid("owner-bot"), "scopes": ["api"], "access_level": 50},
    )
    assert bot.status_code == 201, bot.text
    deploy = server.root(
        "POST",
        f"/projects/{project['id']}/deploy_tokens",
        json={"name": uid("dt"), "scopes": ["read_repository"]},
    )
    assert deploy.status_code == 201, deploy.text
    bot_user = server.root("GET", f"/users/{bot.json()['user_id']}").json()
    return {"project": project, "bot": bot.json(), "bot_user": bot_user, "deploy": deploy.json()}


def test_the_page_groups_findings_links_owners_and_downloads_csv(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    made = _findings(server, factory)
    signed_in(page, "root", ROOT_PASSWORD)
    page.goto("/admin")
    page.get_by_role("navigation", name="Admin area").get_by_role("link", name="Token hygiene").click()
    expect(page.get_by_role("heading", level=1, name="Token hygiene")).to_be_visible()
    expect(page.get_by_role("link", name="Token hygiene")).to_have_attribute("aria-current", "page")
    assert page.evaluate(AUDIT) == []

    # The summary counts each check; the bot_owner section lists the Owner bot.
    assert int(page.locator("#count-bot_owner").inner_text()) >= 1
    assert int(page.locator("#count-no_expiry").inner_text()) >= 1
    section = page.get_by_role("region", name="Bots with the Owner role")
    row = section.locator(f"tr.finding[data-token-id='{made['bot']['id']}']")
    expect(row).to_contain_text(made["bot"]["name"])
    expect(row).to_contain_text(f"Owner of the project {made['project']['path_with_namespace']}")
    expect(row).to_contain_text("Lower the role to Maintainer")
    deploy_row = page.get_by_role("region", name="Tokens without an expiry date").locator(
        "tr.finding", has_text=made["deploy"]["name"]
    )
    expect(deploy_row).to_contain_text("deploy")
    expect(deploy_row.get_by_role("link")).to_have_attribute(
        "href", f"/{made['project']['path_with_namespace']}/-/settings/deploy_tokens"
    )

    # CSV download: every finding, the bot's among them.
    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename.startswith("token-hygiene-")
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    assert any(r["check"] == "bot_owner" and r["token_id"] == str(made["bot"]["id"]) for r in rows)

    # The owner link leads to the bot's admin page.
    row.get_by_role("link", name=f"@{made['bot_user']['username']}").click()
    expect(page).to_have_url(f"{server.url}/admin/users/{made['bot_user']['username']}")


def test_non_admins_get_404(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=PASSWORD)
    http = session_for(server, user["username"], PASSWORD)
    for path in ("/admin/token_hygiene", "/admin/token_hygiene.csv"):
        response = http.get(f"{server.url}{path}", timeout=30, allow_redirects=False)
        assert response.status_code == 404, path
    anonymous = requests.get(f"{server.url}/admin/token_hygiene.csv", timeout=30, allow_redirects=False)
    assert anonymous.status_code in (302, 303)
