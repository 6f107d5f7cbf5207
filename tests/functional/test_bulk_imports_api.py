"""GitLab's direct transfer API (/bulk_imports) through a live server and python-gitlab: the
setting that gates it, starting a migration (the source checked first: reachable, the token's
scope, the paths), GitLab's 400s and 422s, reading one's migrations and their entities, cancel,
the rate limit. The copying itself is the bulk-imports job's (test_direct_transfer_job.py,
test_direct_transfer_proof.py): this module's server runs no jobs, so imports stay ``created``.

The server is its own source (a keycrew reads another through its REST API v4 alone), which is why
its local-network setting is turned on; one test turns it off to see the URL refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests
from sqlalchemy import func, select

from keycrew.audit.models import AuditEvent
from keycrew.imports.bulk import BulkImport
from tests.support.live import Factory, LiveServer, start_server, uid

SCOPE_FAILURE = (
    "Import aborted as the provided personal access token does not have the required 'api' scope or "
    "is no longer valid."
)


@pytest.fixture(scope="module")
def node(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    nodes = start_server(server.backend, tmp_path_factory.mktemp("bulk-imports"))
    live = next(nodes)
    settings = {"bulk_import_enabled": True, "allow_local_requests_from_web_hooks_and_services": True}
    assert live.root("PUT", "/application/settings", json=settings).status_code == 200
    try:
        yield live
    finally:
        nodes.close()


@pytest.fixture(scope="module")
def make(node: LiveServer) -> Factory:
    return Factory(node)


@pytest.fixture(scope="module")
def source(node: LiveServer, make: Factory) -> dict[str, Any]:
    """A source group with a project, read with an `api` token of its Owner."""
    owner, token = make.user_with_token(scopes=["api"])
    group = make.group(token=token, path=uid("src"))
    project = make.project(token=token, namespace_id=group["id"], path="app")
    return {"owner": owner, "token": token, "group": group, "project": project}


def body(node: LiveServer, token: str, *entities: dict[str, Any]) -> dict[str, Any]:
    return {"configuration": {"url": node.url, "access_token": token}, "entities": list(entities)}


def group_entity(path: str, slug: str | None = None, namespace: str = "", **extra: Any) -> dict[str, Any]:
    entity = {"source_type": "group_entity", "source_full_path": path, "destination_namespace": namespace}
    entity["destination_slug"] = slug or uid("dst")
    return entity | extra


def all_imports(node: LiveServer) -> int:
    with node.runtime.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(BulkImport)) or 0)


def post(node: LiveServer, token: str, payload: dict[str, Any]) -> requests.Response:
    return node.request("POST", "/bulk_imports", token=token, json=payload)


def test_every_route_is_404_while_the_setting_is_off(server: LiveServer, factory: Factory) -> None:
    # The session server keeps GitLab's default (off).
    _user, token = factory.user_with_token()
    for method, path in (
        ("GET", "/bulk_imports"),
        ("GET", "/bulk_imports/entities"),
        ("GET", "/bulk_imports/1"),
        ("GET", "/bulk_imports/1/entities"),
        ("GET", "/bulk_imports/1/entities/1"),
        ("GET", "/bulk_imports/1/entities/1/failures"),
        ("POST", "/bulk_imports/1/cancel"),
    ):
        response = server.request(method, path, token=token)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json() == {"message": "404 Not Found"}
    response = post(server, token, body(server, token, group_entity("x")))
    assert response.status_code == 404


def test_python_gitlab_starts_a_migration_and_reads_it(node: LiveServer, source: dict[str, Any]) -> None:
    gl = node.gl(source["token"])
    slug = uid("copy")
    started = gl.bulk_imports.create(
        body(node, source["token"], group_entity(source["group"]["full_path"], slug))
    )
    assert started.status == "created"
    assert started.source_type == "gitlab"
    assert started.source_url == node.url
    assert started.has_failures is False
    again = gl.bulk_imports.get(started.id)
    assert again.status == "created"
    (entity,) = again.entities.list()
    assert entity.bulk_import_id == started.id
    assert entity.entity_type == "group"
    assert entity.source_full_path == source["group"]["full_path"]
    assert entity.destination_slug == entity.destination_name == slug
    assert entity.destination_full_path == slug
    assert entity.destination_namespace == ""
    assert entity.status == "created"
    assert entity.failures == []
    assert entity.migrate_projects is True
    assert entity.migrate_memberships is True
    assert again.entities.get(entity.id).source_full_path == source["group"]["full_path"]
    assert started.id in [found.id for found in gl.bulk_imports.list(status="created", get_all=True)]
    assert entity.id in [found.id for found in gl.bulk_import_entities.list(get_all=True)]
    assert gl.bulk_imports.list(status="finished") == []
    # The token is kept sealed, never in clear.
    with node.runtime.sessions() as db:
        row = db.get(BulkImport, started.id)
        assert row is not None
        assert row.access_token_sealed
        assert source["token"] not in row.access_token_sealed


def test_a_project_and_deprecated_destination_name_and_form_fields(
    node: LiveServer, source: dict[str, Any]
) -> None:
    token = source["token"]
    project_entity = {
        "source_type": "project_entity",
        "source_full_path": source["project"]["path_with_namespace"],
        "destination_namespace": source["group"]["full_path"],
        "destination_name": "app-copy",
        "migrate_memberships": False,
    }
    response = post(node, token, body(node, token, project_entity))
    assert response.status_code == 201, response.text
    entities = node.request("GET", f"/bulk_imports/{response.json()['id']}/entities", token=token).json()
    assert entities[0]["entity_type"] == "project"
    assert entities[0]["destination_full_path"] == f"{source['group']['full_path']}/app-copy"
    assert entities[0]["migrate_memberships"] is False
    # GitLab's form-encoded recipe, one entity.
    form = {
        "configuration[url]": node.url,
        "configuration[access_token]": token,
        "entities[][source_type]": "group_entity",
        "entities[][source_full_path]": source["group"]["full_path"],
        "entities[][destination_slug]": uid("form"),
        "entities[][destination_namespace]": "",
    }
    response = node.request("POST", "/bulk_imports", token=token, data=form)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.pop("configuration"), "configuration is missing"),
        (lambda b: b["configuration"].pop("access_token"), "configuration[access_token] is missing"),
        (lambda b: b.pop("entities"), "entities is missing"),
        (lambda b: b["entities"][0].update(source_type="snippet"), "does not have a valid value"),
        (
            lambda b: b["entities"][0].update(source_full_path="https://x.example/a"),
            "must be a relative path",
        ),
        (lambda b: b["entities"][0].update(destination_name="other"), "are mutually exclusive"),
        (lambda b: b["entities"][0].pop("destination_slug"), "at least one parameter must be provided"),
        (lambda b: b["entities"][0].pop("destination_namespace"), "destination_namespace] is missing"),
        (lambda b: b["entities"][0].update(destination_slug="bad slug!"), "destination_slug]"),
        (lambda b: b["entities"][0].update(migrate_projects="perhaps"), "migrate_projects] is invalid"),
    ],
)
def test_malformed_requests_are_400(
    node: LiveServer, source: dict[str, Any], change: Any, message: str
) -> None:
    payload = body(node, source["token"], group_entity(source["group"]["full_path"]))
    change(payload)
    response = post(node, source["token"], payload)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_refusals_are_gitlabs_422(node: LiveServer, make: Factory, source: dict[str, Any]) -> None:
    token = source["token"]
    group_path = source["group"]["full_path"]
    before = all_imports(node)

    def refused(payload: dict[str, Any], caller: str | None = None) -> str:
        # A new caller each time: GitLab allows six new migrations a minute per user.
        if caller is None:
            _caller, caller = make.user_with_token(scopes=["api"])
        response = post(node, caller, payload)
        assert response.status_code == 422, response.text
        return str(response.json()["message"])

    # A token the source refuses, or one without api/read_api.
    bad = body(node, token, group_entity(group_path))
    bad["configuration"]["access_token"] = "glpat-" + "x" * 20
    assert refused(bad) == SCOPE_FAILURE
    _user, narrow = make.user_with_token(scopes=["read_user"])
    assert refused(body(node, narrow, group_entity(group_path))) == SCOPE_FAILURE
    # A source path that does not exist.
    assert "was not found" in refused(body(node, token, group_entity("no-such-group-" + uid())))
    # A destination that exists, or repeated in the same request.
    assert refused(body(node, token, group_entity(group_path, slug=group_path))) == (
        f"Import aborted as '{group_path}' already exists. Change the destination and try again."
    )
    twice = uid("twice")
    assert "already exists" in refused(
        body(node, token, group_entity(group_path, slug=twice), group_entity(group_path, slug=twice))
    )
    # A destination namespace that does not exist, or where the user may not create.
    assert refused(body(node, token, group_entity(group_path, namespace="nowhere-" + uid()))).startswith(
        "Import failed. Destination 'nowhere-"
    )
    _other_owner, other_token = make.user_with_token(scopes=["api"])
    foreign = make.group(token=other_token, path=uid("foreign"))
    assert refused(body(node, token, group_entity(group_path, namespace=foreign["full_path"])), token) == (
        f"Import failed. Destination '{foreign['full_path']}' is invalid, or you don't have permission."
    )
    # From this very instance, a group into itself (its copy would be one of its own subgroups).
    into_itself = body(node, token, group_entity(group_path, slug="inside", namespace=group_path))
    assert refused(into_itself) == (
        "Import failed. Destination cannot be a subgroup of the source group. "
        "Change the destination and try again."
    )
    # A source that does not answer.
    unreachable = body(node, token, group_entity(group_path))
    unreachable["configuration"]["url"] = "http://127.0.0.1:9"
    assert "cannot be reached" in refused(unreachable)
    # Nothing was written by any refusal.
    assert all_imports(node) == before


def test_a_local_source_is_refused_unless_allowed(node: LiveServer, source: dict[str, Any]) -> None:
    setting = "allow_local_requests_from_web_hooks_and_services"
    assert node.root("PUT", "/application/settings", json={setting: False}).status_code == 200
    try:
        response = post(node, source["token"], body(node, source["token"], group_entity("anything")))
        assert response.status_code == 422
        assert response.json()["message"].startswith("URL is blocked: ")
    finally:
        assert node.root("PUT", "/application/settings", json={setting: True}).status_code == 200


def test_others_imports_are_hidden_and_cancel_is_the_owners_or_an_admins(
    node: LiveServer, make: Factory, source: dict[str, Any]
) -> None:
    owner, token = make.user_with_token(scopes=["api"])
    read_with = source["token"]  # the source's token; `token` is the caller's on this instance
    created = post(node, token, body(node, read_with, group_entity(source["group"]["full_path"]))).json()
    _stranger, stranger_token = make.user_with_token(scopes=["api"])
    assert node.request("GET", f"/bulk_imports/{created['id']}", token=stranger_token).status_code == 404
    assert (
        node.request("GET", f"/bulk_imports/{created['id']}/entities", token=stranger_token).status_code
        == 404
    )
    listed = node.request("GET", "/bulk_imports/entities", token=stranger_token).json()
    assert all(entity["bulk_import_id"] != created["id"] for entity in listed)
    assert (
        node.request("POST", f"/bulk_imports/{created['id']}/cancel", token=stranger_token).status_code == 403
    )
    assert node.request("POST", "/bulk_imports/999999/cancel", token=token).status_code == 404
    response = node.request("POST", f"/bulk_imports/{created['id']}/cancel", token=token)
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    entities = node.request("GET", f"/bulk_imports/{created['id']}/entities", token=token).json()
    assert [entity["status"] for entity in entities] == ["canceled"]
    with node.runtime.sessions() as db:
        row = db.get(BulkImport, created["id"])
        assert row is not None
        assert row.access_token_sealed is None
    # An admin may cancel anyone's; cancelling an ended import leaves it as it is.
    other = post(node, token, body(node, read_with, group_entity(source["group"]["full_path"]))).json()
    assert node.root("POST", f"/bulk_imports/{other['id']}/cancel").json()["status"] == "canceled"
    assert node.root("POST", f"/bulk_imports/{other['id']}/cancel").status_code == 200
    with node.runtime.sessions() as db:
        events = db.execute(
            select(AuditEvent.event_name, AuditEvent.author_name).where(
                AuditEvent.target_type == "BulkImport", AuditEvent.target_id.in_([created["id"], other["id"]])
            )
        ).all()
    assert sorted(events) == sorted(
        [
            ("import.bulk_import_created", owner["username"]),
            ("import.bulk_import_created", owner["username"]),
            ("import.bulk_import_canceled", owner["username"]),
            ("import.bulk_import_canceled", "root"),
        ]
    )


def test_anonymous_is_401_and_ids_are_checked(node: LiveServer, source: dict[str, Any]) -> None:
    assert requests.get(node.api("/bulk_imports"), timeout=10).status_code == 401
    assert node.request("GET", "/bulk_imports/abc", token=source["token"]).status_code == 400
    assert node.request("GET", "/bulk_imports/0", token=source["token"]).status_code == 404
    gl = node.gl(source["token"])
    with pytest.raises(gitlab.GitlabGetError) as raised:
        gl.bulk_imports.get(987654)
    assert raised.value.response_code == 404


def test_six_new_migrations_a_minute(
    node: LiveServer, make: Factory, source: dict[str, Any], tmp_path: Path
) -> None:
    _user, token = make.user_with_token(scopes=["api"])
    # Each attempt is refused after the throttle counted it (the destination is taken), so no
    # import is written; the seventh is throttled.
    payload = body(node, token, group_entity(source["group"]["full_path"], slug=source["group"]["full_path"]))
    codes = [post(node, token, payload).status_code for _ in range(7)]
    assert codes == [422] * 6 + [429]


def test_the_gitlab_cli_reads_migrations(node: LiveServer, make: Factory, source: dict[str, Any]) -> None:
    _caller, token = make.user_with_token(scopes=["api"])
    payload = body(node, source["token"], group_entity(source["group"]["full_path"]))
    created = post(node, token, payload).json()
    listed = node.gitlab_cli("-o", "json", "bulk-import", "list", token=token)
    assert listed.returncode == 0, listed.stderr
    assert [item["id"] for item in json.loads(listed.stdout)] == [created["id"]]
    shown = node.gitlab_cli("-o", "json", "bulk-import", "get", "--id", str(created["id"]), token=token)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["status"] == "created"
    entities = node.gitlab_cli(
        "-o", "json", "bulk-import-entity", "list", "--bulk-import-id", str(created["id"]), token=token
    )
    assert entities.returncode == 0, entities.stderr
    (entity,) = json.loads(entities.stdout)
    assert entity["source_full_path"] == source["group"]["full_path"]
    every = node.gitlab_cli("-o", "json", "bulk-import-all-entity", "list", token=token)
    assert [item["id"] for item in json.loads(every.stdout)] == [entity["id"]]
    missing = node.gitlab_cli("bulk-import", "get", "--id", "987654", token=token)
    assert missing.returncode != 0
    assert "404" in missing.stderr
