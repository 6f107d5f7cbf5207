"""Monitor > Alerts and Settings > Monitor in Chromium: a Maintainer adds a Prometheus integration
(its token shown once), turns incidents on, alerts sent with the token show up in the list's tabs
and on an alert's page, whose buttons change its status; the token is reset, the integration
deactivated, activated and deleted through their confirmation dialogs, and the notify endpoint
agrees at every step. Developers see alerts but not the settings; Reporters neither. Every page
passes the accessibility audit and fits a 390 px screen."""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests
from playwright.sync_api import Page, expect

from tests.browser.pages import signed_in
from tests.browser.test_web_accessibility import AUDIT
from tests.support.live import Factory, LiveServer, uid

PASSWORD = "a-long-password-1"
STARTS = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
REPORTER, DEVELOPER = 20, 30
# Runs in the page: what, below the top bar, reaches past a 390 px screen's right edge.
FITS = """() => [...document.querySelectorAll('.shell, .shell *')]
  .filter((el) => el.getBoundingClientRect().right > 390 || el.scrollWidth > Math.max(el.clientWidth, 390))
  .map((el) => el.tagName + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : ''))"""


def _alertmanager_payload(name: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    """One alert in Alertmanager's webhook format (what a Prometheus integration reads)."""
    # One start time for every notification of the test run: a repeat is the same alert (its
    # fingerprint is made of the start time, the title and the query).
    starts = STARTS.isoformat().replace("+00:00", "Z")
    alert = {
        "status": status,
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} on db-1", "description": "The disk is nearly full."},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": f"http://prometheus.invalid/graph?g0.expr={name}",
    }
    return {
        "version": "4",
        "status": status,
        "receiver": "keycrew",
        "groupLabels": {"alertname": name},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.invalid",
        "alerts": [alert],
    }


def _notify(url: str, token: str, payload: dict[str, Any]) -> requests.Response:
    return requests.post(url, json=payload, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _status(page: Page, where: str) -> int:
    response = page.goto(where)
    assert response is not None, where
    return response.status


def _submit(page: Page, button: str) -> None:
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_load_state()


def _confirm(page: Page, opener: str, confirm: str) -> None:
    """Open a row's confirmation dialog and confirm it."""
    page.get_by_role("button", name=opener, exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=confirm, exact=True).click()
    page.wait_for_load_state()


def _add_prometheus(page: Page, settings: str, name: str) -> tuple[str, str]:
    """Add a Prometheus integration through the form: its token (shown once) and its URL."""
    page.goto(settings)
    page.get_by_label("Integration name").fill(name)
    page.get_by_label("Integration type").select_option("prometheus")
    _submit(page, "Add integration")
    expect(page.get_by_text(f"The alert integration {name} was added.")).to_be_visible()
    token = page.get_by_label("Your new integration token").input_value()
    url = page.locator("#integrations-table tbody tr").filter(has_text=name).locator("td.mono").inner_text()
    return token, url.strip()


def test_maintainer_configures_alerts_and_works_them(
    server: LiveServer, page: Page, factory: Factory
) -> None:
    owner, token = factory.user_with_token()
    project = factory.project(token=token)
    path = project["path_with_namespace"]
    settings = f"/{path}/-/settings/operations"
    signed_in(page, owner["username"], PASSWORD)

    page.goto(f"/{path}")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Monitor", exact=True).click()
    expect(page.get_by_role("heading", name="Monitor", level=1)).to_be_visible()
    expect(page.get_by_text("No alert integrations yet.")).to_be_visible()
    assert page.evaluate(AUDIT) == []

    # A blank name is refused in words; nothing is added.
    _submit(page, "Add integration")
    expect(page.locator("#form-error")).to_contain_text("Name can't be blank")
    expect(page.get_by_text("No alert integrations yet.")).to_be_visible()

    integration_token, url = _add_prometheus(page, settings, "Production Prometheus")
    assert url == f"{server.url}/{path}/prometheus/alerts/notify.json"
    assert len(integration_token) >= 32
    assert page.evaluate(AUDIT) == []
    page.reload()
    assert integration_token not in page.content()  # shown once

    # Incidents on: the three boxes, saved and shown again.
    create_issue = page.get_by_label("Open an incident for each new alert")
    expect(create_issue).not_to_be_checked()
    expect(page.get_by_label("Close the incident when its alert recovers")).to_be_checked()
    create_issue.check()
    _submit(page, "Save changes")
    expect(page.get_by_text("The incident settings were saved.")).to_be_visible()
    expect(page.get_by_label("Open an incident for each new alert")).to_be_checked()

    title = uid("DiskFull")
    assert (
        _notify(url, integration_token, _alertmanager_payload(title, severity="warning")).status_code == 200
    )
    assert (
        _notify(url, integration_token, _alertmanager_payload(title, severity="warning")).status_code == 200
    )
    assert _notify(url, "not-the-token", _alertmanager_payload(uid("Other"))).status_code == 401

    page.get_by_role("navigation", name="Project").get_by_role("link", name="Alerts", exact=True).click()
    expect(page.get_by_role("heading", name="Alerts", level=1)).to_be_visible()
    tabs = page.get_by_role("navigation", name="Alert status")
    expect(tabs.get_by_role("link", name="Open 1")).to_have_attribute("aria-current", "page")
    expect(tabs.get_by_role("link", name="Resolved 0")).to_be_visible()
    rows = page.locator("#alerts-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"{title} on db-1")
    expect(rows.first).to_contain_text("Low")  # Alertmanager's "warning"
    expect(rows.first).to_contain_text("Triggered")
    expect(rows.first.locator("td").nth(2)).to_have_text("2")  # the repeat counted, not added
    expect(rows.first).to_contain_text("Incident #1")
    assert page.evaluate(AUDIT) == []

    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    details = page.locator("#alert-details")
    expect(details).to_contain_text("Production Prometheus")
    expect(details).to_contain_text("Events2")
    expect(page.locator("#alert-description")).to_have_text("The disk is nearly full.")
    expect(page.locator("#alert-activity")).to_contain_text("Opened incident #1")
    expect(page.locator("#alert-activity")).to_contain_text("alert-bot")
    assert page.evaluate(AUDIT) == []

    _submit(page, "Acknowledge")
    expect(page.get_by_text("The alert's status is now Acknowledged.")).to_be_visible()
    expect(details).to_contain_text("StatusAcknowledged")
    expect(page.get_by_role("button", name="Acknowledge", exact=True)).to_have_count(0)
    expect(page.locator("#alert-activity")).to_contain_text("to acknowledged")
    _submit(page, "Resolve")
    expect(details).to_contain_text("StatusResolved")
    expect(details).not_to_contain_text("Not ended")

    page.goto(f"/{path}/-/alert_management")
    expect(page.get_by_text("No open alerts.")).to_be_visible()
    page.get_by_role("navigation", name="Alert status").get_by_role("link", name="Resolved 1").click()
    expect(page.locator("#alerts-table tbody tr")).to_have_count(1)
    expect(page.locator("#alerts-table")).to_contain_text(title)
    assert page.evaluate(AUDIT) == []

    # Reset the token: the old one stops working, the new one (shown once) works.
    page.goto(settings)
    _confirm(page, "Reset token", "Reset token")
    new_token = page.get_by_label("Your new integration token").input_value()
    assert new_token != integration_token
    assert _notify(url, integration_token, _alertmanager_payload(uid("Late"))).status_code == 401
    assert _notify(url, new_token, _alertmanager_payload(uid("Fresh"))).status_code == 200

    # Deactivate: refused (403) until activated again.
    _confirm(page, "Deactivate", "Deactivate")
    expect(page.get_by_text("The alert integration Production Prometheus was deactivated.")).to_be_visible()
    expect(page.locator("#integrations-table")).to_contain_text("Inactive")
    assert _notify(url, new_token, _alertmanager_payload(uid("Off"))).status_code == 403
    _confirm(page, "Activate", "Activate")
    expect(page.locator("#integrations-table")).to_contain_text("Active")
    assert _notify(url, new_token, _alertmanager_payload(uid("On"))).status_code == 200

    # Delete: its address answers as if it never was.
    _confirm(page, "Delete", "Delete integration")
    expect(page.get_by_text("The alert integration Production Prometheus was deleted.")).to_be_visible()
    expect(page.get_by_text("No alert integrations yet.")).to_be_visible()
    assert _notify(url, new_token, _alertmanager_payload(uid("Gone"))).status_code == 404
    assert page.evaluate(AUDIT) == []


def test_developers_see_alerts_reporters_do_not(server: LiveServer, page: Page, factory: Factory) -> None:
    _owner, token = factory.user_with_token()
    project = factory.project(token=token)
    path = project["path_with_namespace"]
    developer, reporter = factory.user(), factory.user()
    factory.member("projects", project["id"], developer["id"], DEVELOPER)
    factory.member("projects", project["id"], reporter["id"], REPORTER)

    signed_in(page, developer["username"], PASSWORD)
    page.goto(f"/{path}")
    nav = page.get_by_role("navigation", name="Project")
    expect(nav.get_by_role("link", name="Alerts", exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Monitor", exact=True)).to_have_count(0)
    assert _status(page, f"/{path}/-/alert_management") == 200
    expect(page.get_by_text("Configure the integrations")).to_have_count(0)
    assert _status(page, f"/{path}/-/settings/operations") == 403
    assert _status(page, f"/{path}/-/alert_management/1/details") == 404
    assert _status(page, f"/{path}/-/alert_management/99999999999999999999/details") == 404

    page.context.clear_cookies()
    signed_in(page, reporter["username"], PASSWORD)
    page.goto(f"/{path}")
    expect(page.get_by_role("navigation", name="Project").get_by_role("link", name="Alerts")).to_have_count(0)
    assert _status(page, f"/{path}/-/alert_management") == 403


def test_alert_pages_fit_a_phone(server: LiveServer, page: Page, factory: Factory) -> None:
    owner, token = factory.user_with_token()
    project = factory.project(token=token)
    path = project["path_with_namespace"]
    signed_in(page, owner["username"], PASSWORD)
    integration_token, url = _add_prometheus(
        page, f"/{path}/-/settings/operations", "A rather long integration name"
    )
    long_title = "Disk" + "Full" * 30
    assert (
        _notify(url, integration_token, _alertmanager_payload(long_title, severity="critical")).status_code
        == 200
    )

    page.set_viewport_size({"width": 390, "height": 844})
    for where in (
        f"/{path}/-/settings/operations",
        f"/{path}/-/alert_management",
        f"/{path}/-/alert_management?status=all",
        f"/{path}/-/alert_management/1/details",
    ):
        assert _status(page, where) == 200, where
        assert page.evaluate(FITS) == [], where
        assert page.evaluate(AUDIT) == [], where
