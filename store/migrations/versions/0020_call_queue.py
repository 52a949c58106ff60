"""call queue: the ACD state row, worker heartbeats, the actions outbox, the calls' history

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "call_queue",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("owners", sa.JSON(), nullable=False),
        sa.Column("last_at", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_queue")),
    )
    op.create_table(
        "call_queue_owners",
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_call_queue_owners")),
    )
    op.create_table(
        "call_queue_actions",
        sa.Column("id", Id, nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_queue_actions")),
    )
    op.create_index(
        "ix_call_queue_actions_owner_id", "call_queue_actions", ["owner", "id"], unique=False
    )
    op.create_table(
        "queued_calls",
        sa.Column("id", Id, nullable=False),
        sa.Column("call_id", sa.String(length=255), nullable=False),
        sa.Column("priority", sa.String(length=32), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("seat", sa.String(length=32), nullable=True),
        sa.Column("waited_seconds", sa.Float(), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queued_calls")),
        sa.UniqueConstraint("call_id", name=op.f("uq_queued_calls_call_id")),
    )
    op.create_index(op.f("ix_queued_calls_joined_at"), "queued_calls", ["joined_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_queued_calls_joined_at"), table_name="queued_calls")
    op.drop_table("queued_calls")
    op.drop_index("ix_call_queue_actions_owner_id", table_name="call_queue_actions")
    op.drop_table("call_queue_actions")
    op.drop_table("call_queue_owners")
    op.drop_table("call_queue")
