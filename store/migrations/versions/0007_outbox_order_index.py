"""outbox (destination, letter_id, status) index, for in-order webhook delivery

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_destination_letter", "outbox", ["destination", "letter_id", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_destination_letter", table_name="outbox")
