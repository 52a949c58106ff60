"""letters.transcript_confidence and transcript_words (speech-to-text)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("letters") as batch:
        batch.add_column(sa.Column("transcript_confidence", sa.Float(), nullable=True))
        batch.add_column(sa.Column("transcript_words", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("letters") as batch:
        batch.drop_column("transcript_words")
        batch.drop_column("transcript_confidence")
