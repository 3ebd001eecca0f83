"""Nurture: one index on the enrolments by lead instead of two (issue #17: enrolment's
cost to ingest). The plain index on (lead_id, sequence) and the partial unique index on
the active ones become one unique index on (lead_id, sequence, slot), where the slot is
0 for an active enrolment and its own id for an ended one: still one active enrolment
per lead and sequence, any number of ended ones, and every enrolment of a lead found by
its leading column. Each enrolment written in ingest updates one index by lead, not two.
The index on (sequence, status) goes too: only the sequence report read by it, and it
reads most of a sequence's rows anyway (one pass now).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status = 'active'")
_SLOT = sa.text("(CASE WHEN status = 'active' THEN 0 ELSE id END)")


def upgrade() -> None:
    op.create_index(
        "uq_nurture_enrolments_lead",
        "nurture_enrolments",
        ["lead_id", "sequence", _SLOT],
        unique=True,
    )
    op.drop_index("uq_nurture_enrolments_active", table_name="nurture_enrolments")
    op.drop_index("ix_nurture_enrolments_lead_id_sequence", table_name="nurture_enrolments")
    op.drop_index("ix_nurture_enrolments_sequence_status", table_name="nurture_enrolments")


def downgrade() -> None:
    op.create_index(
        "ix_nurture_enrolments_sequence_status",
        "nurture_enrolments",
        ["sequence", "status"],
    )
    op.create_index(
        "ix_nurture_enrolments_lead_id_sequence",
        "nurture_enrolments",
        ["lead_id", "sequence"],
    )
    op.create_index(
        "uq_nurture_enrolments_active",
        "nurture_enrolments",
        ["lead_id", "sequence"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.drop_index("uq_nurture_enrolments_lead", table_name="nurture_enrolments")
