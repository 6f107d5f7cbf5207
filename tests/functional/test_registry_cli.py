"""`keycrew registry config` and `keycrew registry rotate-key`, run as an operator would."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from keycrew.registry import keys
from tests.support.processes import clean_env, keycrew

pytestmark = pytest.mark.slow


def settings_of(output: str) -> dict[str, str]:
    return dict(re.findall(r'^    (\w+): "([^"]*)"$', output, re.MULTILINE))


def kids_in(bundle: Path) -> list[str]:
    found = []
    for certificate in x509.load_pem_x509_certificates(bundle.read_bytes()):
        public_key = certificate.public_key()
        assert isinstance(public_key, rsa.RSAPublicKey)
        found.append(keys.libtrust_kid(public_key))
    return found


def test_config_prints_the_auth_section_and_creates_the_key(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path / "data",
        KEYCREW_EXTERNAL_URL="https://forge.example.com",
        KEYCREW_REGISTRY_ISSUER="forge-issuer",
    )
    result = keycrew("registry", "config", env=env)
    assert result.returncode == 0, result.stderr
    assert "auth:\n  token:\n" in result.stdout
    assert settings_of(result.stdout) == {
        "realm": "https://forge.example.com/jwt/auth",
        "service": "container_registry",
        "issuer": "forge-issuer",
        "rootcertbundle": str((tmp_path / "data" / "registry-token.crt").resolve()),
    }
    key = tmp_path / "data" / "registry-token.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    kid = re.search(r"kid ([A-Z0-9:]+)", result.stdout)
    assert kid is not None
    assert kids_in(tmp_path / "data" / "registry-token.crt") == [kid.group(1)]
    # Run again: the same key, not a new one.
    again = keycrew("registry", "config", env=env)
    assert again.stdout == result.stdout


def test_config_with_paths_of_its_own(tmp_path: Path) -> None:
    env = clean_env(
        tmp_path / "data",
        KEYCREW_REGISTRY_KEY_FILE=str(tmp_path / "secret" / "signing.key"),
        KEYCREW_REGISTRY_CERTIFICATE_FILE=str(tmp_path / "public" / "bundle.crt"),
        KEYCREW_REGISTRY_SERVICE="registry.example.com",
    )
    result = keycrew("registry", "config", env=env)
    assert result.returncode == 0, result.stderr
    assert settings_of(result.stdout)["rootcertbundle"] == str(tmp_path / "public" / "bundle.crt")
    assert settings_of(result.stdout)["service"] == "registry.example.com"
    assert (tmp_path / "secret" / "signing.key").exists()
    assert not (tmp_path / "data" / "registry-token.key").exists()


def test_rotate_key_in_two_steps(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    key, bundle = tmp_path / "registry-token.key", tmp_path / "registry-token.crt"
    assert keycrew("registry", "rotate-key", "--activate", env=env).returncode == 1  # nothing prepared

    prepared = keycrew("registry", "rotate-key", env=env)
    assert prepared.returncode == 0, prepared.stderr
    assert "restart docker-registry" in prepared.stderr
    old_key = key.read_bytes()
    old_kid = keys.libtrust_kid(keys.load_private_key(old_key, key).public_key())
    next_kid = re.search(r"kid ([A-Z0-9:]+)", prepared.stdout)
    assert next_kid is not None
    assert kids_in(bundle) == [next_kid.group(1), old_kid]
    assert stat.S_IMODE(keys.next_key_path(key).stat().st_mode) == 0o600

    activated = keycrew("registry", "rotate-key", "--activate", env=env)
    assert activated.returncode == 0, activated.stderr
    assert key.read_bytes() != old_key
    assert keys.libtrust_kid(keys.load_private_key(key.read_bytes(), key).public_key()) == next_kid.group(1)
    assert not keys.next_key_path(key).exists()

    # A second rotation keeps the bundle at two certificates: the current key's and the next one's.
    again = keycrew("registry", "rotate-key", env=env)
    assert again.returncode == 0, again.stderr
    third = re.search(r"kid ([A-Z0-9:]+)", again.stdout)
    assert third is not None
    assert kids_in(bundle) == [third.group(1), next_kid.group(1)]


def test_a_corrupt_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / "registry-token.key").write_text("not a key")
    result = keycrew("registry", "config", env=clean_env(tmp_path))
    assert result.returncode == 1
    assert "registry-token.key holds no usable RSA private key" in result.stderr
    assert "Traceback" not in result.stderr
