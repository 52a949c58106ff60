"""letters: indexes that hand routing its duplicate candidates, newest first

A new letter is compared with the newest letters in hand from the same citizen and about
the same district (gateway/core/routing.py duplicate_queries), each kind read from its index, so
routing a letter does not read more as the table grows (benchmarks/routing.py).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_letters_citizen_received", "letters", ["citizen_id", "received_at"])
    op.create_index("ix_letters_district_received", "letters", ["district", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_letters_district_received", table_name="letters")
    op.drop_index("ix_letters_citizen_received", table_name="letters")
