"""Nurture: a lead is in a sequence once at a time, by a partial unique index on the
active enrolments (issue #17: enrolment on a standing condition, by two writers at once).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    # A store that somehow holds two active enrolments of one lead in one sequence keeps
    # the older; the other ends as a duplicate.
    op.execute(
        "UPDATE nurture_enrolments SET status = 'exited', exit_reason = 'duplicate', "
        "next_due_us = NULL, ended_us = enrolled_us "
        "WHERE status = 'active' AND EXISTS (SELECT 1 FROM nurture_enrolments o "
        "WHERE o.lead_id = nurture_enrolments.lead_id "
        "AND o.sequence = nurture_enrolments.sequence "
        "AND o.status = 'active' AND o.id < nurture_enrolments.id)"
    )
    op.create_index(
        "uq_nurture_enrolments_active",
        "nurture_enrolments",
        ["lead_id", "sequence"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_nurture_enrolments_active", table_name="nurture_enrolments")
