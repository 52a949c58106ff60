"""indexes for the console's boards and the dashboard at a million letters

Measured with benchmarks/console.py (docs/console.md): the department queue, the
supervision board's urged/supervised lists and the dashboard's overdue count.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Replaced, not kept beside: SQLite's planner keeps choosing the one-column index.
    op.drop_index("ix_assignments_department_id", table_name="assignments")
    op.create_index(
        "ix_assignments_department_queue", "assignments", ["department_id", "status", "due_at"]
    )
    op.create_index("ix_assignments_replied_at", "assignments", ["replied_at"])
    op.create_index("ix_chases_kind_assignment", "chases", ["kind", "assignment_id"])


def downgrade() -> None:
    op.drop_index("ix_chases_kind_assignment", table_name="chases")
    op.drop_index("ix_assignments_replied_at", table_name="assignments")
    op.drop_index("ix_assignments_department_queue", table_name="assignments")
    op.create_index("ix_assignments_department_id", "assignments", ["department_id"])
