"""Service Desk (Support Bot)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_desk_settings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("project_key", sa.String(length=255), nullable=True),
        sa.Column("thank_you_template", sa.Text(), nullable=True),
        sa.Column("new_note_template", sa.Text(), nullable=True),
        sa.Column("new_participant_template", sa.Text(), nullable=True),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_service_desk_settings_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_service_desk_settings")),
        sa.UniqueConstraint("project_key", name=op.f("uq_service_desk_settings_project_key")),
    )
    op.create_table(
        "issue_email_participants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_email_participants_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_email_participants")),
        sa.UniqueConstraint("issue_id", "email", name=op.f("uq_issue_email_participants_issue_id_email")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("issue_email_participants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issue_email_participants_issue_id"), ["issue_id"], unique=False)
    op.create_table(
        "service_desk_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("reply_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_service_desk_messages_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_service_desk_messages_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_desk_messages")),
        sa.UniqueConstraint("reply_key", name=op.f("uq_service_desk_messages_reply_key")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("service_desk_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_desk_messages_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_desk_messages_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_desk_messages_project_id"), ["project_id"], unique=False)
    op.create_table(
        "service_desk_uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_service_desk_uploads_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_service_desk_uploads_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_desk_uploads")),
        sa.UniqueConstraint("secret", "filename", name=op.f("uq_service_desk_uploads_secret_filename")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("service_desk_uploads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_service_desk_uploads_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_service_desk_uploads_project_id"), ["project_id"], unique=False)
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("headers", keycrew.db.base.JSONDict(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_column("headers")
    with op.batch_alter_table("service_desk_uploads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_desk_uploads_project_id"))
        batch_op.drop_index(batch_op.f("ix_service_desk_uploads_issue_id"))
    op.drop_table("service_desk_uploads")
    with op.batch_alter_table("service_desk_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_service_desk_messages_project_id"))
        batch_op.drop_index(batch_op.f("ix_service_desk_messages_message_id"))
        batch_op.drop_index(batch_op.f("ix_service_desk_messages_issue_id"))
    op.drop_table("service_desk_messages")
    with op.batch_alter_table("issue_email_participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issue_email_participants_issue_id"))
    op.drop_table("issue_email_participants")
    op.drop_table("service_desk_settings")
