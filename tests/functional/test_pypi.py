"""PyPI package registry: twine uploads and pip installs for real, and who may do what."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from keycrew.audit.models import AuditEvent
from keycrew.infra.ratelimit import FailedAuthThrottle
from keycrew.packages.models import Package, PackageFile
from tests.support.live import Factory, LiveServer, uid

REPORTER, DEVELOPER, GUEST = 20, 30, 10


# --- building distributions without a network ---------------------------------------------------


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(directory: Path, name: str, version: str = "1.0.0", requires_python: str = ">=3.8") -> Path:
    """A pure-Python wheel with one module ``name`` (underscores) holding VALUE = "<name> <version>"."""
    module = name.replace("-", "_").replace(".", "_").lower()
    dist = name.replace("-", "_").replace(".", "_")
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f'VALUE = "{name} {version}"\n'.encode(),
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Summary: a test package\nRequires-Python: {requires_python}\n\n"
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: keycrew-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [_record_line(path, data) for path, data in files.items()] + [f"{info}/RECORD,,"]
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


# --- the real clients ----------------------------------------------------------------------------


def _client_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "TWINE_", "KEYCREW_"))}
    env.update(
        HOME=str(tmp),  # no ~/.pypirc, pip.conf or netrc of the machine's user
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INPUT="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_CACHE_DIR="1",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
    )
    return env


def twine_upload(
    server: LiveServer, project: int | str, user: str, password: str, dist: Path
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "twine",
        "upload",
        "--repository-url",
        f"{server.url}/api/v4/projects/{project}/packages/pypi",
        "-u",
        user,
        "-p",
        password,
        "--non-interactive",
        "--disable-progress-bar",
        str(dist),
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env=_client_env(dist.parent), timeout=120, check=False
    )


def pip_install(
    server: LiveServer, project: int, auth: tuple[str, str] | None, name: str, target: Path
) -> subprocess.CompletedProcess[str]:
    host = server.url.removeprefix("http://")
    credentials = "" if auth is None else f"{auth[0]}:{auth[1]}@"
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-input",
        "--target",
        str(target),
        "--index-url",
        f"http://{credentials}{host}/api/v4/projects/{project}/packages/pypi/simple",
        name,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env=_client_env(target.parent), timeout=120, check=False
    )


def import_value(target: Path, module: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.VALUE)"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": os.environ.get("PATH", "")},
        cwd=target.parent,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


# --- plain HTTP, as twine sends it ---------------------------------------------------------------


def pypi(server: LiveServer, project: int | str, rest: str = "") -> str:
    return f"{server.url}/api/v4/projects/{project}/packages/pypi{rest}"


def upload(
    server: LiveServer,
    project: int | str,
    auth: tuple[str, str] | None,
    dist: Path,
    *,
    name: str | None = None,
    version: str = "1.0.0",
    **fields: str,
) -> requests.Response:
    data = dist.read_bytes()
    form: dict[str, str] = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name or dist.name.split("-")[0],
        "version": version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "requires_python": ">=3.8",
        "sha256_digest": hashlib.sha256(data).hexdigest(),
    } | fields
    return requests.post(
        pypi(server, project),
        data=form,
        files={"content": (dist.name, data, "application/octet-stream")},
        auth=auth,
        timeout=30,
    )


def get(
    server: LiveServer, url: str, auth: tuple[str, str] | None = None, **kwargs: Any
) -> requests.Response:
    return requests.get(url, auth=auth, timeout=30, **kwargs)


def files_of(server: LiveServer, project_id: int) -> list[tuple[str, str, int]]:
    with server.runtime.sessions() as db:
        rows = db.execute(
            select(Package.normalized_name, PackageFile.file_name, PackageFile.id)
            .join(PackageFile, PackageFile.package_id == Package.id)
            .where(Package.project_id == project_id)
            .order_by(PackageFile.id)
        ).all()
    return [(n, f, i) for n, f, i in rows]


def stored_paths(server: LiveServer, project_id: int) -> list[Path]:
    directory = server.data_dir / "packages" / str(project_id)
    return sorted(directory.iterdir()) if directory.is_dir() else []


def staging_leftovers(server: LiveServer) -> list[Path]:
    directory = server.data_dir / "packages" / ".staging"
    return sorted(directory.iterdir()) if directory.is_dir() else []


def deploy_token(server: LiveServer, project_id: int, scopes: list[str]) -> tuple[str, str]:
    response = server.root(
        "POST", f"/projects/{project_id}/deploy_tokens", json={"name": uid("dt"), "scopes": scopes}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return str(body["username"]), str(body["token"])


def member_token(factory: Factory, project_id: int, level: int, scopes: list[str] | None = None) -> str:
    user, token = factory.user_with_token(scopes or ["api"])
    factory.member("projects", project_id, user["id"], level)
    return token


@pytest.fixture
def dist_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "dist"
    directory.mkdir()
    return directory


@pytest.fixture
def private_project(factory: Factory) -> dict[str, Any]:
    return factory.project(visibility="private")


# --- the real clients, end to end ----------------------------------------------------------------


def test_twine_uploads_and_pip_installs_with_a_personal_access_token(
    server: LiveServer, factory: Factory, private_project: dict[str, Any], dist_dir: Path, tmp_path: Path
) -> None:
    pid = private_project["id"]
    token = member_token(factory, pid, DEVELOPER)
    name = uid("Kc_Pkg.")
    wheel = make_wheel(dist_dir, name, "1.2.3")

    result = twine_upload(server, pid, "__token__", token, wheel)
    assert result.returncode == 0, result.stdout + result.stderr

    # Into a fresh virtual environment, with that environment's own pip, as a user would.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, capture_output=True)
    python = venv / "bin" / "python"
    host = server.url.removeprefix("http://")
    installed = subprocess.run(
        [
            str(python), "-m", "pip", "install", "--no-deps", "--no-input", "--index-url",
            f"http://__token__:{token}@{host}/api/v4/projects/{pid}/packages/pypi/simple",
            name.lower().replace("_", "-"),
        ],
        capture_output=True, text=True, env=_client_env(tmp_path), timeout=180, check=False,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    module = name.replace(".", "_").lower()
    value = subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.VALUE)"],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert value == f"{name} 1.2.3"

    # The same file again: GitLab's validation message, and twine fails.
    again = twine_upload(server, pid, "__token__", token, wheel)
    assert again.returncode != 0
    assert "400" in again.stdout + again.stderr

    # The upload is audited with the user and the token's id, never the token's value.
    with server.runtime.sessions() as db:
        events = db.scalars(
            select(AuditEvent).where(AuditEvent.event_name == "package.uploaded", AuditEvent.entity_id == pid)
        ).all()
    assert len(events) == 1
    event = events[0]
    assert event.entity_type == "Project"
    assert event.target_details == wheel.name
    assert event.token_id is not None
    assert event.details["package_version"] == "1.2.3"
    assert event.details["package_created"] is True
    assert token not in repr(event.details)


def test_pip_installs_anonymously_from_a_public_project_only(
    server: LiveServer, factory: Factory, dist_dir: Path, tmp_path: Path
) -> None:
    public = factory.project(visibility="public")
    private = factory.project(visibility="private")
    name = uid("pub")
    for project in (public, private):
        wheel = make_wheel(dist_dir, name, "0.1")
        response = upload(server, project["id"], ("__token__", server.root_token), wheel, version="0.1")
        assert response.status_code == 201, response.text

    target = tmp_path / "public-site"
    installed = pip_install(server, public["id"], None, name, target)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert import_value(target, name) == f"{name} 0.1"

    # pip gets a 401 for the private project's page and, unable to prompt, finds nothing.
    assert get(server, pypi(server, private["id"], f"/simple/{name}/")).status_code == 401
    refused = pip_install(server, private["id"], None, name, tmp_path / "private-site")
    assert refused.returncode != 0
    assert "No matching distribution" in refused.stderr
    assert not (tmp_path / "private-site" / name).exists()


def test_deploy_tokens_install_and_upload_by_their_scopes(
    server: LiveServer, private_project: dict[str, Any], dist_dir: Path, tmp_path: Path
) -> None:
    pid = private_project["id"]
    writer = deploy_token(server, pid, ["write_package_registry"])
    reader = deploy_token(server, pid, ["read_package_registry"])
    name = uid("dep")
    wheel = make_wheel(dist_dir, name, "2.0")

    # A read-only deploy token may not upload; a writing one may, with twine.
    assert upload(server, pid, reader, wheel, version="2.0").status_code == 403
    result = twine_upload(server, pid, writer[0], writer[1], wheel)
    assert result.returncode == 0, result.stdout + result.stderr

    target = tmp_path / "site"
    installed = pip_install(server, pid, reader, name, target)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert import_value(target, name) == f"{name} 2.0"

    # write_package_registry implies reading (GitLab's deploy token policy).
    assert get(server, pypi(server, pid, f"/simple/{name}/"), writer).status_code == 200
    # The exact username is required.
    assert get(server, pypi(server, pid, f"/simple/{name}/"), ("__token__", reader[1])).status_code == 401
    # The upload's audit event names the deploy token (its id and username), not a user.
    with server.runtime.sessions() as db:
        event = db.scalars(
            select(AuditEvent).where(AuditEvent.event_name == "package.uploaded", AuditEvent.entity_id == pid)
        ).one()
    assert event.author_id is None
    assert event.author_name == writer[0]
    assert event.details["deploy_token_username"] == writer[0]
    assert isinstance(event.details["deploy_token_id"], int)


# --- who may do what (plain HTTP, the same form twine sends) -------------------------------------


@pytest.fixture
def published(server: LiveServer, private_project: dict[str, Any], dist_dir: Path) -> tuple[int, str, Path]:
    """A private project with one uploaded wheel: (project id, package name, wheel)."""
    name = uid("pkg")
    wheel = make_wheel(dist_dir, name)
    response = upload(server, private_project["id"], ("__token__", server.root_token), wheel)
    assert response.status_code == 201, response.text
    assert response.json() == {"message": "201 Created"}
    return private_project["id"], name, wheel


def test_simple_pages_link_each_file_with_its_digest(
    server: LiveServer, published: tuple[int, str, Path]
) -> None:
    pid, name, wheel = published
    root = ("__token__", server.root_token)
    index = get(server, pypi(server, pid, "/simple"), root)
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    assert f'/api/v4/projects/{pid}/packages/pypi/simple/{name}">{name}</a>' in index.text

    page = get(server, pypi(server, pid, f"/simple/{name.upper()}/"), root)
    assert page.status_code == 200
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    href = f"{server.url}/api/v4/projects/{pid}/packages/pypi/files/{digest}/{wheel.name}#sha256={digest}"
    assert f'<a href="{href}" data-requires-python="&gt;=3.8">{wheel.name}</a>' in page.text

    download = get(server, href.split("#")[0], root)
    assert download.status_code == 200
    assert download.content == wheel.read_bytes()
    assert wheel.name in download.headers["content-disposition"]
    # A wrong digest or name finds nothing.
    assert get(server, pypi(server, pid, f"/files/{'0' * 64}/{wheel.name}"), root).status_code == 404
    assert get(server, pypi(server, pid, "/simple/no-such-package/"), root).json() == {
        "message": "404 Package Not Found"
    }


def test_read_access_by_role_and_scope(
    server: LiveServer, factory: Factory, published: tuple[int, str, Path]
) -> None:
    pid, name, _wheel = published
    page = pypi(server, pid, f"/simple/{name}/")
    assert get(server, page, ("__token__", member_token(factory, pid, REPORTER))).status_code == 200
    assert get(server, page, ("x", member_token(factory, pid, REPORTER, ["read_api"]))).status_code == 200
    # A guest sees the project but not its packages; a stranger does not see it at all.
    assert get(server, page, ("__token__", member_token(factory, pid, GUEST))).status_code == 403
    _stranger, stranger_token = factory.user_with_token(["api"])
    assert get(server, page, ("__token__", stranger_token)).json() == {"message": "404 Project Not Found"}
    # A token without a package-capable scope is refused.
    assert (
        get(
            server, page, ("__token__", member_token(factory, pid, REPORTER, ["read_repository"]))
        ).status_code
        == 403
    )
    # PRIVATE-TOKEN works as on the rest of the API.
    private = get(server, page, headers={"PRIVATE-TOKEN": member_token(factory, pid, REPORTER)})
    assert private.status_code == 200


def test_anonymous_callers_are_asked_to_authenticate(
    server: LiveServer, published: tuple[int, str, Path]
) -> None:
    pid, name, _wheel = published
    for url in (
        pypi(server, pid, "/simple"),
        pypi(server, pid, f"/simple/{name}/"),
        pypi(server, 2**30, "/simple"),
    ):
        response = get(server, url)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == 'Basic realm="keycrew"'
        assert response.json() == {"message": "401 Unauthorized"}


def test_upload_needs_developer_and_a_writing_scope(
    server: LiveServer, factory: Factory, private_project: dict[str, Any], dist_dir: Path
) -> None:
    pid = private_project["id"]
    wheel = make_wheel(dist_dir, uid("up"))
    read_only = member_token(factory, pid, DEVELOPER, ["read_api"])
    reporter = member_token(factory, pid, REPORTER)
    for token in (read_only, reporter):
        response = upload(server, pid, ("__token__", token), wheel)
        assert response.status_code == 403, response.text
    _stranger, stranger_token = factory.user_with_token(["api"])
    assert upload(server, pid, ("__token__", stranger_token), wheel).status_code == 404
    anonymous = upload(server, pid, None, wheel)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="keycrew"'
    assert files_of(server, pid) == []
    # The project may also be named by its URL-encoded full path.
    encoded = private_project["path_with_namespace"].replace("/", "%2F")
    developer = member_token(factory, pid, DEVELOPER)
    assert upload(server, encoded, ("anything", developer), wheel).status_code == 201


def test_bad_uploads_leave_neither_a_row_nor_a_file(
    server: LiveServer, private_project: dict[str, Any], dist_dir: Path
) -> None:
    pid = private_project["id"]
    root = ("__token__", server.root_token)
    name = uid("bad")
    wheel = make_wheel(dist_dir, name)

    mismatch = upload(server, pid, root, wheel, sha256_digest="0" * 64)
    assert mismatch.status_code == 400
    assert "Sha256 digest does not match" in mismatch.json()["message"]
    assert upload(server, pid, root, wheel, sha256_digest="not-a-digest").json() == {
        "error": "sha256_digest is invalid"
    }
    assert upload(server, pid, root, wheel, version="not a version").json() == {
        "message": "400 Bad request - Validation failed: Version is invalid"
    }
    assert upload(server, pid, root, wheel, name="-bad name-").status_code == 400
    missing = requests.post(pypi(server, pid), files={"name": (None, name)}, auth=root, timeout=30)
    assert missing.json() == {"error": "content is missing, version is missing"}
    assert files_of(server, pid) == []
    assert stored_paths(server, pid) == []

    assert upload(server, pid, root, wheel).status_code == 201
    taken = upload(server, pid, root, wheel)
    assert taken.status_code == 400
    assert taken.json() == {
        "message": "400 Bad request - Validation failed: File name has already been taken"
    }
    # Another spelling of the same name is the same package.
    respelled = upload(server, pid, root, wheel, name=name.upper())
    assert respelled.status_code == 400
    assert len(files_of(server, pid)) == 1
    assert len(stored_paths(server, pid)) == 1
    assert staging_leftovers(server) == []


def test_files_over_the_size_limit_are_refused(
    server: LiveServer, private_project: dict[str, Any], dist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = private_project["id"]
    wheel = make_wheel(dist_dir, uid("big"))
    monkeypatch.setattr(server.runtime.settings, "packages_max_file_size", wheel.stat().st_size - 1)
    response = upload(server, pid, ("__token__", server.root_token), wheel)
    assert response.status_code == 400
    assert response.json() == {"message": "400 Bad request - File is too large"}
    assert files_of(server, pid) == []
    assert staging_leftovers(server) == []
    monkeypatch.setattr(server.runtime.settings, "packages_max_file_size", wheel.stat().st_size)
    assert upload(server, pid, ("__token__", server.root_token), wheel).status_code == 201


def test_dead_and_foreign_credentials_fail(
    server: LiveServer, factory: Factory, published: tuple[int, str, Path], dist_dir: Path
) -> None:
    pid, name, _wheel = published
    page = pypi(server, pid, f"/simple/{name}/")
    user, token = factory.user_with_token(["api"])
    factory.member("projects", pid, user["id"], DEVELOPER)
    assert get(server, page, ("__token__", token)).status_code == 200
    token_id = server.request("GET", "/personal_access_tokens/self", token=token).json()["id"]
    assert server.root("DELETE", f"/personal_access_tokens/{token_id}").status_code == 204
    revoked = get(server, page, ("__token__", token))
    assert revoked.status_code == 401
    assert upload(server, pid, ("__token__", token), make_wheel(dist_dir, uid("rv"))).status_code == 401

    # A token past its expiry date is dead too (it dies at 00:00 UTC on that date).
    expiring = member_token(factory, pid, DEVELOPER)
    expires = server.request("GET", "/personal_access_tokens/self", token=expiring).json()["expires_at"]
    assert get(server, page, ("__token__", expiring)).status_code == 200
    server.clock.travel_to(dt.datetime.fromisoformat(expires).replace(tzinfo=dt.UTC))
    assert get(server, page, ("__token__", expiring)).status_code == 401
    server.clock.reset()

    # A deploy token of another project does not reach this one.
    other = factory.project(visibility="private")
    foreign = deploy_token(server, other["id"], ["read_package_registry"])
    assert get(server, page, foreign).status_code == 404
    # Passwords are not accepted here, even the right one.
    assert get(server, page, ("root", "root-password-for-tests")).status_code == 401
    assert get(server, page, ("__token__", "glpat-not-a-real-token")).status_code == 401
    # A blocked user's token is refused with the reason.
    blocked, blocked_token = factory.user_with_token(["api"])
    factory.member("projects", pid, blocked["id"], DEVELOPER)
    assert server.root("POST", f"/users/{blocked['id']}/block").status_code == 201
    assert get(server, page, ("__token__", blocked_token)).status_code == 403


def test_repeated_failures_ban_the_address(server: LiveServer, published: tuple[int, str, Path]) -> None:
    pid, name, _wheel = published
    page = pypi(server, pid, f"/simple/{name}/")
    original = server.runtime.auth_throttle
    server.runtime.auth_throttle = FailedAuthThrottle(limit=3, window=60, ban=60)
    try:
        for _ in range(3):
            assert get(server, page, ("__token__", "glpat-wrong")).status_code == 401
        banned = get(server, page, ("__token__", server.root_token))
        assert banned.status_code == 429
        assert int(banned.headers["retry-after"]) > 0
        # Anonymous requests carry no credential to guess with: still a plain 401.
        assert get(server, page).status_code == 401
    finally:
        server.runtime.auth_throttle = original
    assert get(server, page, ("__token__", server.root_token)).status_code == 200


def test_uploads_of_one_version_share_the_package(
    server: LiveServer, private_project: dict[str, Any], dist_dir: Path
) -> None:
    pid = private_project["id"]
    root = ("__token__", server.root_token)
    name = uid("two")
    wheel = make_wheel(dist_dir, name)
    sdist = dist_dir / f"{name}-1.0.0.tar.gz"
    sdist.write_bytes(b"not really a tarball, but the registry does not unpack it")
    assert upload(server, pid, root, wheel).status_code == 201
    assert upload(server, pid, root, sdist).status_code == 201
    with server.runtime.sessions() as db:
        count = db.scalar(select(func.count()).select_from(Package).where(Package.project_id == pid))
    assert count == 1
    page = get(server, pypi(server, pid, f"/simple/{name}"), root).text
    assert wheel.name in page
    assert sdist.name in page


def test_concurrent_uploads_of_one_new_version(
    server: LiveServer, private_project: dict[str, Any], dist_dir: Path
) -> None:
    """Different files of one new version all land in one package; one file name lands once."""
    pid = private_project["id"]
    root = ("__token__", server.root_token)
    name = uid("race")
    dists = []
    for tag in range(6):
        dist = dist_dir / f"{name}-1.0.0-py3-none-any-{tag}.whl"
        dist.write_bytes(f"file {tag}".encode())
        dists.append(dist)
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda d: upload(server, pid, root, d, name=name).status_code, dists))
    assert statuses == [201] * 6
    same = make_wheel(dist_dir, name, "2.0")
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(
            pool.map(lambda _: upload(server, pid, root, same, version="2.0").status_code, range(6))
        )
    assert sorted(statuses) == [201] + [400] * 5
    with server.runtime.sessions() as db:
        versions = db.scalars(
            select(Package.version).where(Package.project_id == pid).order_by(Package.id)
        ).all()
    assert versions == ["1.0.0", "2.0"]
    assert len(files_of(server, pid)) == 7
    assert len(stored_paths(server, pid)) == 7


def test_bots_service_accounts_and_group_deploy_tokens(
    server: LiveServer, factory: Factory, dist_dir: Path
) -> None:
    group = factory.group()
    pid = factory.project(namespace_id=group["id"], visibility="private")["id"]

    def resource_token(path: str, scopes: list[str], level: int) -> str:
        body = {"name": uid("bot"), "scopes": scopes, "access_level": level}
        response = server.root("POST", f"{path}/access_tokens", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    developer_bot = resource_token(f"/projects/{pid}", ["api"], DEVELOPER)
    reporter_bot = resource_token(f"/projects/{pid}", ["api"], REPORTER)
    group_reader_bot = resource_token(f"/groups/{group['id']}", ["read_api"], REPORTER)
    account = server.root("POST", "/service_accounts", json={})
    assert account.status_code == 201, account.text
    account_token = factory.token(account.json()["id"], ["api"])
    factory.member("projects", pid, account.json()["id"], DEVELOPER)
    made = server.root(
        "POST",
        f"/groups/{group['id']}/deploy_tokens",
        json={"name": uid("gdt"), "scopes": ["read_package_registry"]},
    )
    assert made.status_code == 201, made.text
    group_deploy = (made.json()["username"], made.json()["token"])

    name = uid("bots")
    assert upload(server, pid, ("__token__", reporter_bot), make_wheel(dist_dir, name)).status_code == 403
    assert upload(server, pid, ("ci", developer_bot), make_wheel(dist_dir, name)).status_code == 201
    assert (
        upload(
            server, pid, ("sa", account_token), make_wheel(dist_dir, name, "1.1"), version="1.1"
        ).status_code
        == 201
    )
    assert (
        upload(server, pid, group_deploy, make_wheel(dist_dir, name, "1.2"), version="1.2").status_code == 403
    )
    page = pypi(server, pid, f"/simple/{name}/")
    for auth in (("__token__", reporter_bot), ("__token__", group_reader_bot), group_deploy):
        response = get(server, page, auth)
        assert response.status_code == 200, auth[0]
        assert f"{name}-1.1-py3-none-any.whl" in response.text
    # The group's deploy token and bot reach only projects under that group.
    elsewhere = factory.project(visibility="private")["id"]
    assert get(server, pypi(server, elsewhere, "/simple"), group_deploy).status_code == 404
    assert get(server, pypi(server, elsewhere, "/simple"), ("__token__", group_reader_bot)).status_code == 404


def test_deleting_a_project_removes_its_package_files(
    server: LiveServer, factory: Factory, dist_dir: Path
) -> None:
    group = factory.group()
    pid = factory.project(namespace_id=group["id"])["id"]
    root = ("__token__", server.root_token)
    assert upload(server, pid, root, make_wheel(dist_dir, uid("gone"))).status_code == 201
    assert len(stored_paths(server, pid)) == 1
    assert server.root("DELETE", f"/projects/{pid}").status_code in (202, 204)
    assert files_of(server, pid) == []
    assert not (server.data_dir / "packages" / str(pid)).exists()
    # A group's deletion takes its projects' files along too.
    other = factory.project(namespace_id=group["id"])["id"]
    assert upload(server, other, root, make_wheel(dist_dir, uid("gone"))).status_code == 201
    assert server.root("DELETE", f"/groups/{group['id']}").status_code in (202, 204)
    assert not (server.data_dir / "packages" / str(other)).exists()
