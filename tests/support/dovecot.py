"""A private Dovecot IMAP server for the tests (Debian's dovecot-imapd, installed by the Makefile).

``Dovecot.start(folder)`` runs ``dovecot -F -c <conf>`` as the current user with everything in
``folder`` (configuration, sockets, state, log, the users' Maildirs): no system configuration and
no root needed. It listens on a free 127.0.0.1 port, plain IMAP, and, when given a certificate,
implicit TLS (IMAPS) on another. The mailbox's owner logs in as ``USER`` with ``PASSWORD`` (a
static passdb: the auth process, unprivileged, reads no file of ours).
``client()`` is an ``imaplib`` session logged in as that user: ``append`` delivers a message the
way an MTA's delivery agent would, ``flags`` reads what the poller left. ``stop`` ends the server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import imaplib
import ipaddress
import os
import pwd
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.live import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "servicedesk"
PASSWORD = "imap-secret-password-1"  # a throwaway test mailbox


@dataclass
class Certificate:
    """A self-signed CA certificate for 127.0.0.1 and its key (the CA file the client trusts)."""

    cert_file: Path
    key_file: Path

    @classmethod
    def make(cls, folder: Path) -> Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "keycrew test IMAP")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = folder / "imap.crt", folder / "imap.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_file.chmod(0o600)
        return cls(cert_file, key_file)


def _mail_owner() -> tuple[int, int]:
    """Who owns the mail: the current user, or under root (a CI container), where Dovecot refuses
    to run its processes as root, the unprivileged ``dovecot`` user Debian's package made."""
    if os.getuid() != 0:
        return os.getuid(), os.getgid()
    entry = pwd.getpwnam("dovecot")
    return entry.pw_uid, entry.pw_gid


def _config(
    folder: Path, run_dir: Path, mail_dir: Path, port: int, tls_port: int, certificate: Certificate | None
) -> str:
    uid, gid = _mail_owner()
    user = _user_name(os.getuid())
    group = _group_name(os.getgid())
    # Dovecot's login and internal processes never run as root: under root they take the
    # unprivileged users Debian's package made.
    login_user = "dovenull" if os.getuid() == 0 else user
    internal_user, internal_group = ("dovecot", "dovecot") if os.getuid() == 0 else (user, group)
    tls = (
        f"ssl = yes\nssl_cert = <{certificate.cert_file}\nssl_key = <{certificate.key_file}\n"
        if certificate is not None
        else "ssl = no\n"
    )
    return f"""# A private Dovecot for keycrew's tests: nothing outside {folder} is read or written.
protocols = imap
listen = 127.0.0.1
base_dir = {run_dir}
state_dir = {folder / "state"}
log_path = {folder / "dovecot.log"}
info_log_path = {folder / "dovecot.log"}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
default_login_user = {login_user}
first_valid_uid = {min(uid, 100)}
first_valid_gid = {min(gid, 100)}
{tls}disable_plaintext_auth = no
auth_mechanisms = plain login
# A wrong password is answered at once, not after the default 2 s (the tests try one on purpose).
auth_failure_delay = 0
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail_dir}/%u
}}
mail_location = maildir:{mail_dir}/%u/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = {"yes" if certificate is not None else "no"}
  }}
}}
"""


def _user_name(uid: int) -> str:
    return pwd.getpwuid(uid).pw_name


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name


@dataclass
class Dovecot:
    folder: Path
    run_dir: Path
    mail_dir: Path
    port: int  # plain IMAP
    tls_port: int  # implicit TLS (IMAPS), when started with a certificate
    certificate: Certificate | None
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, folder: Path, *, tls: bool = True, timeout: float = 20) -> Dovecot:
        folder.mkdir(parents=True, exist_ok=True)
        # Unix sockets live in base_dir: a short path (a socket's path has at most 107 bytes).
        run_dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        # The mailboxes, outside ``folder`` (which may be private to the current user): owned by
        # the mail's owner, who may not be the current user.
        mail_dir = Path(tempfile.mkdtemp(prefix="dovecot-mail-"))
        mail_dir.chmod(0o711)
        os.chown(mail_dir, *_mail_owner())
        (folder / "state").mkdir(exist_ok=True)
        certificate = Certificate.make(folder / "tls") if tls else None
        port, tls_port = free_port(), free_port()
        conf = folder / "dovecot.conf"
        conf.write_text(_config(folder, run_dir, mail_dir, port, tls_port, certificate))
        process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(folder / "dovecot.stderr").open("wb"),
            start_new_session=True,
        )
        server = cls(folder, run_dir, mail_dir, port, tls_port, certificate, process)
        try:
            server._wait_ready(timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited {self.process.returncode}:\n{self.log()}")
            try:
                with self.client() as imap:
                    imap.select("INBOX")
                return
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not answer within {timeout} s:\n{self.log()}") from None
                time.sleep(0.1)

    def log(self, tail: int = 4000) -> str:
        """The end of Dovecot's log and standard error."""
        parts = []
        for name in ("dovecot.log", "dovecot.stderr"):
            path = self.folder / name
            if path.exists():
                parts.append(path.read_text(errors="replace")[-tail:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        shutil.rmtree(self.mail_dir, ignore_errors=True)

    # -- a client, as the mailbox's owner -------------------------------------------------------

    @contextlib.contextmanager
    def client(self, mailbox: str = "INBOX") -> Iterator[imaplib.IMAP4]:
        imap = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        try:
            imap.login(USER, PASSWORD)
            if mailbox:
                status, _ = imap.select(mailbox)
                if status != "OK":
                    raise imaplib.IMAP4.error(f"cannot select {mailbox}")
            yield imap
        finally:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                imap.logout()

    def tls_context(self) -> ssl.SSLContext:
        assert self.certificate is not None
        return ssl.create_default_context(cafile=str(self.certificate.cert_file))

    def append(self, raw: bytes, mailbox: str = "INBOX") -> None:
        """Deliver ``raw`` into ``mailbox``, unseen (as a delivery agent would)."""
        with self.client(mailbox="") as imap:
            status, data = imap.append(mailbox, "", None, raw)
            if status != "OK":
                raise AssertionError(f"APPEND failed: {data!r}")

    def messages(self, mailbox: str = "INBOX") -> dict[str, set[str]]:
        """Every message of ``mailbox``: its Message-ID → its flags."""
        found: dict[str, set[str]] = {}
        with self.client(mailbox) as imap:
            status, data = imap.uid("SEARCH", "ALL")
            uids = data[0].split() if status == "OK" and data and data[0] else []
            for message_uid in uids:
                status, parts = imap.uid(
                    "FETCH", message_uid, "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
                )
                flags: set[str] = set()
                message_id = ""
                for part in parts:
                    if isinstance(part, tuple):
                        head = part[0].decode(errors="replace")
                        match = re.search(r"FLAGS \(([^)]*)\)", head)
                        if match:
                            flags = set(match.group(1).split())
                        header = part[1].decode(errors="replace")
                        found_id = re.search(r"<[^>]+>", header)
                        message_id = found_id.group(0) if found_id else ""
                    elif isinstance(part, bytes):
                        trailer = re.search(r"FLAGS \(([^)]*)\)", part.decode(errors="replace"))
                        if trailer:
                            flags = set(trailer.group(1).split())
                if message_id:
                    found[message_id] = flags
        return found

    def flags(self, message_id: str, mailbox: str = "INBOX") -> set[str] | None:
        """The flags of the message with ``message_id`` (None when it is not, or no longer, there)."""
        return self.messages(mailbox).get(message_id)

    def wait_flags(
        self, message_id: str, predicate: object, timeout: float = 30, mailbox: str = "INBOX"
    ) -> set[str] | None:
        """The message's flags once ``predicate(flags)`` holds (AssertionError after ``timeout``)."""
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while True:
            flags = self.flags(message_id, mailbox)
            if predicate(flags):
                return flags
            if time.monotonic() > deadline:
                raise AssertionError(f"{message_id}: flags {flags} after {timeout} s")
            time.sleep(0.1)
