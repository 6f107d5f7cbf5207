"""placeholder reassignment: the source user's token and job state, the admin bypass setting

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_source_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reassignment_token", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("reassignment_attempts", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("reassignment_error", sa.Text(), nullable=True))
    with op.batch_alter_table("import_source_users", schema=None) as batch_op:
        batch_op.alter_column("reassignment_attempts", server_default=None)
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "allow_bypass_placeholder_confirmation",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.alter_column("allow_bypass_placeholder_confirmation", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("instance_settings", schema=None) as batch_op:
        batch_op.drop_column("allow_bypass_placeholder_confirmation")
    with op.batch_alter_table("import_source_users", schema=None) as batch_op:
        batch_op.drop_column("reassignment_error")
        batch_op.drop_column("reassignment_attempts")
        batch_op.drop_column("reassignment_token")
