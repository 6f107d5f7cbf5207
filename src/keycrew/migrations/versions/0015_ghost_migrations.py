"""asynchronous Ghost migrations

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ghost_user_migrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("initiator_user_id", sa.Integer(), nullable=True),
        sa.Column("hard_delete", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consume_after", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("moved", keycrew.db.base.JSONDict(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["initiator_user_id"],
            ["users.id"],
            name=op.f("fk_ghost_user_migrations_initiator_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ghost_user_migrations_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ghost_user_migrations")),
        sa.UniqueConstraint("user_id", name=op.f("uq_ghost_user_migrations_user_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_ghost_user_migrations_consume_after"),
        "ghost_user_migrations",
        ["consume_after"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ghost_user_migrations_consume_after"), table_name="ghost_user_migrations")
    op.drop_table("ghost_user_migrations")
