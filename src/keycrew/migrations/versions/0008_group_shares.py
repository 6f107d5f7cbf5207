"""group and project sharing links

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _link_table(name: str, owner: str, owner_table: str, group: str) -> None:
    """A sharing link: ``owner`` (the shared group or project) shared with ``group``; deleting
    either side removes the link."""
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(owner, sa.Integer(), nullable=False),
        sa.Column(group, sa.Integer(), nullable=False),
        sa.Column("group_access", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Date(), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            [owner], [f"{owner_table}.id"], name=op.f(f"fk_{name}_{owner}_{owner_table}"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            [group], ["namespaces.id"], name=op.f(f"fk_{name}_{group}_namespaces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
        sa.UniqueConstraint(owner, group, name=op.f(f"uq_{name}_{owner}_{group}")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table(name, schema=None) as batch_op:
        batch_op.create_index(batch_op.f(f"ix_{name}_{group}"), [group], unique=False)


def upgrade() -> None:
    _link_table("group_group_links", "shared_group_id", "namespaces", "shared_with_group_id")
    _link_table("project_group_links", "project_id", "projects", "group_id")


def downgrade() -> None:
    for name, group in (("project_group_links", "group_id"), ("group_group_links", "shared_with_group_id")):
        with op.batch_alter_table(name, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{name}_{group}"))
        op.drop_table(name)
