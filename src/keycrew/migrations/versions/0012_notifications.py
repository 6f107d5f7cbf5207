"""notification settings and token expiry notification markers

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

MARKERS = (
    "seven_days_notification_sent_at",
    "thirty_days_notification_sent_at",
    "sixty_days_notification_sent_at",
)
FLAGS = ("expire_notification_delivered", "after_expiry_notification_delivered")


def upgrade() -> None:
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "resource_access_token_notify_inherited",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.alter_column("resource_access_token_notify_inherited", server_default=None)
    op.create_table(
        "notification_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source_type", sa.String(length=32), nullable=True),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("events", keycrew.db.base.JSONDict(), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notification_settings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_settings")),
        sa.UniqueConstraint(
            "user_id",
            "source_type",
            "source_id",
            name=op.f("uq_notification_settings_user_id_source_type_source_id"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "uq_notification_settings_global",
        "notification_settings",
        ["user_id"],
        unique=True,
        sqlite_where=sa.text("source_type IS NULL"),
        postgresql_where=sa.text("source_type IS NULL"),
    )
    op.create_index(
        "ix_notification_settings_source", "notification_settings", ["source_type", "source_id"], unique=False
    )
    # Plain ADD COLUMNs (no table copy on SQLite); the booleans keep their server default, as the
    # model says, so that existing rows read "not delivered".
    for name in MARKERS:
        op.add_column(
            "personal_access_tokens",
            sa.Column(name, keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        )
    for name in FLAGS:
        op.add_column(
            "personal_access_tokens",
            sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false()),
        )
    op.create_index(
        "ix_personal_access_tokens_expiry_scan",
        "personal_access_tokens",
        ["expires_at", "id"],
        unique=False,
        sqlite_where=sa.text("revoked = 0 AND impersonation = 0"),
        postgresql_where=sa.text("revoked = false AND impersonation = false"),
    )


def downgrade() -> None:
    op.drop_index("ix_personal_access_tokens_expiry_scan", table_name="personal_access_tokens")
    with op.batch_alter_table("personal_access_tokens", schema=None) as batch_op:
        for name in (*FLAGS, *reversed(MARKERS)):
            batch_op.drop_column(name)
    op.drop_index("ix_notification_settings_source", table_name="notification_settings")
    op.drop_index("uq_notification_settings_global", table_name="notification_settings")
    op.drop_table("notification_settings")
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.drop_column("resource_access_token_notify_inherited")
