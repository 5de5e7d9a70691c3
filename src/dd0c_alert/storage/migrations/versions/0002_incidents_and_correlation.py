"""incidents and correlation

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 18:16:59.902771
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dd0c_alert.storage import schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "decisions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("alert_id", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("page", sa.Boolean(), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("suppressed_by", sa.String(length=32), nullable=True),
        sa.Column("would_suppress", sa.String(length=32), nullable=True),
        sa.Column("inhibited_by", sa.String(length=32), nullable=True),
        sa.Column("at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("replayed_at", schema.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_tenant_alert", ["tenant_id", "alert_id"], unique=False)
        batch_op.create_index(
            "ix_decisions_tenant_incident", ["tenant_id", "incident_id", "at"], unique=False
        )

    op.create_table(
        "feedback",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.create_index(
            "ix_feedback_tenant_incident", ["tenant_id", "incident_id"], unique=False
        )

    op.create_table(
        "incident_services",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=256), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "service", "incident_id"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column(
            "services",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("first_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("snoozed_until", schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("firing", sa.Integer(), nullable=False),
        sa.Column("probable_root", sa.String(length=256), nullable=False),
        sa.Column(
            "deploys",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("noise_score", sa.Integer(), nullable=False),
        sa.Column(
            "noise_reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "fingerprints",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "flapping",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("paged", sa.Boolean(), nullable=False),
        sa.Column("merged_into", sa.String(length=32), nullable=True),
        sa.Column("updated_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index("ix_incidents_tenant_id", ["tenant_id", "id"], unique=False)
        batch_op.create_index("ix_incidents_tenant_last", ["tenant_id", "last_at"], unique=False)
        batch_op.create_index(
            "ix_incidents_tenant_status", ["tenant_id", "status", "id"], unique=False
        )

    op.create_table(
        "inhibit_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column(
            "equal",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("inhibit_rules", schema=None) as batch_op:
        batch_op.create_index("ix_inhibit_rules_tenant", ["tenant_id"], unique=False)

    op.create_table(
        "service_dependencies",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("service", sa.String(length=256), nullable=False),
        sa.Column("depends_on", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "service", "depends_on"),
    )
    op.create_table(
        "silences",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("matchers", sa.Text(), nullable=False),
        sa.Column("starts_at", schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ends_at", schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("schedule", sa.String(length=200), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("silences", schema=None) as batch_op:
        batch_op.create_index("ix_silences_tenant", ["tenant_id"], unique=False)

    op.create_table(
        "suggestions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column(
            "evidence",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "proposal",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", schema.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "kind", "key", name="ux_suggestions_key"),
    )
    op.create_table(
        "tenant_settings",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incident_id", sa.String(length=32), nullable=True))
        batch_op.create_index(
            "ix_alerts_tenant_incident", ["tenant_id", "incident_id"], unique=False
        )
