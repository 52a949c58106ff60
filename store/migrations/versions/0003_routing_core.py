"""routing core

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "letter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "department_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["department_id"], ["departments.id"], name=op.f("fk_replies_department_id_departments")
        ),
        sa.ForeignKeyConstraint(
            ["letter_id"], ["letters.id"], name=op.f("fk_replies_letter_id_letters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
    )
    with op.batch_alter_table("replies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_replies_letter_id"), ["letter_id"], unique=False)

    op.create_table(
        "chases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "assignment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"], ["assignments.id"], name=op.f("fk_chases_assignment_id_assignments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chases")),
        sa.UniqueConstraint("assignment_id", "kind", name="uq_chases_assignment_kind"),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("promised_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_assignments_open", ["status", "due_at"], unique=False)

    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("contacts", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "department_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.drop_index(batch_op.f("ix_events_kind"))
        batch_op.create_index(
            batch_op.f("ix_events_department_id"), ["department_id"], unique=False
        )
        batch_op.create_index("ix_events_kind_at", ["kind", "at"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_events_department_id_departments"),
            "departments",
            ["department_id"],
            ["id"],
        )

    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("reply_type", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("district", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("rejection", sa.String(length=24), nullable=True))
        batch_op.add_column(
            sa.Column(
                "duplicate_of_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("satisfaction", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("publish", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(batch_op.f("ix_letters_due_at"), ["due_at"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_letters_duplicate_of_id_letters"), "letters", ["duplicate_of_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("letters", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_letters_duplicate_of_id_letters"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_letters_due_at"))
        batch_op.drop_column("publish")
        batch_op.drop_column("satisfaction")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("replied_at")
        batch_op.drop_column("due_at")
        batch_op.drop_column("duplicate_of_id")
        batch_op.drop_column("rejection")
        batch_op.drop_column("district")
        batch_op.drop_column("reply_type")
        batch_op.drop_column("mode")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_events_department_id_departments"), type_="foreignkey"
        )
        batch_op.drop_index("ix_events_kind_at")
        batch_op.drop_index(batch_op.f("ix_events_department_id"))
        batch_op.create_index(batch_op.f("ix_events_kind"), ["kind"], unique=False)
        batch_op.drop_column("department_id")

    with op.batch_alter_table("departments", schema=None) as batch_op:
        batch_op.drop_column("contacts")

    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_open")
        batch_op.drop_column("promised_at")
        batch_op.drop_column("replied_at")
        batch_op.drop_column("signed_at")

    op.drop_table("chases")
    with op.batch_alter_table("replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replies_letter_id"))

    op.drop_table("replies")
