"""Identity rules: which leads are still anonymous visitors, the applied identify and
alias message ids, and the audit of the admin's merges.

Leads stored before this revision count as known (none is listed as a visitor): an
``identify`` can then no longer fold one of them into another lead, only an admin merge.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "visitors",
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_visitors")),
    )
    op.create_table(
        "identity_messages",
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.Column("received_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_identity_messages")),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=250), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_lead_id_at_us"), ["lead_id", "at_us"])


def downgrade() -> None:
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_lead_id_at_us"))
    op.drop_table("audit")
    op.drop_table("identity_messages")
    op.drop_table("visitors")
