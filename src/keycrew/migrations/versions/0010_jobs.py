"""background job runs and leases

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_name", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("node", sa.String(length=255), nullable=False),
        sa.Column("scheduled_for", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("counts", keycrew.db.base.JSONDict(), nullable=False),
        sa.Column("notes", keycrew.db.base.JSONList(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
        sa.UniqueConstraint("job_name", "scheduled_for", name=op.f("uq_job_runs_job_name_scheduled_for")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index("ix_job_runs_job_name_id", ["job_name", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_runs_started_at"), ["started_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_job_runs_status"), ["status"], unique=False)
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("lease_until", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )


def downgrade() -> None:
    op.drop_table("job_leases")
    op.drop_table("job_runs")
