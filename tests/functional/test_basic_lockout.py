"""HTTP Basic passwords (git smart HTTP, /jwt/auth) obey the sign-in lock: wrong passwords count
toward it, and a locked account is refused whatever the password, with the answer a wrong password
gets (nothing tells the guesser that a password was right). Tokens are not passwords: a locked
account's token still works, as in GitLab (the lock guards password guessing, not tokens).

Each test sends from a client address of its own (X-Forwarded-For, believed from 127.0.0.1), so
its failures never reach the per-IP failed-authentication ban that other tests could hit.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.git import Git, basic, info_refs, repo_url
from tests.support.live import Factory, LiveServer

PASSWORD = "a-long-password-1"  # Factory.user's
MAX_ATTEMPTS = 10  # max_login_attempts' default


@pytest.fixture
def git(tmp_path: Path) -> Git:
    return Git(tmp_path)


def _address() -> dict[str, str]:
    return {"X-Forwarded-For": f"192.0.2.{random.randint(1, 254)}"}


def _project_for(factory: Factory, user: dict[str, Any]) -> dict[str, Any]:
    project = factory.project(visibility="private", initialize_with_readme=True)
    factory.member("projects", project["id"], user["id"], 30)
    return project


def _jwt(server: LiveServer, username: str, password: str, client: dict[str, str]) -> requests.Response:
    return requests.get(
        f"{server.url}/jwt/auth",
        params={"service": "container_registry", "scope": "repository:x/y:pull"},
        headers={**client, **basic(username, password)},
        timeout=30,
    )


def _locked(server: LiveServer, user_id: int) -> bool:
    return bool(server.root("GET", f"/users/{user_id}").json()["locked"])


def _events(server: LiveServer, user_id: int) -> list[str]:
    events = server.root("GET", "/audit_events", params={"entity_type": "User", "entity_id": user_id}).json()
    return [e["event_name"] for e in events]


def _ls_remote(
    git: Git, server: LiveServer, full_path: str, user: str, secret: str, client: dict[str, str]
) -> Any:
    header = f"http.extraHeader=X-Forwarded-For: {client['X-Forwarded-For']}"
    return git.run("-c", header, "ls-remote", repo_url(server, full_path, user, secret), check=False)


def test_wrong_git_passwords_lock_the_account_and_a_locked_account_cannot_clone(
    server: LiveServer, factory: Factory, git: Git
) -> None:
    user = factory.user()
    project = _project_for(factory, user)
    full = project["path_with_namespace"]
    client = _address()
    assert _ls_remote(git, server, full, user["username"], PASSWORD, client).returncode == 0
    for attempt in range(MAX_ATTEMPTS):
        assert not _locked(server, user["id"]), f"locked after {attempt} failures"
        failed = _ls_remote(git, server, full, user["username"], "wrong-password", client)
        assert failed.returncode != 0
    assert _locked(server, user["id"])
    names = _events(server, user["id"])
    assert names.count("user.sign_in_failed") == MAX_ATTEMPTS
    assert "user.locked" in names

    # The right password no longer works, and the answer is a wrong password's, byte for byte.
    refused = _ls_remote(git, server, full, user["username"], PASSWORD, client)
    assert refused.returncode != 0
    assert "HTTP Basic: Access denied" in refused.stderr
    right = info_refs(server, full, headers={**client, **basic(user["username"], PASSWORD)})
    wrong = info_refs(server, full, headers={**client, **basic(user["username"], "wrong-password")})
    assert (right.status_code, right.text, right.headers.get("WWW-Authenticate")) == (
        wrong.status_code,
        wrong.text,
        wrong.headers.get("WWW-Authenticate"),
    )
    assert right.status_code == 401
    # Failures while locked do not pile up (Devise's rule).
    assert _events(server, user["id"]).count("user.sign_in_failed") == MAX_ATTEMPTS

    # A token is not a password: it still works for a locked account.
    token = factory.token(user["id"], ["read_repository"])
    assert _ls_remote(git, server, full, user["username"], token, client).returncode == 0

    # The lock opens by itself after the unlock period; the password works again.
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11))
    assert _ls_remote(git, server, full, user["username"], PASSWORD, client).returncode == 0


def test_wrong_registry_passwords_lock_the_account_everywhere(
    server: LiveServer, factory: Factory, git: Git
) -> None:
    user = factory.user()
    project = _project_for(factory, user)
    client = _address()
    assert _jwt(server, user["username"], PASSWORD, client).status_code == 200
    for _ in range(MAX_ATTEMPTS):
        assert _jwt(server, user["username"], "wrong-password", client).status_code == 401
    assert _locked(server, user["id"])
    right = _jwt(server, user["username"], PASSWORD, client)
    wrong = _jwt(server, user["username"], "wrong-password", client)
    assert right.status_code == wrong.status_code == 401
    assert right.json() == wrong.json()
    # The lock holds on git too (one lock for every place a password is accepted).
    result = _ls_remote(git, server, project["path_with_namespace"], user["username"], PASSWORD, client)
    assert result.returncode != 0
    # After the unlock period the password works again.
    server.clock.travel_to(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11))
    assert _jwt(server, user["username"], PASSWORD, client).status_code == 200


def test_a_lock_from_the_sign_in_form_holds_for_basic(server: LiveServer, factory: Factory) -> None:
    user = factory.user()
    project = _project_for(factory, user)
    http = requests.Session()
    for _ in range(MAX_ATTEMPTS):
        form = http.get(f"{server.url}/users/sign_in", timeout=30)
        token = form.text.split('name="authenticity_token" value="', 1)[1].split('"', 1)[0]
        http.post(
            f"{server.url}/users/sign_in",
            data={"login": user["username"], "password": "wrong-password", "authenticity_token": token},
            headers=_address(),
            timeout=30,
            allow_redirects=False,
        )
    assert _locked(server, user["id"])
    client = _address()
    full = project["path_with_namespace"]
    assert info_refs(server, full, headers={**client, **basic(user["username"], PASSWORD)}).status_code == 401
    assert _jwt(server, user["username"], PASSWORD, client).status_code == 401
