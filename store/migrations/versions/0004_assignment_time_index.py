"""assignments.assigned_at index, for the bulletin's per-department figures

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_assignments_assigned_at", "assignments", ["assigned_at"])


def downgrade() -> None:
    op.drop_index("ix_assignments_assigned_at", table_name="assignments")
