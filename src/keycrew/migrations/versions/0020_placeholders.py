"""placeholder users and their source users (direct transfer)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_source_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("source_user_identifier", sa.String(length=255), nullable=False),
        sa.Column("source_hostname", sa.String(length=255), nullable=False),
        sa.Column("source_name", sa.String(length=255), nullable=True),
        sa.Column("source_username", sa.String(length=255), nullable=True),
        sa.Column("placeholder_user_id", sa.Integer(), nullable=True),
        sa.Column("reassign_to_user_id", sa.Integer(), nullable=True),
        sa.Column("reassigned_by_user_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("import_type", sa.String(length=64), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_import_source_users_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["placeholder_user_id"],
            ["users.id"],
            name=op.f("fk_import_source_users_placeholder_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reassign_to_user_id"],
            ["users.id"],
            name=op.f("fk_import_source_users_reassign_to_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["reassigned_by_user_id"],
            ["users.id"],
            name=op.f("fk_import_source_users_reassigned_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_source_users")),
        sa.UniqueConstraint(
            "namespace_id",
            "source_hostname",
            "source_user_identifier",
            "import_type",
            name="uq_import_source_users_source",
        ),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("import_source_users", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_import_source_users_namespace_id"), ["namespace_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_import_source_users_placeholder_user_id"), ["placeholder_user_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_import_source_users_reassign_to_user_id"), ["reassign_to_user_id"], unique=False
        )
    op.create_table(
        "namespace_import_users",
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_namespace_import_users_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_namespace_import_users_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("namespace_id", name=op.f("pk_namespace_import_users")),
        sa.UniqueConstraint("user_id", name=op.f("uq_namespace_import_users_user_id")),
    )


def downgrade() -> None:
    op.drop_table("namespace_import_users")
    with op.batch_alter_table("import_source_users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_source_users_reassign_to_user_id"))
        batch_op.drop_index(batch_op.f("ix_import_source_users_placeholder_user_id"))
        batch_op.drop_index(batch_op.f("ix_import_source_users_namespace_id"))
    op.drop_table("import_source_users")
