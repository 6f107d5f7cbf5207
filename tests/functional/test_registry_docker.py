"""The token service with the real thing: Debian's docker-registry trusts keycrew's certificate and
sends skopeo to /jwt/auth; images are pushed and pulled with every kind of token, and the denied
cases fail at the registry."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from keycrew.registry import keys
from keycrew.registry.tokens import sign
from tests.support.live import Factory, LiveServer, free_port, uid

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (shutil.which("docker-registry") and shutil.which("skopeo")),
        reason="needs Debian's docker-registry and skopeo (make git installs them)",
    ),
]

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
SOURCE_TAG = "src"  # the one image of each local layout, pushed under any tag


@dataclass
class Registry:
    host: str
    log: Path
    work: Path

    def ref(self, name: str, tag: str) -> str:
        return f"docker://{self.host}/{name}:{tag}"


@contextmanager
def running_registry(work: Path, realm: str, service: str, issuer: str, bundle: Path) -> Iterator[Registry]:
    """docker-registry on a free port with token auth; SIGTERM at the end (never systemd)."""
    port = free_port()
    config = work / "config.yml"
    config.write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "version": 0.1,
                "log": {"level": "info"},
                "storage": {
                    "filesystem": {"rootdirectory": str(work / "storage")},
                    "delete": {"enabled": True},
                },
                "http": {"addr": f"127.0.0.1:{port}", "secret": "keycrew-tests"},
                "auth": {
                    "token": {
                        "realm": realm,
                        "service": service,
                        "issuer": issuer,
                        "rootcertbundle": str(bundle),
                    }
                },
            }
        )
    )
    log = work / "registry.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2).status_code == 401:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}", log, work)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def registry(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry that sends its clients to the live keycrew and trusts keycrew's certificate."""
    settings = server.runtime.settings
    # The first token creates keycrew's signing key and the certificate the registry needs at start.
    first = requests.get(
        f"{server.url}/jwt/auth",
        params={"service": settings.registry_service, "scope": "repository:a/b:pull"},
        timeout=30,
    )
    assert first.status_code == 200
    with running_registry(
        tmp_path_factory.mktemp("registry"),
        f"{server.url}/jwt/auth",
        settings.registry_service,
        settings.registry_issuer,
        settings.registry_certificate_path,
    ) as running:
        yield running


def _blob(root: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_image(root: Path, tag: str) -> str:
    """A one-layer OCI image layout in ``root`` (no Docker daemon); returns its layer digest."""
    (root / "blobs" / "sha256").mkdir(parents=True)
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    content = f"hello from {uid('image')}\n".encode()
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(content))
    uncompressed = tar_bytes.getvalue()
    layer = _blob(root, gzip.compress(uncompressed, mtime=0))
    config = _blob(
        root,
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [f"sha256:{hashlib.sha256(uncompressed).hexdigest()}"],
                },
            }
        ).encode(),
    )
    manifest = _blob(
        root,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
            }
        ).encode(),
    )
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST_TYPE,
                **manifest,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (root / "index.json").write_text(json.dumps(index))
    return str(layer["digest"])


def skopeo(registry: Registry, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(registry.work),
        # No credentials from any auth file: only those given on the command line.
        "REGISTRY_AUTH_FILE": str(registry.work / "auth.json"),
    }
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def push(
    registry: Registry, source: Path, name: str, tag: str, creds: str | None
) -> subprocess.CompletedProcess[str]:
    auth = ["--dest-creds", creds] if creds else ["--dest-no-creds"]
    return skopeo(
        registry,
        "copy",
        "--dest-tls-verify=false",
        *auth,
        f"oci:{source}:{SOURCE_TAG}",
        registry.ref(name, tag),
    )


def pull(
    registry: Registry, name: str, tag: str, creds: str | None, into: Path
) -> subprocess.CompletedProcess[str]:
    auth = ["--src-creds", creds] if creds else ["--src-no-creds"]
    return skopeo(
        registry, "copy", "--src-tls-verify=false", *auth, registry.ref(name, tag), f"oci:{into}:{tag}"
    )


def tags(registry: Registry, name: str, creds: str) -> list[str]:
    result = skopeo(
        registry, "list-tags", "--tls-verify=false", "--creds", creds, f"docker://{registry.host}/{name}"
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout)["Tags"])


def assert_pulled(registry: Registry, name: str, tag: str, creds: str | None, tmp: Path, layer: str) -> None:
    into = tmp / uid("pulled")
    result = pull(registry, name, tag, creds, into)
    assert result.returncode == 0, result.stderr + registry.log.read_text()[-2000:]
    assert (into / "blobs" / "sha256" / layer.removeprefix("sha256:")).exists()


def assert_refused(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    message = result.stderr.lower()
    assert any(
        word in message
        for word in ("unauthorized", "denied", "invalid username/password", "authentication required")
    ), result.stderr


def project_in(factory: Factory, visibility: str = "private", **attrs: Any) -> tuple[dict[str, Any], str]:
    project = factory.project(visibility=visibility, **attrs)
    return project, str(project["path_with_namespace"])


def image(tmp: Path) -> tuple[Path, str]:
    root = tmp / uid("oci")
    return root, oci_image(root, SOURCE_TAG)


ROOT = "root"


def root_creds(server: LiveServer) -> str:
    return f"{ROOT}:{server.root_token}"


def test_personal_tokens_push_and_pull(
    server: LiveServer, factory: Factory, registry: Registry, tmp_path: Path
) -> None:
    project, name = project_in(factory)
    developer, dev_token = factory.user_with_token(["read_registry", "write_registry"])
    factory.member("projects", project["id"], developer["id"], 30)
    reporter, rep_token = factory.user_with_token(["api"])
    factory.member("projects", project["id"], reporter["id"], 20)
    source, layer = image(tmp_path)

    pushed = push(registry, source, name, "v1", f"{developer['username']}:{dev_token}")
    assert pushed.returncode == 0, pushed.stderr + registry.log.read_text()[-2000:]
    assert_pulled(registry, name, "v1", f"{reporter['username']}:{rep_token}", tmp_path, layer)
    # An image below the project's path belongs to the project too.
    assert push(registry, source, f"{name}/tools", "v1", f"any:{dev_token}").returncode == 0

    # A Reporter's token, however broad, cannot push; neither can a read_registry token.
    assert_refused(push(registry, source, name, "reporter", f"x:{rep_token}"))
    maintainer, read_only = factory.user_with_token(["read_registry"])
    factory.member("projects", project["id"], maintainer["id"], 40)
    assert_refused(push(registry, source, name, "read-only", f"x:{read_only}"))
    assert tags(registry, name, root_creds(server)) == ["v1"]
    # A stranger's token cannot pull.
    _stranger, stranger_token = factory.user_with_token(["api"])
    assert_refused(pull(registry, name, "v1", f"x:{stranger_token}", tmp_path / "stranger"))


def test_project_access_token_and_deploy_tokens(
    server: LiveServer, factory: Factory, registry: Registry, tmp_path: Path
) -> None:
    project, name = project_in(factory)
    other, _other_name = project_in(factory)
    made = server.root(
        "POST",
        f"/projects/{project['id']}/access_tokens",
        json={"name": "ci", "scopes": ["read_registry", "write_registry"], "access_level": 30},
    )
    assert made.status_code == 201, made.text
    bot_creds = f"{made.json()['user_id']}:{made.json()['token']}"
    source, layer = image(tmp_path)
    pushed = push(registry, source, name, "v1", bot_creds)
    assert pushed.returncode == 0, pushed.stderr + registry.log.read_text()[-2000:]

    def deploy_token(project_id: int, scopes: list[str]) -> str:
        response = server.root(
            "POST", f"/projects/{project_id}/deploy_tokens", json={"name": uid("dt"), "scopes": scopes}
        )
        assert response.status_code == 201, response.text
        return f"{response.json()['username']}:{response.json()['token']}"

    reader = deploy_token(project["id"], ["read_registry"])
    assert_pulled(registry, name, "v1", reader, tmp_path, layer)
    assert_refused(push(registry, source, name, "by-reader", reader))

    writer = deploy_token(project["id"], ["read_registry", "write_registry"])
    second, _layer = image(tmp_path)
    assert push(registry, second, name, "v2", writer).returncode == 0
    assert sorted(tags(registry, name, reader)) == ["v1", "v2"]

    # A deploy token of another project reaches nothing here.
    elsewhere = deploy_token(other["id"], ["read_registry", "write_registry"])
    assert_refused(pull(registry, name, "v1", elsewhere, tmp_path / "elsewhere"))
    assert_refused(push(registry, source, name, "elsewhere", elsewhere))


def test_group_access_token(server: LiveServer, factory: Factory, registry: Registry, tmp_path: Path) -> None:
    group = factory.group()
    project, name = project_in(factory, namespace_id=group["id"])
    made = server.root(
        "POST",
        f"/groups/{group['id']}/access_tokens",
        json={"name": "ci", "scopes": ["api"], "access_level": 30},
    )
    assert made.status_code == 201, made.text
    creds = f"group-bot:{made.json()['token']}"
    source, layer = image(tmp_path)
    pushed = push(registry, source, f"{name}/app", "latest", creds)
    assert pushed.returncode == 0, pushed.stderr + registry.log.read_text()[-2000:]
    assert_pulled(registry, f"{name}/app", "latest", creds, tmp_path, layer)
    assert project["namespace"]["id"] == group["id"]


def test_anonymous_pulls_public_projects_only(
    server: LiveServer, factory: Factory, registry: Registry, tmp_path: Path
) -> None:
    _public, public_name = project_in(factory, "public")
    _private, private_name = project_in(factory, "private")
    source, layer = image(tmp_path)
    for name in (public_name, private_name):
        assert push(registry, source, name, "v1", root_creds(server)).returncode == 0
    assert_pulled(registry, public_name, "v1", None, tmp_path, layer)
    assert_refused(pull(registry, private_name, "v1", None, tmp_path / "anonymous"))
    assert_refused(push(registry, source, public_name, "anonymous", None))


def test_revoked_token_stops_working(
    server: LiveServer, factory: Factory, registry: Registry, tmp_path: Path
) -> None:
    project, name = project_in(factory)
    user = factory.user()
    factory.member("projects", project["id"], user["id"], 30)
    made = server.root(
        "POST", f"/users/{user['id']}/personal_access_tokens", json={"name": "t", "scopes": ["api"]}
    )
    creds = f"{user['username']}:{made.json()['token']}"
    source, layer = image(tmp_path)
    assert push(registry, source, name, "v1", creds).returncode == 0
    assert_pulled(registry, name, "v1", creds, tmp_path, layer)
    assert server.root("DELETE", f"/personal_access_tokens/{made.json()['id']}").status_code == 204
    refused = pull(registry, name, "v1", creds, tmp_path / "after")
    assert_refused(refused)
    assert "invalid username/password" in refused.stderr.lower()
    server.runtime.auth_throttle.reset()  # leave the shared per-IP failure budget to other tests


def test_key_rotation_with_the_real_registry(tmp_path: Path) -> None:
    """The bundle of a prepared rotation holds both certificates: docker-registry accepts tokens of
    the old key and of the next one (it finds each by kid), and refuses a stranger's key, another
    audience, another issuer and an expired token."""
    key_path, bundle = tmp_path / "keys" / "token.key", tmp_path / "keys" / "token.crt"
    now = dt.datetime.now(dt.UTC)
    old = keys.key_store(key_path, bundle).current(now)
    keys.prepare_rotation(key_path, bundle, now)
    assert keys.activate_rotation(key_path)
    new = keys.key_store(key_path, bundle).current(now)
    assert new.kid != old.kid
    assert keys.bundle_kids(bundle) == [new.kid, old.kid]
    stranger_pem = keys.new_private_key()
    stranger = keys.load_private_key(stranger_pem, key_path)

    def token(private_key: Any, kid: str, **overrides: Any) -> str:
        claims = {
            "issuer": "rotation-test",
            "audience": "svc",
            "now": dt.datetime.now(dt.UTC),
            "lifetime": 300,
        }
        claims |= overrides
        access = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
        return sign(private_key, kid, subject="tester", access=access, **claims).token

    work = tmp_path / "registry"
    work.mkdir()
    with running_registry(work, "http://127.0.0.1:9/jwt/auth", "svc", "rotation-test", bundle) as running:

        def catalog(bearer: str) -> int:
            url = f"http://{running.host}/v2/_catalog"
            return requests.get(url, headers={"Authorization": f"Bearer {bearer}"}, timeout=10).status_code

        assert catalog(token(old.private_key, old.kid)) == 200
        assert catalog(token(new.private_key, new.kid)) == 200
        assert catalog(token(stranger, keys.libtrust_kid(stranger.public_key()))) == 401
        assert (
            catalog(token(stranger, new.kid)) == 401
        )  # a known kid does not make a stranger's signature good
        assert catalog(token(new.private_key, new.kid, audience="other")) == 401
        assert catalog(token(new.private_key, new.kid, issuer="other")) == 401
        past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        assert catalog(token(new.private_key, new.kid, now=past)) == 401
