"""project, group and system hooks, their delivery queue and logs

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# (column, default for the existing row): GitLab's defaults.
SETTINGS = [
    ("allow_local_requests_from_web_hooks_and_services", False),
    ("allow_local_requests_from_system_hooks", True),
]


def upgrade() -> None:
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        for name, value in SETTINGS:
            batch_op.add_column(
                sa.Column(
                    name, sa.Boolean(), nullable=False, server_default=sa.true() if value else sa.false()
                )
            )
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        for name, _value in SETTINGS:
            batch_op.alter_column(name, server_default=None)
    op.create_table(
        "web_hooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("encrypted_token", sa.Text(), nullable=True),
        sa.Column("encrypted_url_variables", sa.Text(), nullable=True),
        sa.Column("encrypted_custom_headers", sa.Text(), nullable=True),
        sa.Column("enable_ssl_verification", sa.Boolean(), nullable=False),
        sa.Column("events", keycrew.db.base.JSONDict(), nullable=False),
        sa.Column("push_events_branch_filter", sa.Text(), nullable=True),
        sa.Column("branch_filter_strategy", sa.String(length=16), nullable=False),
        sa.Column("custom_webhook_template", sa.Text(), nullable=True),
        sa.Column("recent_failures", sa.Integer(), nullable=False),
        sa.Column("backoff_count", sa.Integer(), nullable=False),
        sa.Column("disabled_until", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("permanently_disabled", sa.Boolean(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_web_hooks_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["namespaces.id"], name=op.f("fk_web_hooks_group_id_namespaces"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_web_hooks_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_hooks")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("web_hooks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_hooks_group_id"), ["group_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_hooks_project_id"), ["project_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_hooks_type"), ["type"], unique=False)
    op.create_table(
        "web_hook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hook_id", sa.Integer(), nullable=False),
        sa.Column("event_uuid", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=36), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("event_header", sa.String(length=64), nullable=False),
        sa.Column("payload", keycrew.db.base.JSONDict(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["hook_id"],
            ["web_hooks.id"],
            name=op.f("fk_web_hook_deliveries_hook_id_web_hooks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_hook_deliveries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_web_hook_deliveries_idempotency_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("web_hook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_web_hook_deliveries_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_hook_deliveries_hook_id"), ["hook_id"], unique=False)
    op.create_table(
        "web_hook_logs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hook_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("request_headers", keycrew.db.base.JSONDict(), nullable=False),
        sa.Column("request_data", sa.Text(), nullable=False),
        sa.Column("response_status", sa.String(length=32), nullable=False),
        sa.Column("response_headers", keycrew.db.base.JSONDict(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("execution_duration", sa.Float(), nullable=False),
        sa.Column("internal_error_message", sa.Text(), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["web_hook_deliveries.id"],
            name=op.f("fk_web_hook_logs_delivery_id_web_hook_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["hook_id"], ["web_hooks.id"], name=op.f("fk_web_hook_logs_hook_id_web_hooks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_hook_logs")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("web_hook_logs", schema=None) as batch_op:
        batch_op.create_index("ix_web_hook_logs_hook_id_id", ["hook_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_hook_logs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_web_hook_logs_delivery_id"), ["delivery_id"], unique=False)


def downgrade() -> None:
    op.drop_table("web_hook_logs")
    op.drop_table("web_hook_deliveries")
    op.drop_table("web_hooks")
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        for name, _value in reversed(SETTINGS):
            batch_op.drop_column(name)
