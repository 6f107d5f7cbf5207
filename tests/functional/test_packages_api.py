"""GitLab's packages API over real PyPI uploads: python-gitlab lists, reads and deletes packages."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import gitlab
import pytest
import requests
from sqlalchemy import select

from keycrew.audit.models import AuditEvent
from tests.functional.test_pypi import get, make_wheel, pypi, stored_paths, twine_upload, upload
from tests.support.live import Factory, LiveServer, uid

GUEST, REPORTER, DEVELOPER, MAINTAINER = 10, 20, 30, 40


@pytest.fixture
def dist_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "dist"
    directory.mkdir()
    return directory


def publish(server: LiveServer, project_id: int, dist: Path, name: str, version: str) -> None:
    response = upload(server, project_id, ("__token__", server.root_token), dist, name=name, version=version)
    assert response.status_code == 201, response.text


def events(server: LiveServer, name: str, project_id: int) -> list[AuditEvent]:
    with server.runtime.sessions() as db:
        return list(
            db.scalars(
                select(AuditEvent)
                .where(AuditEvent.event_name == name, AuditEvent.entity_id == project_id)
                .order_by(AuditEvent.id)
            ).all()
        )


def test_python_gitlab_lists_reads_and_deletes_packages_uploaded_with_twine(
    server: LiveServer, factory: Factory, gl: gitlab.Gitlab, dist_dir: Path
) -> None:
    pid = factory.project(visibility="private")["id"]
    name = uid("pkg")
    for version in ("1.0.0", "1.1.0"):
        result = twine_upload(
            server, pid, "__token__", server.root_token, make_wheel(dist_dir, name, version)
        )
        assert result.returncode == 0, result.stdout + result.stderr
    project = gl.projects.get(pid)

    listed = project.packages.list(get_all=True)
    assert [(p.name, p.version, p.package_type, p.status) for p in listed] == [
        (name, "1.0.0", "pypi", "default"),
        (name, "1.1.0", "pypi", "default"),
    ]
    first = listed[0]
    assert first._links["web_path"] == f"/{project.path_with_namespace}/-/packages/{first.id}"
    assert first._links["delete_api_path"] == f"{server.url}/api/v4/projects/{pid}/packages/{first.id}"
    assert first.tags == []
    assert first.created_at.endswith("Z")
    assert "versions" not in first.attributes

    one = project.packages.get(first.id)
    assert one.name == name
    assert [v["version"] for v in one.versions] == ["1.1.0"]
    files = one.package_files.list(get_all=True)
    assert len(files) == 1
    wheel = dist_dir / files[0].file_name
    assert files[0].package_id == first.id
    assert files[0].size == wheel.stat().st_size

    assert files[0].file_sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert files[0].file_md5 == hashlib.md5(wheel.read_bytes(), usedforsecurity=False).hexdigest()
    assert files[0].file_sha1 is None
    assert len(stored_paths(server, pid)) == 2

    # Deleting one file: the package stays, the file leaves the disk and the index.
    one.package_files.delete(files[0].id)
    assert one.package_files.list(get_all=True) == []
    assert len(stored_paths(server, pid)) == 1
    deleted_file = events(server, "package_file.deleted", pid)
    assert [e.target_details for e in deleted_file] == [files[0].file_name]

    # Deleting a package: gone from the API, the simple index and the disk.
    second = project.packages.get(listed[1].id, lazy=True)
    second.delete()
    with pytest.raises(gitlab.GitlabGetError) as missing:
        project.packages.get(listed[1].id)
    assert missing.value.response_code == 404
    assert stored_paths(server, pid) == []
    page = get(server, pypi(server, pid, f"/simple/{name}"), ("__token__", server.root_token))
    assert page.status_code == 404
    deleted = events(server, "package.deleted", pid)
    assert len(deleted) == 1
    assert deleted[0].details["package_version"] == "1.1.0"
    assert deleted[0].details["file_names"] == [f"{name.replace('-', '_')}-1.1.0-py3-none-any.whl"]
    # The other version is still installable from the index.
    assert project.packages.list(get_all=True)[0].id == first.id


def test_filters_ordering_and_pagination(
    server: LiveServer, factory: Factory, gl: gitlab.Gitlab, dist_dir: Path
) -> None:
    pid = factory.project()["id"]
    stem = uid("flt")
    names = [f"{stem}-b", f"{stem}-a", f"{stem}-c"]
    for name, version in zip(names, ("2.0", "1.0", "3.0"), strict=True):
        publish(server, pid, make_wheel(dist_dir, name, version), name, version)
    project = gl.projects.get(pid)

    def listed(**filters: Any) -> list[str]:
        return [p.name for p in project.packages.list(get_all=True, **filters)]

    assert listed() == names
    assert listed(order_by="name") == sorted(names)
    assert listed(order_by="version", sort="desc") == [f"{stem}-c", f"{stem}-b", f"{stem}-a"]
    assert listed(sort="desc") == names[::-1]
    assert listed(package_name=f"{stem}-A".upper()) == [f"{stem}-a"]
    assert listed(package_version="3.0") == [f"{stem}-c"]
    assert listed(package_type="pypi", status="default") == names
    assert listed(package_type="npm") == []
    assert listed(status="hidden") == []
    assert listed(include_versionless=True) == names

    response = server.root("GET", f"/projects/{pid}/packages", params={"per_page": 2, "page": 1})
    assert response.status_code == 200
    assert [p["name"] for p in response.json()] == names[:2]
    assert response.headers["X-Total"] == "3"
    assert response.headers["X-Total-Pages"] == "2"
    assert response.headers["X-Next-Page"] == "2"
    assert 'rel="next"' in response.headers["Link"]
    last = server.root("GET", f"/projects/{pid}/packages", params={"per_page": 2, "page": 2})
    assert [p["name"] for p in last.json()] == names[2:]
    assert last.headers["X-Next-Page"] == ""


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"package_type": "docker"}, "package_type does not have a valid value"),
        ({"order_by": "size"}, "order_by does not have a valid value"),
        ({"order_by": "project_path"}, "order_by does not have a valid value"),
        ({"sort": "up"}, "sort does not have a valid value"),
        ({"status": "gone"}, "status does not have a valid value"),
        ({"include_versionless": "maybe"}, "include_versionless is invalid"),
    ],
)
def test_bad_filter_values_are_400(
    server: LiveServer, factory: Factory, params: dict[str, str], message: str
) -> None:
    pid = factory.project()["id"]
    response = server.root("GET", f"/projects/{pid}/packages", params=params)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": message}


def test_bad_ids_and_missing_packages(server: LiveServer, factory: Factory, dist_dir: Path) -> None:
    pid = factory.project()["id"]
    other = factory.project()["id"]
    name = uid("ids")
    publish(server, other, make_wheel(dist_dir, name), name, "1.0.0")
    foreign = server.root("GET", f"/projects/{other}/packages").json()[0]["id"]
    assert server.root("GET", f"/projects/{pid}/packages/abc").json() == {"error": "package_id is invalid"}
    assert server.root("GET", f"/projects/{pid}/packages/{foreign}").status_code == 404
    assert server.root("DELETE", f"/projects/{pid}/packages/{foreign}").status_code == 404
    assert server.root("GET", f"/projects/{pid}/packages/{foreign}/package_files").status_code == 404
    assert server.root("DELETE", f"/projects/{other}/packages/{foreign}/package_files/0").status_code == 404
    groups = server.root("GET", "/groups/999999999/packages")
    assert groups.status_code == 404
    assert groups.json() == {"message": "404 Group Not Found"}
    # Nothing was deleted by the refused calls.
    assert len(server.root("GET", f"/projects/{other}/packages/{foreign}/package_files").json()) == 1


def test_permissions_by_role_and_visibility(server: LiveServer, factory: Factory, dist_dir: Path) -> None:
    private = factory.project(visibility="private")["id"]
    public = factory.project(visibility="public")["id"]
    name = uid("perm")
    for pid in (private, public):
        publish(server, pid, make_wheel(dist_dir, name), name, "1.0.0")
    tokens: dict[int, str] = {}
    for level in (GUEST, REPORTER, DEVELOPER, MAINTAINER):
        user, token = factory.user_with_token(["api"])
        factory.member("projects", private, user["id"], level)
        tokens[level] = token
    _, stranger = factory.user_with_token(["api"])

    def call(method: str, pid: int, rest: str = "", token: str | None = None) -> requests.Response:
        return server.request(method, f"/projects/{pid}/packages{rest}", token=token)

    package_id = call("GET", private, token=server.root_token).json()[0]["id"]
    one = f"/{package_id}"

    guest = call("GET", private, token=tokens[GUEST])
    assert guest.status_code == 403
    assert guest.json() == {"message": "403 Forbidden"}
    assert call("GET", private, one, tokens[GUEST]).status_code == 403
    assert call("GET", private, token=stranger).json() == {"message": "404 Project Not Found"}
    assert call("GET", private).status_code == 404  # anonymous: the project is not there for them
    reporter = call("GET", private, token=tokens[REPORTER]).json()
    assert reporter[0]["id"] == package_id
    assert "delete_api_path" not in reporter[0]["_links"]
    assert call("GET", private, one + "/package_files", tokens[REPORTER]).status_code == 200
    for level in (REPORTER, DEVELOPER):
        assert call("DELETE", private, one, tokens[level]).status_code == 403
    file_id = call("GET", private, one + "/package_files", tokens[REPORTER]).json()[0]["id"]
    assert call("DELETE", private, f"{one}/package_files/{file_id}", tokens[DEVELOPER]).status_code == 403
    assert "delete_api_path" in call("GET", private, one, tokens[MAINTAINER]).json()["_links"]

    # A read_api token reads but never deletes.
    user, reader = factory.user_with_token(["read_api"])
    factory.member("projects", private, user["id"], MAINTAINER)
    assert call("GET", private, token=reader).status_code == 200
    assert call("DELETE", private, one, reader).status_code == 403

    # A public project's packages are readable by anyone, deletable by its Maintainers only.
    anonymous = call("GET", public)
    assert anonymous.status_code == 200
    assert "delete_api_path" not in anonymous.json()[0]["_links"]
    public_id = anonymous.json()[0]["id"]
    assert call("GET", public, f"/{public_id}/package_files").status_code == 200
    assert call("DELETE", public, f"/{public_id}").status_code == 401
    assert call("DELETE", public, f"/{public_id}", stranger).status_code == 403

    assert call("DELETE", private, one, tokens[MAINTAINER]).status_code == 204
    assert call("GET", private, token=tokens[MAINTAINER]).json() == []
    assert call("DELETE", private, one, tokens[MAINTAINER]).status_code == 404


def test_group_packages_follow_subgroups_and_project_visibility(
    server: LiveServer, factory: Factory, dist_dir: Path
) -> None:
    group = factory.group(visibility="private")
    sub = factory.group(parent_id=group["id"], visibility="private")
    top = factory.project(namespace_id=group["id"], visibility="private")
    below = factory.project(namespace_id=sub["id"], visibility="private")
    stem = uid("grp")
    publish(server, top["id"], make_wheel(dist_dir, f"{stem}-top"), f"{stem}-top", "1.0.0")
    publish(server, below["id"], make_wheel(dist_dir, f"{stem}-below"), f"{stem}-below", "1.0.0")
    gl = server.gl()

    listed = gl.groups.get(group["id"]).packages.list(get_all=True)
    assert [(p.name, p.project_id, p.project_path) for p in listed] == [
        (f"{stem}-top", top["id"], top["path_with_namespace"]),
        (f"{stem}-below", below["id"], below["path_with_namespace"]),
    ]
    only_top = gl.groups.get(group["id"]).packages.list(get_all=True, exclude_subgroups=True)
    assert [p.name for p in only_top] == [f"{stem}-top"]
    by_path = gl.groups.get(group["id"]).packages.list(get_all=True, order_by="project_path", sort="desc")
    assert [p.project_path for p in by_path] == sorted(
        [top["path_with_namespace"], below["path_with_namespace"]], reverse=True
    )

    # A Reporter of one project only sees that project's packages through the subgroup...
    user, token = factory.user_with_token(["read_api"])
    factory.member("groups", sub["id"], user["id"], REPORTER)
    mine = server.request("GET", f"/groups/{sub['id']}/packages", token=token)
    assert [p["name"] for p in mine.json()] == [f"{stem}-below"]
    # ...and may see the parent group but not read its packages.
    parent = server.request("GET", f"/groups/{group['id']}/packages", token=token)
    assert parent.status_code == 403
    guest, guest_token = factory.user_with_token(["api"])
    factory.member("groups", group["id"], guest["id"], GUEST)
    assert server.request("GET", f"/groups/{group['id']}/packages", token=guest_token).status_code == 403
    assert server.request("GET", f"/groups/{group['id']}/packages").status_code == 404
    bad = server.root("GET", f"/groups/{group['id']}/packages", params={"order_by": "size"})
    assert bad.status_code == 400
    assert bad.json() == {"error": "order_by does not have a valid value"}


def test_concurrent_deletions_of_one_package_delete_it_once(
    server: LiveServer, factory: Factory, dist_dir: Path
) -> None:
    pid = factory.project()["id"]
    for round_ in range(3):
        name = uid("race")
        publish(server, pid, make_wheel(dist_dir, name), name, "1.0.0")
        package_id = server.root("GET", f"/projects/{pid}/packages", params={"package_name": name}).json()[0][
            "id"
        ]
        url = f"/projects/{pid}/packages/{package_id}"
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(server.root, "DELETE", url) for _ in range(2)]
            answers = [f.result() for f in futures]
        assert sorted(a.status_code for a in answers) == [204, 404], (round_, [a.text for a in answers])
    assert stored_paths(server, pid) == []
    assert len(events(server, "package.deleted", pid)) == 3
