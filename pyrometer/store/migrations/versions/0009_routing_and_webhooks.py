"""Acting on temperature: assignments (with the speed-to-lead clock), sales touches,
webhook endpoints and the outbox of their deliveries.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.Column("rep_id", sa.String(length=200), nullable=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("rule", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("cause", sa.String(length=250), nullable=False),
        sa.Column("counts", sa.Boolean(), nullable=False),
        sa.Column("clock_us", sa.BigInteger(), nullable=True),
        sa.Column("sla_due_us", sa.BigInteger(), nullable=True),
        sa.Column("first_touch_us", sa.BigInteger(), nullable=True),
        sa.Column("breached_us", sa.BigInteger(), nullable=True),
        sa.Column("ended_us", sa.BigInteger(), nullable=True),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    op.create_index(op.f("ix_assignments_lead_id_at_us"), "assignments", ["lead_id", "at_us"])
    op.create_index(op.f("ix_assignments_rep_id_at_us"), "assignments", ["rep_id", "at_us"])
    # Partial: only the clocks that run and have not breached (the SLA watcher's scan).
    running = sa.text(
        "ended_us IS NULL AND first_touch_us IS NULL AND breached_us IS NULL"
        " AND clock_us IS NOT NULL"
    )
    op.create_index(
        op.f("ix_assignments_sla_due_us"),
        "assignments",
        ["sla_due_us"],
        sqlite_where=running,
        postgresql_where=running,
    )
    op.create_table(
        "touches",
        sa.Column("id", _ID, nullable=False),
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.Column("rep_id", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("recorded_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touches")),
        sa.UniqueConstraint("event_id", name=op.f("uq_touches_event_id")),
    )
    op.create_index(op.f("ix_touches_lead_id_at_us"), "touches", ["lead_id", "at_us"])
    op.create_table(
        "webhooks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("deleted_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhooks")),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("webhook_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=60), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("lead_id", sa.String(length=200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("delivered_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    op.create_index(
        op.f("ix_deliveries_status_next_attempt_us"), "deliveries", ["status", "next_attempt_us"]
    )
    op.create_index(op.f("ix_deliveries_webhook_id_id"), "deliveries", ["webhook_id", "id"])
    op.create_index(op.f("ix_deliveries_lead_id"), "deliveries", ["lead_id"])


def downgrade() -> None:
    for table in ("deliveries", "webhooks", "touches", "assignments"):
        op.drop_table(table)
