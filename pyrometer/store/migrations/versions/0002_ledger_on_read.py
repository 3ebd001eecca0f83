"""The ledger is derived from the event log when a lead is read: drop its table.

Every line of the stored ledger was what replaying the lead's events gives (ingest kept it
so, line by line), so nothing is lost; writing it cost a row per event and rule.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("ledger")


def downgrade() -> None:
    # An empty table: Pyrometer 0002 and later derive the ledger on read and never wrote it.
    op.create_table(
        "ledger",
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=200), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", "rule", "event_id", name=op.f("pk_ledger")),
    )
