"""A new password ends the user's web sessions (as a block does): the API, python-gitlab's CLI.

Whoever signed in with the old password (or stole its session cookie) is signed out at once, on
every worker, since sessions are read from the database on each request. Other users' sessions
and changes that leave the password alone keep the sessions.
"""

from __future__ import annotations

import requests
from sqlalchemy import select

from keycrew.audit.models import AuditEvent
from tests.support.live import Factory, LiveServer
from tests.support.web import sign_in

OLD = "an-old-password-of-the-user-1"
NEW = "a-new-password-of-the-user-2"
PAGE = "/-/user_settings/personal_access_tokens"


def _sign_in(server: LiveServer, login: str, password: str) -> tuple[requests.Session, int]:
    return sign_in(server.url, login, password)


def _signed_in(http: requests.Session, server: LiveServer) -> bool:
    response = http.get(server.url + PAGE, timeout=30, allow_redirects=False)
    if response.status_code == 200:
        return True
    assert response.status_code in (302, 303), response.text
    assert "/users/sign_in" in response.headers["location"]
    return False


def test_a_password_reset_through_the_api_ends_the_sessions(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=OLD)
    bystander = factory.user(password=OLD)
    first, status = _sign_in(server, user["username"], OLD)
    assert status == 303
    second, _ = _sign_in(server, user["email"], OLD)  # another browser of the same person
    other, _ = _sign_in(server, bystander["username"], OLD)
    assert _signed_in(first, server)
    assert _signed_in(second, server)
    assert _signed_in(other, server)

    # A change that leaves the password alone keeps the sessions.
    renamed = server.root("PUT", f"/users/{user['id']}", json={"name": "Renamed Person"})
    assert renamed.status_code == 200, renamed.text
    assert _signed_in(first, server)

    reset = server.root("PUT", f"/users/{user['id']}", json={"password": NEW})
    assert reset.status_code == 200, reset.text
    assert not _signed_in(first, server)
    assert not _signed_in(second, server)
    assert _signed_in(other, server)  # nobody else's
    # The old password no longer opens a session; the new one does.
    assert _sign_in(server, user["username"], OLD)[1] != 303
    again, status = _sign_in(server, user["username"], NEW)
    assert status == 303
    assert _signed_in(again, server)

    with server.runtime.sessions() as db:
        event = db.scalars(
            select(AuditEvent)
            .where(AuditEvent.event_name == "user.updated", AuditEvent.entity_id == user["id"])
            .order_by(AuditEvent.id.desc())
        ).first()
    assert event is not None
    assert event.details["changes"]["password"] == "changed"
    assert event.details["sessions_ended"] == 2


def test_a_password_reset_through_the_cli_ends_the_sessions(server: LiveServer, factory: Factory) -> None:
    user = factory.user(password=OLD)
    http, status = _sign_in(server, user["username"], OLD)
    assert status == 303
    assert _signed_in(http, server)
    done = server.gitlab_cli("user", "update", "--id", str(user["id"]), "--password", NEW)
    assert done.returncode == 0, done.stderr
    assert not _signed_in(http, server)
    assert _sign_in(server, user["username"], NEW)[1] == 303
