"""machine identities: bot resources, service-account provisioning, deploy tokens

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bot_resource_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("bot_resource_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("provisioned_by_group_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("provisioned_by_project_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_users_bot_resource_id"), ["bot_resource_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_users_provisioned_by_group_id"), ["provisioned_by_group_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_users_provisioned_by_project_id"), ["provisioned_by_project_id"], unique=False
        )
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "service_access_tokens_expiration_enforced",
                sa.Boolean(),
                nullable=False,
                server_default=sa.true(),
            )
        )
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.alter_column("service_access_tokens_expiration_enforced", server_default=None)
    op.create_table(
        "deploy_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("token_digest", sa.String(length=128), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Date(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("creator_id", sa.Integer(), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(project_id IS NULL) <> (group_id IS NULL)", name=op.f("ck_deploy_tokens_one_owner")
        ),
        sa.ForeignKeyConstraint(
            ["creator_id"], ["users.id"], name=op.f("fk_deploy_tokens_creator_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["namespaces.id"],
            name=op.f("fk_deploy_tokens_group_id_namespaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_deploy_tokens_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_tokens")),
        sa.UniqueConstraint("token_digest", name=op.f("uq_deploy_tokens_token_digest")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("deploy_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deploy_tokens_group_id"), ["group_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deploy_tokens_project_id"), ["project_id"], unique=False)


def downgrade() -> None:
    op.drop_table("deploy_tokens")
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.drop_column("service_access_tokens_expiration_enforced")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_provisioned_by_project_id"))
        batch_op.drop_index(batch_op.f("ix_users_provisioned_by_group_id"))
        batch_op.drop_index(batch_op.f("ix_users_bot_resource_id"))
        batch_op.drop_column("provisioned_by_project_id")
        batch_op.drop_column("provisioned_by_group_id")
        batch_op.drop_column("bot_resource_id")
        batch_op.drop_column("bot_resource_type")
