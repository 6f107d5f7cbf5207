"""Default compliance frameworks: a top-level group's Owners manage its frameworks on the group's
settings page; GitLab Admin Bot applies the default one to each project created anywhere below the
group, in the creating transaction (audited as its act); the project entity lists the names in
``compliance_frameworks`` (``[]`` if none), in GET /projects/:id and in every project listing."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy import select

from keycrew.access.compliance import ComplianceFramework
from keycrew.audit.models import AuditEvent
from keycrew.identity.models import User
from keycrew.identity.types import UserType
from tests.support.live import Factory, LiveServer, uid
from tests.support.web import csrf_of, signed_in

PASSWORD = "a-long-password-1"
MAINTAINER, OWNER = 40, 50
SETTINGS = "/-/settings/compliance_frameworks"


def _page(server: LiveServer, http: requests.Session, group_path: str) -> requests.Response:
    return http.get(f"{server.url}/groups/{group_path}{SETTINGS}", timeout=30)


def _post(
    server: LiveServer, http: requests.Session, group_path: str, suffix: str = "", **fields: Any
) -> requests.Response:
    page = _page(server, http, group_path)
    assert page.status_code == 200, page.text
    return http.post(
        f"{server.url}/groups/{group_path}{SETTINGS}{suffix}",
        data={"authenticity_token": csrf_of(page.text), **fields},
        timeout=30,
        allow_redirects=False,
    )


def _framework_ids(server: LiveServer, group_id: int) -> dict[str, int]:
    with server.runtime.sessions() as db:
        rows = db.execute(
            select(ComplianceFramework.name, ComplianceFramework.id).where(
                ComplianceFramework.namespace_id == group_id
            )
        ).all()
    return {str(name): int(framework_id) for name, framework_id in rows}


def _owner_and_group(factory: Factory, server: LiveServer) -> tuple[dict[str, Any], str, dict[str, Any]]:
    owner, token = factory.user_with_token()
    group = factory.group(token=token)
    return owner, token, group


def _frameworks_of(server: LiveServer, project_id: int) -> list[str]:
    response = server.root("GET", f"/projects/{project_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["compliance_frameworks"])


def test_the_default_framework_is_applied_by_admin_bot_to_new_projects_below_the_group(
    server: LiveServer, factory: Factory
) -> None:
    owner, token, group = _owner_and_group(factory, server)
    http, _csrf = signed_in(server.url, owner["username"], PASSWORD)
    before = factory.project(namespace_id=group["id"])
    assert _frameworks_of(server, before["id"]) == []

    sox = uid("SOX")
    created = _post(
        server,
        http,
        group["full_path"],
        name=sox,
        description="Sarbanes-Oxley",
        color="#AA3300",
        default="true",
    )
    assert created.status_code == 303, created.text
    listing = _page(server, http, group["full_path"])
    assert sox in listing.text
    assert "#aa3300" in listing.text

    sub = server.request(
        "POST", "/groups", token=token, json={"name": uid("s"), "path": uid("s"), "parent_id": group["id"]}
    )
    assert sub.status_code == 201, sub.text
    # Created by its Owner through python-gitlab, in a subgroup: the root group's default applies.
    gl = server.gl(token)
    project = gl.projects.create({"name": uid("p"), "namespace_id": sub.json()["id"]})
    assert project.compliance_frameworks == [sox]
    assert _frameworks_of(server, project.id) == [sox]
    # Projects made before the default keep what they had; projects elsewhere have none.
    assert _frameworks_of(server, before["id"]) == []
    elsewhere = factory.project()
    assert _frameworks_of(server, elsewhere["id"]) == []

    # Lists show it too.
    listed = server.root("GET", f"/groups/{group['id']}/projects", params={"include_subgroups": "true"})
    assert listed.status_code == 200, listed.text
    by_id = {p["id"]: p["compliance_frameworks"] for p in listed.json()}
    assert by_id[project.id] == [sox]
    assert by_id[before["id"]] == []
    detail = server.root("GET", f"/groups/{sub.json()['id']}")
    assert {p["id"]: p["compliance_frameworks"] for p in detail.json()["projects"]} == {project.id: [sox]}
    own = server.request("GET", "/projects", token=token, params={"membership": "true", "per_page": 100})
    assert {p["id"]: p["compliance_frameworks"] for p in own.json()}[project.id] == [sox]

    with server.runtime.sessions() as db:
        bot = db.scalar(select(User.id).where(User.user_type == int(UserType.ADMIN_BOT)))
        applied = db.scalars(
            select(AuditEvent).where(
                AuditEvent.event_name == "compliance_framework.applied", AuditEvent.entity_id == project.id
            )
        ).all()
    assert [(e.author_id, e.entity_type, e.target_details) for e in applied] == [(bot, "Project", sox)]


def test_owners_edit_replace_the_default_and_delete_frameworks(server: LiveServer, factory: Factory) -> None:
    owner, _token, group = _owner_and_group(factory, server)
    http, _csrf = signed_in(server.url, owner["username"], PASSWORD)
    first, second = uid("ISO"), uid("HIPAA")
    assert (
        _post(
            server, http, group["full_path"], name=first, description="d", color="#123456", default="true"
        ).status_code
        == 303
    )
    assert (
        _post(server, http, group["full_path"], name=second, description="d", color="#654321").status_code
        == 303
    )
    ids = _framework_ids(server, group["id"])

    # Setting the second as default takes the flag off the first.
    made = _post(server, http, group["full_path"], f"/{ids[second]}/default")
    assert made.status_code == 303, made.text
    project = factory.project(namespace_id=group["id"])
    assert _frameworks_of(server, project["id"]) == [second]

    renamed = uid("HIPAA2")
    edited = _post(
        server,
        http,
        group["full_path"],
        f"/{ids[second]}",
        name=renamed,
        description="health",
        color="#00ff00",
        default="true",
    )
    assert edited.status_code == 303, edited.text
    assert _frameworks_of(server, project["id"]) == [renamed]

    deleted = _post(server, http, group["full_path"], f"/{ids[second]}/delete")
    assert deleted.status_code == 303, deleted.text
    assert _frameworks_of(server, project["id"]) == []
    # No default left: new projects get none.
    assert _frameworks_of(server, factory.project(namespace_id=group["id"])["id"]) == []


def test_bad_frameworks_are_refused_with_gitlabs_messages(server: LiveServer, factory: Factory) -> None:
    owner, _token, group = _owner_and_group(factory, server)
    http, _csrf = signed_in(server.url, owner["username"], PASSWORD)
    name = uid("PCI")
    assert (
        _post(server, http, group["full_path"], name=name, description="d", color="#abcdef").status_code
        == 303
    )
    taken = _post(server, http, group["full_path"], name=name, description="d", color="#abcdef")
    assert taken.status_code in (400, 422)
    assert "Name has already been taken" in taken.text
    bad = _post(server, http, group["full_path"], name=uid("x"), description="", color="red")
    assert bad.status_code in (400, 422)
    assert "Description can&#39;t be blank" in bad.text or "Description can't be blank" in bad.text
    assert "Color must be a valid color code" in bad.text
    assert list(_framework_ids(server, group["id"])) == [name]
    unknown = _post(server, http, group["full_path"], "/999999999/delete")
    assert unknown.status_code == 404


def test_only_owners_of_the_top_level_group_manage_frameworks(server: LiveServer, factory: Factory) -> None:
    owner, token, group = _owner_and_group(factory, server)
    maintainer = factory.user()
    factory.member("groups", group["id"], maintainer["id"], MAINTAINER)
    http, _csrf = signed_in(server.url, maintainer["username"], PASSWORD)
    assert _page(server, http, group["full_path"]).status_code == 403
    outsider = factory.user()
    http_outsider, _ = signed_in(server.url, outsider["username"], PASSWORD)
    assert _page(server, http_outsider, group["full_path"]).status_code == 404

    # A subgroup's page points to the top-level group's.
    sub = server.request(
        "POST", "/groups", token=token, json={"name": uid("s"), "path": uid("s"), "parent_id": group["id"]}
    )
    assert sub.status_code == 201, sub.text
    owner_http, _ = signed_in(server.url, owner["username"], PASSWORD)
    sub_page = _page(server, owner_http, sub.json()["full_path"])
    assert sub_page.status_code == 200
    assert f"/groups/{group['full_path']}{SETTINGS}" in sub_page.text
    refused = owner_http.post(
        f"{server.url}/groups/{sub.json()['full_path']}{SETTINGS}",
        data={
            "authenticity_token": csrf_of(sub_page.text),
            "name": "x",
            "description": "d",
            "color": "#000000",
        },
        timeout=30,
        allow_redirects=False,
    )
    assert refused.status_code == 403


def test_a_project_leaving_its_top_level_group_loses_its_frameworks(
    server: LiveServer, factory: Factory
) -> None:
    owner, token, group = _owner_and_group(factory, server)
    http, _csrf = signed_in(server.url, owner["username"], PASSWORD)
    name = uid("GDPR")
    assert (
        _post(
            server, http, group["full_path"], name=name, description="d", color="#abc", default="true"
        ).status_code
        == 303
    )
    sub = server.request(
        "POST", "/groups", token=token, json={"name": uid("s"), "path": uid("s"), "parent_id": group["id"]}
    )
    assert sub.status_code == 201, sub.text
    staying = factory.project(token=token, namespace_id=group["id"])
    leaving = factory.project(token=token, namespace_id=group["id"])
    assert _frameworks_of(server, staying["id"]) == [name]

    # Within the same top-level group it keeps it (python-gitlab's transfer).
    gl = server.gl(token)
    gl.projects.get(staying["id"]).transfer(sub.json()["id"])
    assert _frameworks_of(server, staying["id"]) == [name]

    elsewhere = factory.group(token=token)
    moved = server.request(
        "PUT", f"/projects/{leaving['id']}/transfer", token=token, json={"namespace": elsewhere["id"]}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["compliance_frameworks"] == []
    assert _frameworks_of(server, leaving["id"]) == []
    with server.runtime.sessions() as db:
        transferred = db.scalars(
            select(AuditEvent).where(
                AuditEvent.event_name == "project.transferred", AuditEvent.entity_id == leaving["id"]
            )
        ).all()
    assert [e.details.get("compliance_frameworks_removed") for e in transferred] == [[name]]

    # A subgroup moved to the top level takes its projects out of the group: they lose it too.
    made_top = server.request("POST", f"/groups/{sub.json()['id']}/transfer", token=token, json={})
    assert made_top.status_code == 201, made_top.text
    assert _frameworks_of(server, staying["id"]) == []
