"""letters.visit_asked_at and visit_callback_at: the citizen's own 回访

After a final reply the hotline asks the citizen by SMS or e-mail whether they are
satisfied (visit_asked_at), and gives an unanswered visit to an operator to call
(visit_callback_at), once. Letters already waiting for their visit are marked as asked and
called: their citizens are not sent a question about an old reply, and operators visit
them as before.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("letters") as batch:
        batch.add_column(sa.Column("visit_asked_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("visit_callback_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE letters SET visit_asked_at = replied_at, visit_callback_at = replied_at "
        "WHERE status = 'replied'"
    )


def downgrade() -> None:
    with op.batch_alter_table("letters") as batch:
        batch.drop_column("visit_callback_at")
        batch.drop_column("visit_asked_at")
