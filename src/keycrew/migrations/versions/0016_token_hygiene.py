"""scopes and methods each token exercised

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_usage_scopes",
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("first_seen_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["personal_access_tokens.id"],
            name=op.f("fk_token_usage_scopes_token_id_personal_access_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_id", "scope", "method", name=op.f("pk_token_usage_scopes")),
    )
    op.create_table(
        "token_usage_ips",
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("last_seen_on", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["personal_access_tokens.id"],
            name=op.f("fk_token_usage_ips_token_id_personal_access_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_id", "ip", name=op.f("pk_token_usage_ips")),
    )
    op.create_table(
        "token_usage_days",
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"],
            ["personal_access_tokens.id"],
            name=op.f("fk_token_usage_days_token_id_personal_access_tokens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_id", "day", name=op.f("pk_token_usage_days")),
    )


def downgrade() -> None:
    op.drop_table("token_usage_days")
    op.drop_table("token_usage_ips")
    op.drop_table("token_usage_scopes")
