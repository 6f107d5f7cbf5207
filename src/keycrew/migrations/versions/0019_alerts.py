"""alert integrations, alerts and incidents (Alert Bot)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

import keycrew.db.base

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_management_http_integrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("integration_type", sa.String(length=16), nullable=False),
        sa.Column("endpoint_identifier", sa.String(length=32), nullable=False),
        sa.Column("token_digest", sa.String(length=128), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_alert_management_http_integrations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_management_http_integrations")),
        sa.UniqueConstraint(
            "project_id",
            "endpoint_identifier",
            name=op.f("uq_alert_management_http_integrations_project_id_endpoint_identifier"),
        ),
        sa.UniqueConstraint("token_digest", name=op.f("uq_alert_management_http_integrations_token_digest")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("alert_management_http_integrations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_management_http_integrations_project_id"), ["project_id"], unique=False
        )

    op.create_table(
        "alert_management_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("iid", sa.Integer(), nullable=False),
        sa.Column("integration_id", sa.Integer(), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("service", sa.String(length=100), nullable=True),
        sa.Column("monitoring_tool", sa.String(length=100), nullable=True),
        sa.Column("hosts", keycrew.db.base.JSONList(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=40), nullable=True),
        sa.Column("environment_name", sa.String(length=255), nullable=True),
        sa.Column("started_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("payload", keycrew.db.base.JSONDict(), nullable=False),
        sa.Column("created_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["integration_id"],
            ["alert_management_http_integrations.id"],
            name=op.f("fk_alert_management_alerts_integration_id_alert_management_http_integrations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_alert_management_alerts_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_alert_management_alerts_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_management_alerts")),
        sa.UniqueConstraint("project_id", "iid", name=op.f("uq_alert_management_alerts_project_id_iid")),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("alert_management_alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_management_alerts_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alert_management_alerts_integration_id"), ["integration_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_alert_management_alerts_issue_id"), ["issue_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_alert_management_alerts_fingerprint"), ["fingerprint"], unique=False
        )

    op.create_table(
        "project_incident_management_settings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("create_issue", sa.Boolean(), nullable=False),
        sa.Column("send_email", sa.Boolean(), nullable=False),
        sa.Column("auto_close_incident", sa.Boolean(), nullable=False),
        sa.Column("last_alert_iid", sa.Integer(), nullable=False),
        sa.Column("updated_at", keycrew.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_incident_management_settings_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_incident_management_settings")),
    )


def downgrade() -> None:
    op.drop_table("project_incident_management_settings")
    with op.batch_alter_table("alert_management_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_management_alerts_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_alert_management_alerts_issue_id"))
        batch_op.drop_index(batch_op.f("ix_alert_management_alerts_integration_id"))
        batch_op.drop_index(batch_op.f("ix_alert_management_alerts_project_id"))
    op.drop_table("alert_management_alerts")
    with op.batch_alter_table("alert_management_http_integrations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_management_http_integrations_project_id"))
    op.drop_table("alert_management_http_integrations")
