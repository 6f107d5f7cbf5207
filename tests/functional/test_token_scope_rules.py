"""Admin-only scopes (sudo, admin_mode, read_service_ping): one rule for every way a token is made.

Only an administrator may give them, and only to a token of an administrator: a group Owner or a
project Maintainer cannot mint them for a service account, an admin cannot give them to a
non-admin's token, and no form offers them where they would be refused. GitLab answers a scope
outside the allowed values with 400 ``{"error": "scopes does not have a valid value"}``.
"""

from __future__ import annotations

import re
from typing import Any

import gitlab
import pytest
import requests

from tests.support.live import ROOT_PASSWORD, Factory, LiveServer
from tests.support.web import csrf_of, signed_in

ADMIN_ONLY = ["sudo", "admin_mode", "read_service_ping"]
REFUSED = {"error": "scopes does not have a valid value"}


def _signed_in(server: LiveServer, login: str, password: str) -> requests.Session:
    return signed_in(server.url, login, password)[0]


def _offered(html: str) -> set[str]:
    """The scopes a form offers as checkboxes."""
    return set(re.findall(r'name="scopes"[^>]*value="([^"]+)"', html)) | set(
        re.findall(r'value="([^"]+)"[^>]*name="scopes"', html)
    )


def _token_count(server: LiveServer, path: str, token: str | None = None) -> int:
    response = server.request("GET", path, token=token) if token else server.root("GET", path)
    assert response.status_code == 200, response.text
    return int(response.headers["X-Total"])


@pytest.mark.usefixtures("group_owners_create_service_accounts")
@pytest.mark.parametrize("kind", ["groups", "projects"])
def test_owners_cannot_mint_admin_scopes_for_their_service_accounts(
    server: LiveServer, factory: Factory, kind: str
) -> None:
    owner, owner_token = factory.user_with_token(["api"])
    if kind == "groups":
        source = factory.group(token=owner_token)
    else:
        source = factory.project(visibility="private")
        factory.member("projects", source["id"], owner["id"], 40)
    base = f"/{kind}/{source['id']}/service_accounts"
    account = server.request("POST", base, token=owner_token, json={}).json()
    tokens = f"{base}/{account['id']}/personal_access_tokens"
    for scope in ADMIN_ONLY:
        refused = server.request(
            "POST", tokens, token=owner_token, json={"name": "t", "scopes": ["api", scope]}
        )
        assert refused.status_code == 400, (scope, refused.text)
        assert refused.json() == REFUSED
    # Comma-separated, as python-gitlab's CLI sends them: the same rule.
    refused = server.request("POST", tokens, token=owner_token, data={"name": "t", "scopes": "api,sudo"})
    assert refused.status_code == 400
    assert _token_count(server, tokens, owner_token) == 0
    made = server.request("POST", tokens, token=owner_token, json={"name": "t", "scopes": ["api"]})
    assert made.status_code == 201, made.text


@pytest.mark.usefixtures("group_owners_create_service_accounts")
def test_python_gitlab_owner_is_refused_sudo(server: LiveServer, factory: Factory) -> None:
    _owner, owner_token = factory.user_with_token(["api"])
    group = server.gl(owner_token).groups.get(factory.group(token=owner_token)["id"])
    account = group.service_accounts.create({})
    with pytest.raises(gitlab.GitlabCreateError) as refused:
        account.access_tokens.create({"name": "ci", "scopes": ["sudo"]})
    assert refused.value.response_code == 400


def test_admins_cannot_give_admin_scopes_to_non_admin_tokens(server: LiveServer, factory: Factory) -> None:
    account = server.root("POST", "/service_accounts", json={}).json()
    # An instance service account's tokens are made through the users API.
    tokens = f"/users/{account['id']}/personal_access_tokens"
    response = server.root("POST", tokens, json={"name": "t", "scopes": ["admin_mode"]})
    assert response.status_code == 400, response.text
    assert response.json() == REFUSED

    user = factory.user()
    for scope in ADMIN_ONLY:
        personal = server.root(
            "POST", f"/users/{user['id']}/personal_access_tokens", json={"name": "p", "scopes": [scope]}
        )
        assert personal.status_code == 400, personal.text
        assert personal.json() == REFUSED
        impersonation = server.root(
            "POST", f"/users/{user['id']}/impersonation_tokens", json={"name": "i", "scopes": [scope]}
        )
        assert impersonation.status_code == 400, impersonation.text
    # An administrator's own tokens may carry them.
    admin = factory.user(admin=True)
    made = server.root(
        "POST", f"/users/{admin['id']}/personal_access_tokens", json={"name": "p", "scopes": ["sudo"]}
    )
    assert made.status_code == 201, made.text


def test_self_service_never_grants_admin_scopes(server: LiveServer, factory: Factory) -> None:
    _user, token = factory.user_with_token(["api"])
    for scope in ADMIN_ONLY:
        refused = server.request(
            "POST", "/user/personal_access_tokens", token=token, json={"name": "s", "scopes": [scope]}
        )
        assert refused.status_code == 400, refused.text


def test_forms_offer_admin_scopes_only_where_they_are_allowed(server: LiveServer, factory: Factory) -> None:
    password = "a-long-password-for-forms-1"
    user = factory.user(password=password)
    person = _signed_in(server, user["username"], password)
    own = f"{server.url}/-/user_settings/personal_access_tokens"
    page = person.get(own, timeout=30)
    assert "api" in _offered(page.text)
    assert not _offered(page.text) & set(ADMIN_ONLY)
    refused = person.post(
        own,
        data={"authenticity_token": csrf_of(page.text), "name": "w", "scopes": ["api", "sudo"]},
        timeout=30,
        allow_redirects=False,
    )
    assert refused.status_code == 400

    root = _signed_in(server, "root", ROOT_PASSWORD)
    assert set(ADMIN_ONLY) <= _offered(root.get(own, timeout=30).text)
    # The instance service account's token form (admins only): the account is no admin, so the
    # form does not offer them, and a forged post is refused by the same rule.
    account: dict[str, Any] = server.root("POST", "/service_accounts", json={}).json()
    url = f"{server.url}/admin/service_accounts/{account['id']}"
    form = root.get(url, timeout=30)
    assert form.status_code == 200
    assert "api" in _offered(form.text)
    assert not _offered(form.text) & set(ADMIN_ONLY)
    forged = root.post(
        f"{url}/personal_access_tokens",
        data={"authenticity_token": csrf_of(form.text), "name": "f", "scopes": ["sudo"]},
        timeout=30,
        allow_redirects=False,
    )
    assert forged.status_code == 400
    listed = server.root("GET", f"/personal_access_tokens?user_id={account['id']}").json()
    assert listed == []
