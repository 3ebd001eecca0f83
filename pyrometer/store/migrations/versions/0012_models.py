"""Conversion models trained from the store (issue #14), cached lead probabilities, and
the result of a finished job.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("result", sa.JSON(), nullable=True))
    op.create_table(
        "models",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("activated_us", sa.BigInteger(), nullable=True),
        sa.Column("outcomes", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("artifact", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_models")),
    )
    op.create_table(
        "lead_predictions",
        sa.Column("lead_id", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("lead_updated_us", sa.BigInteger(), nullable=False),
        sa.Column("p_convert", sa.Float(), nullable=False),
        sa.Column("computed_us", sa.BigInteger(), nullable=False),
        sa.Column("factors", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_lead_predictions")),
    )
    op.create_index(
        "ix_lead_predictions_p_convert", "lead_predictions", ["p_convert"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_lead_predictions_p_convert", table_name="lead_predictions")
    op.drop_table("lead_predictions")
    op.drop_table("models")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("result")
