"""direct transfer: bulk imports, their entities, failures and copied records; bulk_import_enabled

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bulk_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_type", sa.String(length=16), nullable=False),
        sa.Column("source_url", sa.String(length=255), nullable=False),
        sa.Column("source_version", sa.String(length=64), nullable=True),
        sa.Column("access_token_sealed", sa.Text(), nullable=True),
        sa.Column("has_failures", sa.Boolean(), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_bulk_imports_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_imports")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("bulk_imports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bulk_imports_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_bulk_imports_user_id"), ["user_id"], unique=False)

    op.create_table(
        "bulk_import_entities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bulk_import_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("entity_type", sa.String(length=16), nullable=False),
        sa.Column("source_full_path", sa.String(length=255), nullable=False),
        sa.Column("source_xid", sa.Integer(), nullable=True),
        sa.Column("destination_slug", sa.String(length=255), nullable=False),
        sa.Column("destination_namespace", sa.String(length=255), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=True),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("migrate_projects", sa.Boolean(), nullable=False),
        sa.Column("migrate_memberships", sa.Boolean(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("stats", sa.Text(), nullable=True),
        sa.Column("has_failures", sa.Boolean(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retry_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bulk_import_id"],
            ["bulk_imports.id"],
            name=op.f("fk_bulk_import_entities_bulk_import_id_bulk_imports"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_bulk_import_entities_namespace_id_namespaces"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["bulk_import_entities.id"],
            name=op.f("fk_bulk_import_entities_parent_id_bulk_import_entities"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_bulk_import_entities_project_id_projects"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_import_entities")),
        sa.UniqueConstraint(
            "bulk_import_id", "source_full_path", "entity_type", name="uq_bulk_import_entities_source"
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("bulk_import_entities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_bulk_import_entities_bulk_import_id"), ["bulk_import_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_bulk_import_entities_parent_id"), ["parent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bulk_import_entities_status"), ["status"], unique=False)

    op.create_table(
        "bulk_import_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=64), nullable=True),
        sa.Column("step", sa.String(length=64), nullable=True),
        sa.Column("exception_class", sa.String(length=128), nullable=False),
        sa.Column("exception_message", sa.Text(), nullable=False),
        sa.Column("correlation_id_value", sa.String(length=64), nullable=True),
        sa.Column("source_url", sa.String(length=1024), nullable=True),
        sa.Column("source_title", sa.String(length=1024), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["bulk_import_entities.id"],
            name=op.f("fk_bulk_import_failures_entity_id_bulk_import_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_import_failures")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("bulk_import_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bulk_import_failures_entity_id"), ["entity_id"], unique=False)

    op.create_table(
        "bulk_import_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=32), nullable=False),
        sa.Column("source_id", sa.String(length=255), nullable=False),
        sa.Column("local_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["entity_id"],
            ["bulk_import_entities.id"],
            name=op.f("fk_bulk_import_records_entity_id_bulk_import_entities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulk_import_records")),
        sa.UniqueConstraint("entity_id", "relation", "source_id", name="uq_bulk_import_records_source"),
    )
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("bulk_import_enabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.alter_column("bulk_import_enabled", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.drop_column("bulk_import_enabled")

    op.drop_table("bulk_import_records")
    with op.batch_alter_table("bulk_import_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bulk_import_failures_entity_id"))

    op.drop_table("bulk_import_failures")
    with op.batch_alter_table("bulk_import_entities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bulk_import_entities_status"))
        batch_op.drop_index(batch_op.f("ix_bulk_import_entities_parent_id"))
        batch_op.drop_index(batch_op.f("ix_bulk_import_entities_bulk_import_id"))

    op.drop_table("bulk_import_entities")
    with op.batch_alter_table("bulk_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bulk_imports_user_id"))
        batch_op.drop_index(batch_op.f("ix_bulk_imports_status"))

    op.drop_table("bulk_imports")
