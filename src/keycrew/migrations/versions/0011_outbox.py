"""the e-mail outbox

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("template", sa.String(length=128), nullable=False),
        sa.Column("subject", sa.String(length=998), nullable=False),
        sa.Column("to_address", sa.String(length=255), nullable=False),
        sa.Column("to_user_id", sa.Integer(), nullable=True),
        sa.Column("context", keycrew.db.base.JSONDict(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["to_user_id"],
            ["users.id"],
            name=op.f("fk_outbox_messages_to_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_messages_dedupe_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_messages_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_messages_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_messages_template"), ["template"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_messages_to_user_id"), ["to_user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("outbox_messages")
