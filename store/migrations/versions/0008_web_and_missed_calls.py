"""letters.publish_consent (the web form asks), missed_calls (漏接回拨)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("letters") as batch_op:
        batch_op.add_column(sa.Column("publish_consent", sa.Boolean(), nullable=True))
    op.create_table(
        "missed_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column(
            "citizen_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("called", sa.String(length=64), nullable=True),
        sa.Column("called_back_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("called_back_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"], ["citizens.id"], name=op.f("fk_missed_calls_citizen_id_citizens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_missed_calls")),
        sa.UniqueConstraint("source", "call_id", name="uq_missed_calls_source_call_id"),
    )
    op.create_index(op.f("ix_missed_calls_at"), "missed_calls", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_missed_calls_at"), table_name="missed_calls")
    op.drop_table("missed_calls")
    with op.batch_alter_table("letters") as batch_op:
        batch_op.drop_column("publish_consent")
