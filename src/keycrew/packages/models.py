"""Packages of a project's package registry and the files uploaded to them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from keycrew.db.base import Base, UTCDateTime


class Package(Base):
    """One version of one named package in a project (GitLab's packages_packages row).

    ``name`` keeps the spelling of the first upload; ``normalized_name`` (PEP 503) is what
    lookups and uniqueness use, so "My_Pkg" and "my-pkg" are one package.
    """

    __tablename__ = "packages"
    __table_args__ = (
        UniqueConstraint("project_id", "package_type", "normalized_name", "version"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No index of its own: the unique constraint below starts with it.
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    package_type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    normalized_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    # PyPI metadata sent with the first file of this version (GitLab's pypi_metadata row).
    requires_python: Mapped[str] = mapped_column(String(255), default="")
    metadata_version: Mapped[str | None] = mapped_column(String(16))
    summary: Mapped[str | None] = mapped_column(String(255))
    creator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    files: Mapped[list[PackageFile]] = relationship(
        back_populates="package", order_by="PackageFile.id", passive_deletes=True
    )


class PackageFile(Base):
    """A file of a package version, kept on disk under its SHA-256 (see packages/storage.py)."""

    __tablename__ = "package_files"
    __table_args__ = (
        # GitLab: "File name has already been taken" within one package version.
        UniqueConstraint("package_id", "file_name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), index=True)
    file_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    file_md5: Mapped[str | None] = mapped_column(String(32))
    # Who uploaded it: a user (with the id of the token used), or a deploy token.
    uploader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    deploy_token_id: Mapped[int | None] = mapped_column(ForeignKey("deploy_tokens.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    package: Mapped[Package] = relationship(back_populates="files")
