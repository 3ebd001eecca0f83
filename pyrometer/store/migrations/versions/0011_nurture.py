"""Nurture: enrolments in sequences, the steps they ran (idempotent send records), and
per-channel do-not-contact blocks.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "nurture_enrolments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.Column("sequence", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("next_due_us", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("enrolled_us", sa.BigInteger(), nullable=False),
        sa.Column("ended_us", sa.BigInteger(), nullable=True),
        sa.Column("exit_reason", sa.String(length=80), nullable=True),
        sa.Column("cause", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurture_enrolments")),
    )
    op.create_index(
        op.f("ix_nurture_enrolments_lead_id_sequence"),
        "nurture_enrolments",
        ["lead_id", "sequence"],
    )
    op.create_index(
        op.f("ix_nurture_enrolments_status_next_due_us"),
        "nurture_enrolments",
        ["status", "next_due_us"],
    )
    op.create_index(
        op.f("ix_nurture_enrolments_sequence_status"),
        "nurture_enrolments",
        ["sequence", "status"],
    )
    op.create_table(
        "nurture_steps",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("enrolment_id", sa.BigInteger(), nullable=False),
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.Column("sequence", sa.String(length=80), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("variant", sa.Integer(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("planned_us", sa.BigInteger(), nullable=False),
        sa.Column("done_us", sa.BigInteger(), nullable=True),
        sa.Column("opened_us", sa.BigInteger(), nullable=True),
        sa.Column("clicked_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nurture_steps")),
        sa.UniqueConstraint("key", name=op.f("uq_nurture_steps_key")),
    )
    op.create_index(
        op.f("ix_nurture_steps_lead_id_done_us"), "nurture_steps", ["lead_id", "done_us"]
    )
    op.create_index(op.f("ix_nurture_steps_sequence_step"), "nurture_steps", ["sequence", "step"])
    op.create_table(
        "contact_blocks",
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", "channel", name=op.f("pk_contact_blocks")),
    )


def downgrade() -> None:
    op.drop_table("contact_blocks")
    op.drop_table("nurture_steps")
    op.drop_table("nurture_enrolments")
