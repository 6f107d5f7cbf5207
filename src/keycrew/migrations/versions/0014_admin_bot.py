"""compliance frameworks and inactive project warnings

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "user_deactivation_emails_enabled", sa.Boolean(), nullable=False, server_default=sa.true()
            )
        )
        batch_op.add_column(
            sa.Column("email_confirmation_setting", sa.String(length=8), nullable=False, server_default="off")
        )
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.alter_column("user_deactivation_emails_enabled", server_default=None)
        batch_op.alter_column("email_confirmation_setting", server_default=None)

    op.create_table(
        "compliance_frameworks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("color", sa.String(length=7), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"],
            ["namespaces.id"],
            name=op.f("fk_compliance_frameworks_namespace_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_frameworks")),
        sa.UniqueConstraint("namespace_id", "name", name=op.f("uq_compliance_frameworks_namespace_id_name")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("compliance_frameworks", schema=None) as batch_op:
        batch_op.create_index(
            "uq_compliance_frameworks_default",
            ["namespace_id"],
            unique=True,
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        )

    op.create_table(
        "project_compliance_frameworks",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("framework_id", sa.Integer(), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["framework_id"],
            ["compliance_frameworks.id"],
            name=op.f("fk_project_compliance_frameworks_framework_id_compliance_frameworks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_compliance_frameworks_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "framework_id", name=op.f("pk_project_compliance_frameworks")),
    )
    with op.batch_alter_table("project_compliance_frameworks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_project_compliance_frameworks_framework_id"), ["framework_id"], unique=False
        )

    op.create_table(
        "inactive_project_warnings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("warned_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deletion_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_inactive_project_warnings_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_inactive_project_warnings")),
    )


def downgrade() -> None:
    op.drop_table("inactive_project_warnings")
    with op.batch_alter_table("project_compliance_frameworks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_project_compliance_frameworks_framework_id"))
    op.drop_table("project_compliance_frameworks")
    with op.batch_alter_table("compliance_frameworks", schema=None) as batch_op:
        batch_op.drop_index("uq_compliance_frameworks_default")
    op.drop_table("compliance_frameworks")
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.drop_column("email_confirmation_setting")
        batch_op.drop_column("user_deactivation_emails_enabled")
