"""letters.text_source and text_pending: a voicemail or fax is routed on its transcript

A voicemail's or fax's own subject and text are the medium's labels ("电话留言", the fax
server's cover), so routing waits for the transcript or OCR text and judges the letter on
it. Letters already stored are marked from what they are; those still waiting for their
job (not yet routed, the job queued or running) wait for it from now on.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("letters") as batch:
        batch.add_column(sa.Column("text_source", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column("text_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute("UPDATE letters SET text_source = 'ocr' WHERE channel = 'fax'")
    # A voicemail as ivr/call_letters.py stores it (an agent's typed phone letter has a text).
    op.execute(
        "UPDATE letters SET text_source = 'transcription' "
        "WHERE channel = 'phone' AND subject = '电话留言' AND text = ''"
    )
    op.execute(
        "UPDATE letters SET text_pending = true "
        "WHERE status = 'received' AND text_source IS NOT NULL AND id IN ("
        "SELECT letter_id FROM jobs WHERE kind IN ('transcribe', 'ocr', 'twilio_media') "
        "AND status IN ('queued', 'running'))"
    )


def downgrade() -> None:
    with op.batch_alter_table("letters") as batch:
        batch.drop_column("text_pending")
        batch.drop_column("text_source")
