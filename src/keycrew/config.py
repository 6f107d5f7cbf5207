"""One typed settings object, read from the environment (prefix KEYCREW_) at the edge."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"
SECRET_KEY_MIN_LENGTH = 32
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")
# Addresses that mean "every interface": not something a client can be sent to.
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # noqa: S104 (compared against, never bound)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KEYCREW_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str = ""
    # Empty: http://HOST:PORT (127.0.0.1 when HOST listens on every interface).
    external_url: str = ""
    initial_root_password: SecretStr | None = None
    initial_root_token: SecretStr | None = None
    secret_key: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    # Proxies whose X-Forwarded-For/-Proto headers are believed (comma-separated IPs or "*").
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: Literal["critical", "error", "warning", "info", "debug", "trace"] = "info"
    # Optional prefix put in front of every token kind prefix ("acme-glpat-...").
    instance_token_prefix: str = ""
    db_pool_size: int = Field(default=20, ge=1)
    # Seconds a SQLite statement waits for another connection's write lock before the request is
    # answered 503 (SQLite's busy timeout; no effect on PostgreSQL).
    db_busy_timeout: float = Field(default=30.0, gt=0, le=3600)
    # Where GET requests read: "inline" on the event loop, "threadpool", or "auto" (inline on
    # SQLite, whose reads take microseconds; the threadpool on PostgreSQL). See docs/operations.md.
    reads: Literal["auto", "inline", "threadpool"] = "auto"
    # Container registry token service (/jwt/auth): service and issuer must equal the registry's
    # auth.token.service and auth.token.issuer. The signing key and its certificate (the registry's
    # rootcertbundle) are generated on first need, in the data dir unless these paths say otherwise.
    registry_service: str = Field(default="container_registry", min_length=1)
    registry_issuer: str = Field(default="keycrew-issuer", min_length=1)
    registry_token_lifetime: int = Field(default=300, ge=60, le=86400)  # seconds
    registry_key_file: Path | None = None
    registry_certificate_file: Path | None = None
    # Largest package file accepted by the package registry, in bytes (GitLab's pypi_max_file_size: 3 GiB).
    packages_max_file_size: int = Field(default=3 * 1024**3, ge=1)

    # Client addresses allowed to read /-/metrics (comma-separated IPs or CIDRs), as GitLab's
    # monitoring IP allowlist; others get 404.
    metrics_allow_ips: str = "127.0.0.0/8,::1"

    # A web UI session ends after this many minutes without a request (GitLab's session_expire_delay).
    session_expire_delay: int = Field(default=10080, ge=1, le=525600)

    # Serve the OpenAPI document (/-/openapi.json) and its viewer (/-/docs) over HTTP; off by default.
    api_docs: bool = False
    # Largest body a web UI form may post, in bytes; a bigger one is refused with 413 unread.
    web_form_max_size: int = Field(default=64 * 1024, ge=1024)
    # Largest request line plus headers `keycrew serve` reads, in bytes; a bigger one gets 431 (or 400).
    http_max_header_size: int = Field(default=64 * 1024, ge=8 * 1024)

    # Rate limits: counters in Redis shared by every worker and node (redis://HOST:PORT/DB), or in
    # each process when empty. Keys start with the prefix (several instances may share a Redis).
    redis_url: str = ""
    redis_key_prefix: str = "keycrew:"

    # Background jobs: the scheduler inside `keycrew serve` runs each job on its schedule ("on"), or
    # this node runs none ("off"; other nodes, cron or `keycrew jobs run` do).
    jobs: Literal["on", "off"] = "on"

    # Direct transfer: how the job reads a source instance. Seconds to wait for an answer, retries
    # of a 5xx/429/timeout within one request, and the first pause between them (doubled each
    # retry; an entity whose source keeps failing is tried again later, this pause times 30,
    # doubled each time).
    import_source_timeout: float = Field(default=30.0, gt=0, le=3600)
    import_source_retries: int = Field(default=5, ge=0, le=20)
    import_source_backoff: float = Field(default=1.0, ge=0, le=60)

    # Outgoing e-mail. Without a host, messages stay in the outbox (admins read them in the UI).
    smtp_host: str = ""
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_tls: Literal["none", "starttls", "ssl"] = "none"
    smtp_user: str = ""
    smtp_password: SecretStr | None = None
    # Seconds to wait for the SMTP server before a delivery attempt counts as failed.
    smtp_timeout: float = Field(default=10.0, gt=0)
    # A PEM file of the CA certificates trusted for STARTTLS and SSL (a private CA); empty: the
    # system's. The server's certificate and name are always verified.
    smtp_ca_file: Path | None = None
    # The From address; empty: keycrew@<host of the external URL>.
    email_from: str = ""

    # Incoming e-mail (Service Desk; GitLab's incoming_email.address): an address with %{key}
    # where the project's key goes, e.g. incoming+%{key}@example.com; empty: no Service Desk.
    incoming_email_address: str = ""
    # The built-in SMTP receiver an MTA relays incoming mail to: off unless a port is set.
    incoming_smtp_port: int | None = Field(default=None, ge=1, le=65535)
    incoming_smtp_host: str = "127.0.0.1"
    # Largest incoming message accepted, in bytes (larger: refused, SMTP 552).
    incoming_email_max_size: int = Field(default=10 * 1024 * 1024, ge=1024)

    # Service Desk mail read from an IMAP mailbox (GitLab's mail_room): off unless the host is set.
    # Every poll reads the UNSEEN messages, hands each to Service Desk and marks it \Seen (or deletes
    # it); one node per mailbox polls it (docs/service-desk.md).
    incoming_imap_host: str = ""
    incoming_imap_port: int = Field(default=993, ge=1, le=65535)
    incoming_imap_ssl: bool = True  # implicit TLS (port 993)
    incoming_imap_start_tls: bool = False  # STARTTLS on a plain connection (port 143)
    incoming_imap_user: str = ""
    incoming_imap_password: SecretStr | None = None
    incoming_imap_mailbox: str = Field(default="INBOX", min_length=1)
    # Seconds between two polls (mail_room idles; keycrew polls).
    incoming_imap_poll_interval: float = Field(default=60.0, gt=0, le=86400)
    # A PEM file of the CA certificates trusted for the IMAP server (a private CA); empty: the system's.
    incoming_imap_ca_file: Path | None = None
    # Delete (and expunge) a message once handled instead of marking it \Seen.
    incoming_imap_delete_after_delivery: bool = False

    @model_validator(mode="after")
    def _check_incoming_imap(self) -> Settings:
        if self.incoming_imap_host.strip() and self.incoming_imap_ssl and self.incoming_imap_start_tls:
            raise ValueError(
                "KEYCREW_INCOMING_IMAP_START_TLS needs KEYCREW_INCOMING_IMAP_SSL=false "
                "(STARTTLS upgrades a plain connection; SSL is TLS from the start)"
            )
        return self

    @field_validator("external_url")
    @classmethod
    def _check_external_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname):
            raise ValueError("must be an http:// or https:// URL, such as https://keycrew.example.com")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        value = value.strip()
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if value and ("://" not in value or scheme not in DATABASE_SCHEMES):
            raise ValueError("must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
        return value

    @field_validator("metrics_allow_ips")
    @classmethod
    def _check_metrics_allow_ips(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{part.strip()!r} is not an IP address or CIDR range") from None
        return value

    @field_validator("jobs", "smtp_tls", mode="before")
    @classmethod
    def _lower_choice(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("initial_root_password")
    @classmethod
    def _password_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 8:
            raise ValueError("must be at least 8 characters")
        return value

    @field_validator("initial_root_token")
    @classmethod
    def _token_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 20:
            raise ValueError("must be at least 20 characters")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < SECRET_KEY_MIN_LENGTH:
            raise ValueError(f"must be at least {SECRET_KEY_MIN_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _default_external_url(self) -> Settings:
        if not self.external_url:
            host = "127.0.0.1" if self.host in WILDCARD_HOSTS else self.host
            self.external_url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        return self

    @property
    def registry_key_path(self) -> Path:
        return self.registry_key_file or self.data_dir / "registry-token.key"

    @property
    def registry_certificate_path(self) -> Path:
        return self.registry_certificate_file or self.data_dir / "registry-token.crt"

    @property
    def host_name(self) -> str:
        """The instance's host name, used in the e-mail addresses of bots."""
        return urlsplit(self.external_url).hostname or "localhost"

    @property
    def sender(self) -> str:
        """The From address of keycrew's e-mail (KEYCREW_EMAIL_FROM, else keycrew@<host>)."""
        return self.email_from.strip() or f"keycrew@{self.host_name}"

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite:///{(self.data_dir / 'keycrew.sqlite3').resolve()}"
        # Accept the plain libpq form and pick the psycopg 3 driver for it.
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @cached_property
    def resolved_secret_key(self) -> bytes:
        """The server secret: from the environment, else from (or generated into) the data dir.

        The file is written whole under a temporary name, then linked into place, so that
        processes starting together agree on one key and none reads a half-written file.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / SECRET_KEY_FILE
        if not path.exists():
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(secrets.token_hex(32))
                with contextlib.suppress(FileExistsError):  # another process won the race
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        key = path.read_text().strip()
        if len(key) < SECRET_KEY_MIN_LENGTH:
            raise ValueError(
                f"{path} holds no usable secret key: restore it from a backup "
                "(removing it makes a new key, and every existing token stops working)"
            )
        return key.encode()
