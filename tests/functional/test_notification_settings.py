"""The notification settings API (global, group, project) with python-gitlab, its CLI and raw HTTP."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from keycrew.mail.render import NOTIFICATIONS_PATH
from keycrew.notifications.settings import EMAIL_EVENTS
from tests.support.live import Factory, LiveServer
from tests.support.web import csrf_of, signed_in


def test_global_settings_round_trip_with_python_gitlab(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    gl = server.gl(token)

    settings = gl.notificationsettings.get()
    assert settings.level == "participating"
    assert settings.notification_email == user["email"]
    assert not hasattr(settings, "events")

    settings.level = "watch"
    settings.save()
    assert gl.notificationsettings.get().level == "watch"

    # The notification e-mail may be set to the user's own (verified) address.
    settings = gl.notificationsettings.get()
    settings.notification_email = user["email"]
    settings.level = "disabled"
    settings.save()
    again = gl.notificationsettings.get()
    assert (again.level, again.notification_email) == ("disabled", user["email"])

    # Each change is an audit event of the user.
    events = server.root("GET", "/audit_events", params={"entity_type": "User", "entity_id": user["id"]})
    assert events.status_code == 200, events.text
    names = [e["event_name"] for e in events.json()]
    assert names.count("notification_settings.updated") == 2


def test_group_settings_custom_level_shows_every_event(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    group = factory.group()
    factory.member("groups", group["id"], user["id"], 30)
    gl = server.gl(token)
    managed = gl.groups.get(group["id"], lazy=True)

    settings = managed.notificationsettings.get()
    assert settings.level == "global"
    assert not hasattr(settings, "events")

    settings.level = "custom"
    settings.save()
    response = server.request(
        "PUT", f"/groups/{group['id']}/notification_settings", token=token, json={"new_note": True}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["level"] == "custom"
    assert set(body["events"]) == set(EMAIL_EVENTS)
    assert body["events"]["new_note"] is True
    assert body["events"]["new_issue"] is False
    # GitLab's pipeline events read as on while nobody set them.
    assert body["events"]["failed_pipeline"] is True
    assert body["events"]["fixed_pipeline"] is True
    assert "notification_email" not in body

    # Another user's setting for the same group is their own.
    other, other_token = factory.user_with_token()
    factory.member("groups", group["id"], other["id"], 30)
    theirs = server.request("GET", f"/groups/{group['id']}/notification_settings", token=other_token)
    assert theirs.json() == {"level": "global"}


def test_project_settings_with_the_gitlab_cli(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token()
    project = factory.project(token=token)

    result = server.gitlab_cli(
        "-o", "json", "project-notification-settings", "get", "--project-id", str(project["id"]), token=token
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["level"] == "global"

    result = server.gitlab_cli(
        "project-notification-settings",
        "update",
        "--project-id",
        str(project["id"]),
        "--level",
        "mention",
        token=token,
    )
    assert result.returncode == 0, result.stderr
    response = server.request(
        "GET",
        f"/projects/{quote(project['path_with_namespace'], safe='')}/notification_settings",
        token=token,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"level": "mention"}


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/notification_settings", {"level": "loud"}, {"message": "'loud' is not a valid level"}),
        ("/notification_settings", {"new_note": "perhaps"}, {"error": "new_note is invalid"}),
        (
            "/notification_settings",
            {"notification_email": "someone-else@example.com"},
            {"message": {"notification_email": ["must be an email you have verified"]}},
        ),
    ],
)
def test_bad_global_updates_are_400(
    server: LiveServer, factory: Factory, path: str, body: dict[str, str], expected: dict[str, object]
) -> None:
    _user, token = factory.user_with_token()
    response = server.request("PUT", path, token=token, json=body)
    assert response.status_code == 400, response.text
    assert response.json() == expected
    # Nothing changed.
    assert server.request("GET", path, token=token).json()["level"] == "participating"


def test_bad_source_updates_and_unknown_sources(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token()
    private_group = factory.group()
    project = factory.project(token=token)

    response = server.request(
        "PUT", f"/projects/{project['id']}/notification_settings", token=token, json={"level": "everything"}
    )
    assert response.status_code == 400
    assert response.json() == {"message": "'everything' is not a valid level"}

    # A group the user may not see, and one that does not exist: 404, as GitLab.
    for group_id in (private_group["id"], 999999999):
        response = server.request("GET", f"/groups/{group_id}/notification_settings", token=token)
        assert response.status_code == 404, response.text
        assert response.json() == {"message": "404 Group Not Found"}
    response = server.request("GET", "/projects/999999999/notification_settings", token=token)
    assert response.status_code == 404
    assert response.json() == {"message": "404 Project Not Found"}

    # Without a token: 401; with a read_api token, reading is fine and writing is not.
    assert server.request("GET", "/notification_settings").status_code == 401
    reader, reader_token = factory.user_with_token(scopes=["read_api"])
    assert server.request("GET", "/notification_settings", token=reader_token).status_code == 200
    refused = server.request("PUT", "/notification_settings", token=reader_token, json={"level": "watch"})
    assert refused.status_code == 403
    assert reader["id"]


def test_the_notifications_page_every_email_links_to(server: LiveServer, factory: Factory) -> None:
    user, token = factory.user_with_token()
    http, _csrf = signed_in(server.url, user["username"], "a-long-password-1")
    url = server.url + NOTIFICATIONS_PATH

    page = http.get(url, timeout=30)
    assert page.status_code == 200
    assert user["email"] in page.text
    assert re.search(r'value="participating"[^>]*checked', page.text)

    saved = http.post(
        url,
        data={"level": "disabled", "authenticity_token": csrf_of(page.text)},
        timeout=30,
        allow_redirects=False,
    )
    assert saved.status_code == 303
    assert server.request("GET", "/notification_settings", token=token).json()["level"] == "disabled"
    again = http.get(url, timeout=30)
    assert "Notification settings saved." in again.text
    assert re.search(r'value="disabled"[^>]*checked', again.text)

    refused = http.post(url, data={"level": "loud", "authenticity_token": csrf_of(again.text)}, timeout=30)
    assert refused.status_code == 400
    assert server.request("GET", "/notification_settings", token=token).json()["level"] == "disabled"
    # Without the form's CSRF token nothing changes.
    forged = http.post(url, data={"level": "watch"}, timeout=30, allow_redirects=False)
    assert forged.status_code in (403, 422)
    assert server.request("GET", "/notification_settings", token=token).json()["level"] == "disabled"
