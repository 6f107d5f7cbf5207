"""The container registry token signing key and its certificate (the registry's rootcertbundle).

The RSA key is generated on first need (mode 0600) with a self-signed X.509 certificate beside it:
docker-registry refuses to start without a certificate in its bundle, and it finds the key that
signed a token by the ``kid`` header, the libtrust key id of the public key. Files are written
whole under a temporary name and then linked into place, so processes starting together agree on
one key. A running process notices a replaced key file (rotation) on its next token.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

log = logging.getLogger("keycrew.registry")

KEY_BITS = 4096
CERTIFICATE_YEARS = 10
CERTIFICATE_NAME = "keycrew registry token signer"


def libtrust_kid(public_key: rsa.RSAPublicKey) -> str:
    """docker/libtrust's key id: SHA-256 of the DER SubjectPublicKeyInfo, its first 30 bytes in
    base32 without padding, in groups of 4 characters joined by ':' (as GitLab's RSAToken)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``data`` unless it exists (another process may win: its file stays)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)  # the mode asked for, whatever the umask (the certificate is public)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` whole, replacing what is there."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    os.fchmod(fd, mode)  # the mode asked for, whatever the umask (the certificate is public)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def new_private_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes, path: Path) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (TypeError, ValueError):  # not PEM, or encrypted
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} holds no usable RSA private key (unencrypted PEM)")
    return key


def certificate_pem(key: rsa.RSAPrivateKey, now: dt.datetime) -> bytes:
    """A self-signed certificate of ``key``: the registry only needs its public key (kid mode)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERTIFICATE_NAME)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365 * CERTIFICATE_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def bundle_kids(path: Path) -> list[str]:
    """The key ids of the certificates in a PEM bundle ([] when the file is missing or unreadable)."""
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return []
    kids = []
    for certificate in certificates:
        public_key = certificate.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            kids.append(libtrust_kid(public_key))
    return kids


class KeyStore:
    """The signing key at ``key_path``, generated with its certificate on first need."""

    def __init__(self, key_path: Path, certificate_path: Path) -> None:
        self.key_path = key_path
        self.certificate_path = certificate_path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._key: SigningKey | None = None

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.key_path.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def current(self, now: dt.datetime) -> SigningKey:
        """The key to sign with; reloaded when its file was replaced, created when missing."""
        stamp = self._file_stamp()
        key = self._key
        if key is not None and stamp == self._stamp:
            return key
        with self._lock:
            if not self.key_path.exists():
                _write_new(self.key_path, new_private_key(), 0o600)
                log.info("generated the registry token signing key %s", self.key_path)
            stamp = self._file_stamp()
            private_key = load_private_key(self.key_path.read_bytes(), self.key_path)
            key = SigningKey(private_key, libtrust_kid(private_key.public_key()))
            if not self.certificate_path.exists():
                _write_new(self.certificate_path, certificate_pem(private_key, now), 0o644)
                log.info("wrote the registry's root certificate bundle %s", self.certificate_path)
            elif key.kid not in bundle_kids(self.certificate_path):
                log.warning(
                    "%s holds no certificate of the signing key %s: the registry will refuse its tokens",
                    self.certificate_path,
                    self.key_path,
                )
            self._key, self._stamp = key, stamp
            return key


_STORES: dict[tuple[Path, Path], KeyStore] = {}
_STORES_LOCK = threading.Lock()


def key_store(key_path: Path, certificate_path: Path) -> KeyStore:
    """One KeyStore per pair of files in this process."""
    pair = (key_path.resolve(), certificate_path.resolve())
    with _STORES_LOCK:
        store = _STORES.get(pair)
        if store is None:
            store = _STORES[pair] = KeyStore(*pair)
        return store


def next_key_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".next")


def prepare_rotation(key_path: Path, certificate_path: Path, now: dt.datetime) -> str:
    """Step 1 of a rotation: create the next key and put its certificate in the bundle beside the
    current one (older certificates are dropped). Returns the next key's id. The registry must be
    restarted (it reads the bundle only at start) before step 2, ``activate_rotation``."""
    store = key_store(key_path, certificate_path)
    current = store.current(now)
    upcoming = next_key_path(key_path)
    if not upcoming.exists():
        _write_new(upcoming, new_private_key(), 0o600)
    next_key = load_private_key(upcoming.read_bytes(), upcoming)
    kid = libtrust_kid(next_key.public_key())
    keep = [_certificate_of(certificate_path, current.kid) or certificate_pem(current.private_key, now)]
    bundle = certificate_pem(next_key, now) + b"".join(keep)
    _replace(certificate_path, bundle, 0o644)
    return kid


def activate_rotation(key_path: Path) -> bool:
    """Step 2: sign with the next key from now on (False when no rotation was prepared). Every
    process picks it up on its next token; tokens signed with the old key stay valid for the few
    minutes they live, since the bundle still holds the old certificate."""
    upcoming = next_key_path(key_path)
    if not upcoming.exists():
        return False
    os.replace(upcoming, key_path)
    return True


def _certificate_of(path: Path, kid: str) -> bytes | None:
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return None
    for certificate in certificates:
        public_key = certificate.public_key()
        if isinstance(public_key, rsa.RSAPublicKey) and libtrust_kid(public_key) == kid:
            return certificate.public_bytes(serialization.Encoding.PEM)
    return None
