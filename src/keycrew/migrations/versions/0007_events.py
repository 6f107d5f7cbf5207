"""contribution events and push payloads

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.SmallInteger(), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.Integer(), nullable=True),
        sa.Column("target_title", sa.String(length=255), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_events_author_id_users")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_events_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_author_id_id", "events", ["author_id", "id"], unique=False)
    op.create_index("ix_events_project_id_id", "events", ["project_id", "id"], unique=False)
    op.create_index("ix_events_target_type_target_id", "events", ["target_type", "target_id"], unique=False)
    op.create_table(
        "push_event_payloads",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("commit_count", sa.Integer(), nullable=False),
        sa.Column("action", sa.SmallInteger(), nullable=False),
        sa.Column("ref_type", sa.SmallInteger(), nullable=False),
        sa.Column("commit_from", sa.String(length=64), nullable=True),
        sa.Column("commit_to", sa.String(length=64), nullable=True),
        sa.Column("ref", sa.Text(), nullable=True),
        sa.Column("commit_title", sa.String(length=70), nullable=True),
        sa.Column("ref_count", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_push_event_payloads_event_id_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_push_event_payloads")),
    )


def downgrade() -> None:
    op.drop_table("push_event_payloads")
    op.drop_index("ix_events_target_type_target_id", table_name="events")
    op.drop_index("ix_events_project_id_id", table_name="events")
    op.drop_index("ix_events_author_id_id", table_name="events")
    op.drop_table("events")
