"""The application settings that govern accounts, bots and tokens (GitLab's names, defaults and
validation messages), the instance token prefix an admin sets, the group setting
resource_access_token_creation_allowed, and who may create a group's service accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import gitlab
import pytest

from tests.support.live import Factory, LiveServer, uid

DEFAULTS: dict[str, Any] = {
    "default_projects_limit": 100000,
    "deactivate_dormant_users": False,
    "deactivate_dormant_users_period": 90,
    "delete_unconfirmed_users": False,
    "unconfirmed_users_delete_after_days": 7,
    "delete_inactive_projects": False,
    "inactive_projects_delete_after_months": 2,
    "inactive_projects_min_size_mb": 0,
    "inactive_projects_send_warning_email_after_months": 1,
    "allow_top_level_group_owners_to_create_service_accounts": False,
    "service_access_tokens_expiration_enforced": True,
    "admin_mode": False,
}
NO_TOKEN_PERMISSION = "User does not have permission to create {} access token"


@pytest.fixture
def restore(server: LiveServer) -> Iterator[None]:
    """Put the settings back as the shared server had them, whatever the test changed."""
    before = server.root("GET", "/application/settings").json()
    yield
    back = {name: before[name] for name in DEFAULTS} | {"personal_access_token_prefix": ""}
    response = server.root("PUT", "/application/settings", json=back)
    assert response.status_code == 200, response.text


def _put(server: LiveServer, **values: Any) -> Any:
    return server.root("PUT", "/application/settings", json=values)


def test_defaults_are_gitlabs(server: LiveServer, restore: None) -> None:
    settings = server.gl().settings.get()
    for name, value in DEFAULTS.items():
        assert getattr(settings, name) == value, name
    assert settings.personal_access_token_prefix == "glpat-"


def test_python_gitlab_saves_and_the_cli_updates(server: LiveServer, restore: None) -> None:
    gl = server.gl()
    settings = gl.settings.get()
    settings.default_projects_limit = 12
    settings.deactivate_dormant_users = True
    settings.deactivate_dormant_users_period = 120
    settings.delete_inactive_projects = True
    settings.inactive_projects_delete_after_months = 6
    settings.inactive_projects_send_warning_email_after_months = 3
    settings.inactive_projects_min_size_mb = 50
    settings.delete_unconfirmed_users = True
    settings.unconfirmed_users_delete_after_days = 3
    settings.save()
    again = gl.settings.get()
    assert (
        again.default_projects_limit,
        again.deactivate_dormant_users,
        again.deactivate_dormant_users_period,
        again.delete_inactive_projects,
        again.inactive_projects_delete_after_months,
        again.inactive_projects_send_warning_email_after_months,
        again.inactive_projects_min_size_mb,
        again.delete_unconfirmed_users,
        again.unconfirmed_users_delete_after_days,
    ) == (12, True, 120, True, 6, 3, 50, True, 3)

    # The CLI of python-gitlab 8.6 knows default_projects_limit (not the newer settings).
    done = server.gitlab_cli("application-settings", "update", "--default-projects-limit", "25")
    assert done.returncode == 0, done.stderr
    assert gl.settings.get().default_projects_limit == 25

    # A new user gets the instance's default projects limit.
    user = Factory(server).user()
    assert server.root("GET", f"/users/{user['id']}").json()["projects_limit"] == 25


@pytest.mark.parametrize(
    ("values", "errors"),
    [
        (
            {"deactivate_dormant_users": True, "deactivate_dormant_users_period": 30},
            {
                "deactivate_dormant_users_period": [
                    "'30' days of inactivity must be greater than or equal to 90"
                ]
            },
        ),
        (
            {"unconfirmed_users_delete_after_days": 0},
            {"unconfirmed_users_delete_after_days": ["must be greater than 0"]},
        ),
        (
            # The warning must come before the deletion, as GitLab's model says too.
            {"inactive_projects_delete_after_months": 0},
            {
                "inactive_projects_delete_after_months": ["must be greater than 0"],
                "inactive_projects_send_warning_email_after_months": ["must be less than 0"],
            },
        ),
        (
            {"inactive_projects_min_size_mb": -1},
            {"inactive_projects_min_size_mb": ["must be greater than or equal to 0"]},
        ),
        (
            {
                "inactive_projects_delete_after_months": 3,
                "inactive_projects_send_warning_email_after_months": 3,
            },
            {"inactive_projects_send_warning_email_after_months": ["must be less than 3"]},
        ),
        ({"default_projects_limit": -5}, {"default_projects_limit": ["must be greater than or equal to 0"]}),
        (
            {"personal_access_token_prefix": "bad prefix!"},
            {
                "personal_access_token_prefix": [
                    "can contain only letters of the Base64 alphabet (RFC4648) "
                    "with the addition of '@', ':' and '.'"
                ]
            },
        ),
        (
            {"personal_access_token_prefix": "x" * 21},
            {"personal_access_token_prefix": ["is too long (maximum is 20 characters)"]},
        ),
    ],
)
def test_validation_messages_and_nothing_half_written(
    server: LiveServer, restore: None, values: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    before = server.root("GET", "/application/settings").json()
    response = _put(server, **({"admin_mode": True, "inactive_projects_min_size_mb": 7} | values))
    assert response.status_code == 400, response.text
    assert response.json() == {"message": errors}
    after = server.root("GET", "/application/settings").json()
    assert {k: after[k] for k in DEFAULTS} == {k: before[k] for k in DEFAULTS}


def test_dormant_period_is_checked_only_while_dormant_users_are_deactivated(
    server: LiveServer, restore: None
) -> None:
    assert _put(server, deactivate_dormant_users_period=30).status_code == 200
    refused = _put(server, deactivate_dormant_users=True)
    assert refused.status_code == 400
    assert refused.json()["message"]["deactivate_dormant_users_period"] == [
        "'30' days of inactivity must be greater than or equal to 90"
    ]
    # Not a boolean: Grape's 400.
    assert _put(server, admin_mode="maybe").status_code == 400


def test_non_admins_may_neither_read_nor_change(server: LiveServer, factory: Factory) -> None:
    _, token = factory.user_with_token()
    assert server.request("GET", "/application/settings", token=token).status_code == 403
    response = server.request("PUT", "/application/settings", token=token, json={"admin_mode": True})
    assert response.status_code == 403
    assert response.json() == {"message": "403 Forbidden"}


def test_token_prefix_set_by_an_admin(server: LiveServer, factory: Factory, restore: None) -> None:
    user, old_token = factory.user_with_token()
    assert old_token.startswith("glpat-")
    gl = server.gl()
    settings = gl.settings.get()
    settings.personal_access_token_prefix = "corp-glpat-"
    settings.save()
    assert gl.settings.get().personal_access_token_prefix == "corp-glpat-"

    new_token = factory.token(user["id"])
    assert new_token.startswith("corp-glpat-")
    # Both the token issued before and the new one work; the admin token API knows both.
    for token in (old_token, new_token):
        assert server.request("GET", "/user", token=token).json()["id"] == user["id"]
        found = server.root("POST", "/admin/token", json={"token": token})
        assert found.status_code == 200, found.text
    project = factory.project()
    deploy = gl.projects.get(project["id"]).deploytokens.create(
        {"name": uid("d"), "scopes": ["read_repository"]}
    )
    assert deploy.token.startswith("corp-gldt-")
    bot = gl.projects.get(project["id"]).access_tokens.create({"name": uid("b"), "scopes": ["read_api"]})
    assert bot.token.startswith("corp-glpat-")

    # Without the kind's prefix it is the instance prefix; blank goes back to the operator's.
    assert _put(server, personal_access_token_prefix="acme-").json()["personal_access_token_prefix"] == (
        "acme-glpat-"
    )
    assert factory.token(user["id"]).startswith("acme-glpat-")
    # A token of an earlier prefix is still known to the admin token API.
    assert server.root("POST", "/admin/token", json={"token": new_token}).status_code == 200
    assert _put(server, personal_access_token_prefix="").json()["personal_access_token_prefix"] == "glpat-"
    assert factory.token(user["id"]).startswith("glpat-")
    assert server.request("GET", "/user", token=new_token).status_code == 200


def _create_project_token(server: LiveServer, project_id: int, token: str) -> Any:
    return server.request(
        "POST",
        f"/projects/{project_id}/access_tokens",
        token=token,
        json={"name": uid("pat"), "scopes": ["read_api"], "access_level": 30},
    )


def test_resource_token_creation_follows_the_top_level_group(server: LiveServer, factory: Factory) -> None:
    _owner, owner_token = factory.user_with_token()
    top = factory.group(token=owner_token)
    sub = factory.group(token=owner_token, parent_id=top["id"])
    project = factory.project(token=owner_token, namespace_id=sub["id"])
    assert (
        server.request("GET", f"/groups/{top['id']}", token=owner_token).json()[
            "resource_access_token_creation_allowed"
        ]
        is True
    )

    # A Maintainer of the group may not change it; a subgroup may not forbid it.
    maintainer, maintainer_token = factory.user_with_token()
    factory.member("groups", top["id"], maintainer["id"], 40)
    refused = server.request(
        "PUT",
        f"/groups/{top['id']}",
        token=maintainer_token,
        json={"resource_access_token_creation_allowed": False},
    )
    assert refused.status_code == 403
    on_sub = server.request(
        "PUT",
        f"/groups/{sub['id']}",
        token=owner_token,
        json={"resource_access_token_creation_allowed": False},
    )
    assert on_sub.status_code == 400
    assert on_sub.json() == {
        "message": {
            "resource_access_token_creation_allowed": [
                "is not allowed since the group is not top-level group."
            ]
        }
    }

    group = server.gl(owner_token).groups.get(top["id"])
    group.resource_access_token_creation_allowed = False
    group.save()
    assert server.gl(owner_token).groups.get(top["id"]).resource_access_token_creation_allowed is False

    # Nobody creates project or group tokens below it: not the Owner, not an admin.
    for token in (owner_token, server.root_token):
        response = _create_project_token(server, project["id"], token)
        assert response.status_code == 400, response.text
        assert response.json() == {"message": "400 Bad request - " + NO_TOKEN_PERMISSION.format("project")}
        response = server.request(
            "POST",
            f"/groups/{sub['id']}/access_tokens",
            token=token,
            json={"name": uid("g"), "scopes": ["api"]},
        )
        assert response.status_code == 400, response.text
        assert NO_TOKEN_PERMISSION.format("group") in response.json()["message"]
    # Projects of personal namespaces are not concerned.
    personal = factory.project(token=owner_token)
    assert _create_project_token(server, personal["id"], owner_token).status_code == 201

    assert (
        server.request(
            "PUT",
            f"/groups/{top['id']}",
            token=owner_token,
            json={"resource_access_token_creation_allowed": True},
        ).status_code
        == 200
    )
    assert _create_project_token(server, project["id"], owner_token).status_code == 201


def test_group_owners_create_service_accounts_only_while_the_setting_allows(
    server: LiveServer, factory: Factory, restore: None
) -> None:
    _owner, owner_token = factory.user_with_token()
    group = factory.group(token=owner_token)
    path = f"/groups/{group['id']}/service_accounts"
    # Off by default, as in GitLab: only admins create them.
    refused = server.request("POST", path, token=owner_token, json={})
    assert refused.status_code == 400
    assert (
        "User does not have permission to create a service account in this group."
        in refused.json()["message"]
    )
    assert _put(server, allow_top_level_group_owners_to_create_service_accounts=True).status_code == 200
    assert server.request("POST", path, token=owner_token, json={}).status_code == 201
    assert _put(server, allow_top_level_group_owners_to_create_service_accounts=False).status_code == 200
    assert server.request("POST", path, token=owner_token, json={}).status_code == 400
    # Admins still may.
    assert server.root("POST", path, json={}).status_code == 201


def test_the_personal_projects_limit_holds(server: LiveServer, factory: Factory) -> None:
    # GitLab's limit_reached: a user holds at most projects_limit projects in their own namespace
    # (0: none at all); group projects do not count and are not limited.
    user, token = factory.user_with_token(projects_limit=1)
    group = factory.group()
    factory.member("groups", group["id"], user["id"], 40)
    gl = gitlab.Gitlab(server.url, private_token=token)
    gl.projects.create({"name": uid("first")})
    with pytest.raises(gitlab.GitlabCreateError) as second:
        gl.projects.create({"name": uid("second")})
    assert second.value.response_code == 400
    assert second.value.response_body
    assert json.loads(second.value.response_body) == {
        "message": {
            "limit_reached": [
                "Your project limit is 1 projects! Please contact your administrator to increase it"
            ]
        }
    }
    assert gl.projects.create({"name": uid("in-group"), "namespace_id": group["id"]}).id
    assert server.root("PUT", f"/users/{user['id']}", json={"projects_limit": 0}).status_code == 200
    refused = server.request("POST", "/projects", token=token, json={"name": uid("none")})
    assert refused.status_code == 400
    assert refused.json() == {
        "message": {
            "limit_reached": [
                "Personal project creation is not allowed. Please contact your administrator with questions"
            ]
        }
    }
    owned = server.request("GET", f"/users/{user['id']}/projects", token=token).json()
    assert len(owned) == 1
