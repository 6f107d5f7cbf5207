"""rate limits: the request throttles' settings and per-user overrides

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# (column, default for the existing row); the *_enabled columns are booleans, the others integers.
THROTTLES: list[tuple[str, int | None]] = [
    ("throttle_authenticated_api_enabled", None),
    ("throttle_authenticated_api_requests_per_period", 7200),
    ("throttle_authenticated_api_period_in_seconds", 3600),
    ("throttle_unauthenticated_api_enabled", None),
    ("throttle_unauthenticated_api_requests_per_period", 3600),
    ("throttle_unauthenticated_api_period_in_seconds", 3600),
    ("throttle_authenticated_git_http_enabled", None),
    ("throttle_authenticated_git_http_requests_per_period", 3600),
    ("throttle_authenticated_git_http_period_in_seconds", 3600),
]


def _column(name: str, default: int | None) -> sa.Column[object]:
    if default is None:
        return sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
    return sa.Column(name, sa.Integer(), nullable=False, server_default=sa.text(str(default)))


def upgrade() -> None:
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        for name, default in THROTTLES:
            batch_op.add_column(_column(name, default))
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        for name, _default in THROTTLES:
            batch_op.alter_column(name, server_default=None)
    op.create_table(
        "rate_limit_overrides",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("requests_per_period", sa.Integer(), nullable=False),
        sa.Column("period_in_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_rate_limit_overrides_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_rate_limit_overrides")),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_overrides")
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        for name, _default in reversed(THROTTLES):
            batch_op.drop_column(name)
