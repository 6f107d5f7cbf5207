"""settings that govern bots and tokens, Admin Mode, resource_access_token_creation_allowed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# (column, type, default for the existing row): the settings row gets GitLab's defaults.
SETTINGS: list[tuple[str, type, int | bool]] = [
    ("default_projects_limit", sa.Integer, 100000),
    ("deactivate_dormant_users", sa.Boolean, False),
    ("deactivate_dormant_users_period", sa.Integer, 90),
    ("delete_unconfirmed_users", sa.Boolean, False),
    ("unconfirmed_users_delete_after_days", sa.Integer, 7),
    ("delete_inactive_projects", sa.Boolean, False),
    ("inactive_projects_delete_after_months", sa.Integer, 2),
    ("inactive_projects_min_size_mb", sa.Integer, 0),
    ("inactive_projects_send_warning_email_after_months", sa.Integer, 1),
    ("allow_top_level_group_owners_to_create_service_accounts", sa.Boolean, False),
    ("admin_mode", sa.Boolean, False),
]


def _default(kind: type, value: int | bool) -> sa.ColumnElement[bool] | sa.TextClause:
    if kind is sa.Boolean:
        return sa.true() if value else sa.false()
    return sa.text(str(value))


def upgrade() -> None:
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        for name, kind, value in SETTINGS:
            batch_op.add_column(sa.Column(name, kind(), nullable=False, server_default=_default(kind, value)))
        batch_op.add_column(sa.Column("personal_access_token_prefix", sa.String(length=20), nullable=True))
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        for name, _kind, _value in SETTINGS:
            batch_op.alter_column(name, server_default=None)
    # The server default stays (as in the model): dropping it would make SQLite copy the table,
    # and dropping the original would cascade to everything that references a namespace.
    op.add_column(
        "namespaces",
        sa.Column(
            "resource_access_token_creation_allowed", sa.Boolean(), nullable=False, server_default=sa.true()
        ),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("admin_mode_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_column("admin_mode_at")
    op.drop_column("namespaces", "resource_access_token_creation_allowed")
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.drop_column("personal_access_token_prefix")
        for name, _kind, _value in reversed(SETTINGS):
            batch_op.drop_column(name)
