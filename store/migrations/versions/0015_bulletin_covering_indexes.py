"""indexes that carry the ten-day bulletin's counts without reading the rows

Each of the bulletin's grouped scans of a period reads only an index that holds every
column it counts (benchmarks/bulletin.py, issue 16): the period's letters by day,
channel, category, status and district; the period's assignments with their deadline and
reply; a letter's assignments with what the per-department count asks; the overdue ones,
open or replied late, by deadline. The three assignment indexes replace the narrower ones
they begin with (SQLite's planner keeps choosing a one-column index kept beside).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_letters_received_figures",
        "letters",
        ["received_at", "channel", "category", "status", "district", "id"],
    )
    op.drop_index("ix_assignments_assigned_at", table_name="assignments")
    op.create_index(
        "ix_assignments_assigned_figures",
        "assignments",
        ["assigned_at", "status", "department_id", "due_at", "replied_at", "letter_id"],
    )
    op.drop_index("ix_assignments_letter_id", table_name="assignments")
    op.create_index(
        "ix_assignments_letter_figures",
        "assignments",
        ["letter_id", "status", "assigned_at", "department_id"],
    )
    op.drop_index("ix_assignments_replied_at", table_name="assignments")
    op.create_index(
        "ix_assignments_overdue",
        "assignments",
        ["replied_at", "due_at", "status", "assigned_at", "department_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_assignments_overdue", table_name="assignments")
    op.create_index("ix_assignments_replied_at", "assignments", ["replied_at"])
    op.drop_index("ix_assignments_letter_figures", table_name="assignments")
    op.create_index("ix_assignments_letter_id", "assignments", ["letter_id"])
    op.drop_index("ix_assignments_assigned_figures", table_name="assignments")
    op.create_index("ix_assignments_assigned_at", "assignments", ["assigned_at"])
    op.drop_index("ix_letters_received_figures", table_name="letters")
