"""packages: the package registry's packages and package files

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "packages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("package_type", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("normalized_name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("requires_python", sa.String(length=255), nullable=False),
        sa.Column("metadata_version", sa.String(length=16), nullable=True),
        sa.Column("summary", sa.String(length=255), nullable=True),
        sa.Column("creator_id", sa.Integer(), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["creator_id"], ["users.id"], name=op.f("fk_packages_creator_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_packages_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_packages")),
        sa.UniqueConstraint(
            "project_id",
            "package_type",
            "normalized_name",
            "version",
            name=op.f("uq_packages_project_id_package_type_normalized_name_version"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "package_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("package_id", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_md5", sa.String(length=32), nullable=True),
        sa.Column("uploader_id", sa.Integer(), nullable=True),
        sa.Column("deploy_token_id", sa.Integer(), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deploy_token_id"],
            ["deploy_tokens.id"],
            name=op.f("fk_package_files_deploy_token_id_deploy_tokens"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["packages.id"],
            name=op.f("fk_package_files_package_id_packages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["uploader_id"],
            ["users.id"],
            name=op.f("fk_package_files_uploader_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_package_files")),
        sa.UniqueConstraint("package_id", "file_name", name=op.f("uq_package_files_package_id_file_name")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("package_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_package_files_file_sha256"), ["file_sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_package_files_package_id"), ["package_id"], unique=False)


def downgrade() -> None:
    op.drop_table("package_files")
    op.drop_table("packages")
